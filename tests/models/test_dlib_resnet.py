"""dlib's ResNet converted by the project's own converter against dlib itself, on real faces."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest

from models import build, sources
from models.dlib_format import DlibFormatError
from models.dlib_resnet import network, read_dat, to_onnx
from models.fetch import fetch, read_member
from models.verify import cosines, session
from tests.models.face_chips import Face


@pytest.fixture(scope="module")
def dat(repository: Path) -> bytes:
    """The pinned weights file (from the build cache)."""
    return read_member(fetch(sources.DLIB_MODELS, build.CACHE), sources.DLIB_RESNET_MEMBER)


@pytest.fixture(scope="module")
def chips(faces: list[Face]) -> np.ndarray:
    """Every face chip, its mirror image and dlib jitters of the astronaut: uint8 [N,150,150,3]."""
    base = np.stack([face.chip for face in faces])
    astronaut = next(face.chip for face in faces if face.source == "astronaut.png")
    jittered = np.stack([np.asarray(j) for j in dlib.jitter_image(astronaut, num_jitters=6)])
    return np.ascontiguousarray(np.concatenate([base, base[:, :, ::-1], jittered]))


@pytest.mark.integration
def test_the_file_matches_the_network_definition(dat: bytes) -> None:
    net = read_dat(dat)
    assert net.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    convs = [w for w in net.layers if w.layer.kind == "con"]
    assert len(convs) == 29
    assert convs[0].arrays["filters"].shape == (32, 3, 7, 7)
    assert next(w for w in net.layers if w.layer.kind == "fc").arrays["weights"].shape == (256, 128)


@pytest.mark.integration
def test_a_truncated_or_altered_file_is_refused(dat: bytes) -> None:
    with pytest.raises(DlibFormatError):
        read_dat(dat[:-1])
    with pytest.raises(DlibFormatError):
        read_dat(dat + b"\x00")
    altered = dat.replace(b"\x01\x05con_4", b"\x01\x05con_9", 1)
    with pytest.raises(DlibFormatError):
        read_dat(altered)


def test_network_definition_has_the_tags_of_dnn_face_recognition_ex() -> None:
    kinds = [layer.kind for layer in network()]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds.count("skip") == 4


@pytest.mark.integration
def test_onnx_reproduces_dlib_on_real_faces(
    repository: Path, dat: bytes, chips: np.ndarray, tmp_path: Path
) -> None:
    weights = tmp_path / "resnet.dat"
    weights.write_bytes(dat)
    net = dlib.face_recognition_model_v1(str(weights))
    want = np.array([np.array(d) for d in net.compute_face_descriptor(list(chips))], np.float32)
    (got,) = session(repository / "dlib_resnet" / "1" / "model.onnx").run(
        ["embedding"], {"input": chips}
    )
    cosine = cosines(got, want)
    print(
        f"dlib_resnet vs dlib on {len(chips)} real chips: 1 - min cosine {1 - cosine.min():.1e}, "
        f"max |diff| {np.abs(got - want).max():.2e}"
    )
    assert cosine.min() >= 0.9999
    assert np.abs(got - want).max() < 1e-4
    # Different people stay apart: the descriptors are not all alike.
    assert cosines(got[:1].repeat(len(got), 0), got).min() < 0.9


@pytest.mark.integration
def test_batching_does_not_change_descriptors(repository: Path, chips: np.ndarray) -> None:
    onnx_session = session(repository / "dlib_resnet" / "1" / "model.onnx")
    batch = chips[:5]
    (together,) = onnx_session.run(["embedding"], {"input": batch})
    alone = np.concatenate(
        [onnx_session.run(["embedding"], {"input": chip[None]})[0] for chip in batch]
    )
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.integration
def test_conversion_is_deterministic(dat: bytes) -> None:
    first = to_onnx(read_dat(dat)).SerializeToString()
    assert to_onnx(read_dat(dat)).SerializeToString() == first
