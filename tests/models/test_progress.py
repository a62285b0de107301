"""``make models``'s progress lines: each step says what it does as it starts and how long it
took when it ends; downloads give their size, cached sources say so (fetch and builders faked)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import build, fetch, sources, verify
from models.progress import step
from models.sources import Source

PAYLOAD = bytes(2_500_000)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def _fake_source() -> Source:
    return Source(
        registry="npm",
        package="@example/weights",
        version="1.2.3",
        filename="example-weights-1.2.3.tgz",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        licence="MIT",
    )


def test_a_step_says_what_it_does_when_it_starts_and_its_time_when_it_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ticks = iter([10.0, 12.5])
    with step("fetching x", "fetched x", clock=lambda: next(ticks)) as current:
        assert _lines(capsys) == ["models: fetching x ..."]
        current.detail = "3.0 MB"
    assert _lines(capsys) == ["models: fetched x: 3.0 MB (2.5 s)"]


def test_a_failing_step_says_it_failed(capsys: pytest.CaptureFixture[str]) -> None:
    ticks = iter([0.0, 1.25])
    with pytest.raises(RuntimeError), step("converting y", "converted y", lambda: next(ticks)):
        raise RuntimeError("boom")
    assert _lines(capsys) == [
        "models: converting y ...",
        "models: converting y: failed after 1.2 s",
    ]


def test_a_download_is_announced_before_it_starts_then_sized_and_a_cached_one_says_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _fake_source()
    seen_before_download: list[list[str]] = []

    def download(src: Source, cache: Path) -> None:
        seen_before_download.append(_lines(capsys))
        (cache / src.filename).write_bytes(PAYLOAD)

    monkeypatch.setattr(fetch, "_download", download)
    fetch.prefetch([source], tmp_path)
    assert seen_before_download == [["models: fetching npm @example/weights@1.2.3 ..."]]
    [fetched] = _lines(capsys)
    assert fetched.startswith("models: fetched npm @example/weights@1.2.3: 2.5 MB (")
    fetch.prefetch([source], tmp_path)
    assert _lines(capsys) == ["models: npm @example/weights@1.2.3: cached (2.5 MB)"]


def test_a_download_that_produces_nothing_says_it_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fetch, "_download", lambda src, cache: None)
    with pytest.raises(fetch.SourceError, match="not produced"):
        fetch.fetch(_fake_source(), tmp_path)
    lines = _lines(capsys)
    assert lines[0] == "models: fetching npm @example/weights@1.2.3 ..."
    assert lines[1].startswith("models: fetching npm @example/weights@1.2.3: failed after ")


def test_the_build_numbers_each_model_and_says_so_before_building_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefetched: list[list[Source]] = []
    written: list[list[str]] = []

    def builder(model: str) -> Iterator[verify.Equivalence]:
        print(f"fake {model} converting")
        yield verify.Equivalence(model, "a reference", 3, 1e-6, 1.0)

    monkeypatch.setattr(build, "TRITON_MODELS", tmp_path / "cpu")
    monkeypatch.setattr(build, "GPU_REPOSITORY", tmp_path / "gpu")
    monkeypatch.setattr(build, "WORK", tmp_path / "work")
    monkeypatch.setattr(build, "REPO", tmp_path)
    monkeypatch.setattr(build, "prefetch", lambda srcs, cache: prefetched.append(list(srcs)))
    monkeypatch.setattr(build, "outputs_current", lambda: False)
    monkeypatch.setattr(build, "is_current", lambda path, model: model == "dlib_resnet")
    monkeypatch.setattr(build, "fingerprint", lambda path: build.EXPECTED[path.parent.parent.name])
    monkeypatch.setattr(build, "BUILDERS", {m: lambda m=m: builder(m) for m in build.MODELS})
    monkeypatch.setattr(build.gpu_repository, "write", lambda cpu, gpu, ms: written.append(ms))

    assert build.main([]) == 0
    lines = _lines(capsys)

    assert prefetched == [list(sources.TEST_DATA), [sources.BLAZEFACE, sources.HUMAN_MODELS]]
    assert written == [build.MODELS]
    assert "models: [2/4] dlib_resnet: up to date" in lines
    assert "fake dlib_resnet converting" not in lines
    for number, model in ((1, "blazeface"), (3, "faceres_deep"), (4, "mobileface")):
        begins = lines.index(f"models: [{number}/4] {model}: building ...")
        assert lines[begins + 1] == f"fake {model} converting"
        assert lines[begins + 2].startswith(f"models: {model}: 3 inputs vs a reference")
        assert lines[begins + 3].startswith(f"models: [{number}/4] {model}: built (")
    gpu = lines.index("models: writing the GPU repository gpu/ ...")
    assert lines[gpu + 1].startswith("models: wrote gpu/ (")
    assert lines[-1].startswith("models: built into cpu/ and gpu/ (")
