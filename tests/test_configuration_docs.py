"""docs/configuration.md names every environment variable Facegrid reads, and nothing else.

Read by the code: every ``"FACEGRID_..."`` string literal in the Python sources outside the tests
and benchmarks, and every ``${FACEGRID_...}`` that compose.yaml and the deploy/ scripts expand.
Documented: a name written alone in backquotes in the first cell of a table row of
docs/configuration.md (`` | `FACEGRID_X` | default | meaning | checks | ``); every name in
backquotes anywhere on that page must still be read. The Python client's test settings belong in
docs/clients.md instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "configuration.md"
CLIENTS_DOC = REPO / "docs" / "clients.md"
CLIENT_TESTS = REPO / "clients" / "python" / "tests"

#: A whole variable name.
NAME = re.compile(r"FACEGRID_[A-Z0-9_]*[A-Z0-9]")
#: A name written alone in backquotes: how docs/configuration.md's rows name their variable.
DOCUMENTED = re.compile(r"`(FACEGRID_[A-Z0-9_]*[A-Z0-9])`")
#: A shell or compose expansion of a variable: ``$FACEGRID_X`` or ``${FACEGRID_X...}``.
EXPANDED = re.compile(r"\$\{?(FACEGRID_[A-Z0-9_]*[A-Z0-9])")
#: Folders (at any depth) that hold no code of the product: tests, benchmarks, builds, venvs.
SKIPPED_DIRS = frozenset(
    {"tests", "bench", "build", "node_modules", "__pycache__", "var", "docs", "proto"}
)


def _source_files(root: Path, suffix: str | None) -> Iterator[Path]:
    """Files under ``root`` (ending in ``suffix``, any when None) outside SKIPPED_DIRS and
    hidden or virtual-environment folders; symbolic links are not followed."""
    for path in sorted(root.iterdir()):
        if path.is_symlink() or path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name not in SKIPPED_DIRS and not path.name.startswith(".venv"):
                yield from _source_files(path, suffix)
        elif suffix is None or path.name.endswith(suffix):
            yield path


def _python_literals(paths: Iterator[Path]) -> dict[str, set[str]]:
    """Variable name -> the files whose code spells it as a whole string literal."""
    found: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and NAME.fullmatch(node.value)
            ):
                found.setdefault(node.value, set()).add(str(path.relative_to(REPO)))
    return found


def _read_by_python() -> dict[str, set[str]]:
    return _python_literals(_source_files(REPO, ".py"))


def _expanded_by_deployments() -> dict[str, set[str]]:
    """Variable name -> the compose file, Makefile or deploy/ script that expands it."""
    paths = [REPO / "compose.yaml", REPO / "Makefile"]
    paths += [p for p in _source_files(REPO / "deploy", None) if not p.name.endswith(".md")]
    found: dict[str, set[str]] = {}
    for path in paths:
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for name in EXPANDED.findall(text):
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def _mentioned(doc: Path) -> set[str]:
    """Every name written alone in backquotes on the page."""
    return set(DOCUMENTED.findall(doc.read_text(encoding="utf-8")))


def _rows(doc: Path) -> set[str]:
    """The names in the first cell of the page's table rows."""
    names: set[str] = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            names.update(DOCUMENTED.findall(line.split("|")[1]))
    return names


def _listing(names: dict[str, set[str]]) -> str:
    return "\n".join(
        f"  {name} (read in {', '.join(sorted(names[name]))})" for name in sorted(names)
    )


def test_the_code_reads_some_variables() -> None:
    """Guards the two checks below against a scan that silently finds nothing."""
    python = _read_by_python()
    assert {"FACEGRID_API_PORT", "FACEGRID_MIGRATION_BATCH_SIZE", "FACEGRID_IMAGE"} <= set(python)
    assert not any(name.startswith("FACEGRID_TEST_") for name in python)
    assert {"FACEGRID_POSTGRES_PASSWORD", "FACEGRID_PODMAN_DIR"} <= set(_expanded_by_deployments())


def test_every_variable_the_code_reads_is_documented() -> None:
    read = _read_by_python()
    for name, paths in _expanded_by_deployments().items():
        read.setdefault(name, set()).update(paths)
    documented = _rows(REFERENCE)
    missing = {name: paths for name, paths in read.items() if name not in documented}
    assert not missing, (
        "docs/configuration.md has no row for these variables (add each to its component's "
        "table with its default, meaning and checks):\n" + _listing(missing)
    )


def test_every_documented_variable_is_still_read() -> None:
    read = set(_read_by_python()) | set(_expanded_by_deployments())
    stale = sorted(_mentioned(REFERENCE) - read)
    assert not stale, (
        "docs/configuration.md documents variables that nothing reads any more (remove the rows, "
        "or the code lost a setting):\n  " + "\n  ".join(stale)
    )


def test_python_client_test_settings_are_in_the_clients_doc() -> None:
    read = _python_literals(p for p in sorted(CLIENT_TESTS.rglob("*.py")))
    assert read, "clients/python/tests reads no FACEGRID_TEST_* variable any more?"
    text = CLIENTS_DOC.read_text(encoding="utf-8")
    missing = {name: paths for name, paths in read.items() if name not in text}
    assert not missing, "docs/clients.md does not name these test settings:\n" + _listing(missing)
