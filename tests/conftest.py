"""Fixtures shared by every test level (free ports, short scratch directories, and through the
plugin tests/helpers/postgres.py an embedded PostgreSQL), and the check that every test
starting a real process carries the ``integration`` marker."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.ports import unused_port

pytest_plugins = ["tests.helpers.postgres"]

#: Fixtures that start a real process (PostgreSQL, Envoy, Triton, the launcher's mesh) or read
#: what ``make models`` produced. A test that uses one, directly or through another fixture,
#: must be marked ``integration``, so that ``make unit`` (``-m "not integration"``) stays fast
#: and self-contained; collection fails naming the tests that are not.
REAL_PROCESS_FIXTURES = frozenset(
    {"pg_server", "start_envoy", "triton", "mesh", "repository", "faces"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if REAL_PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests start real processes or need `make models` but are not marked "
            "@pytest.mark.integration:\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Returns a function giving a currently unused loopback TCP port."""
    return unused_port


@pytest.fixture(scope="session")
def short_tmp() -> Iterator[Path]:
    """A scratch directory with a short path (PostgreSQL's unix socket lives in its data dir,
    and socket paths are limited to about 107 bytes); traversable by other system users."""
    path = Path(tempfile.mkdtemp(prefix="fg-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
