"""Face photos for tests, from registry packages: scikit-image's astronaut and the group
photos of npm ``@vladmandic/face-api``'s demo folder (fetched once with ``npm pack`` into
``build/test-data``)."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "test-data"
#: Pinned npm package holding the demo photos.
FACE_API = "@vladmandic/face-api@1.7.15"
#: Faces a person counts in each demo photo (sample1.jpg ... sample6.jpg).
FACE_API_COUNTS = {
    "sample1.jpg": 3,
    "sample2.jpg": 3,
    "sample3.jpg": 3,
    "sample4.jpg": 4,
    "sample5.jpg": 5,
    "sample6.jpg": 4,
}


def astronaut_png() -> bytes:
    """scikit-image's astronaut (Eileen Collins), 512 x 512 PNG."""
    import skimage

    return (Path(skimage.__file__).parent / "data" / "astronaut.png").read_bytes()


def face_api_samples() -> dict[str, bytes] | None:
    """The six demo group photos by file name, or None when npm cannot fetch them."""
    folder = CACHE / "face-api"
    if not all((folder / name).is_file() for name in FACE_API_COUNTS):
        npm = shutil.which("npm")
        if npm is None:
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            packed = (
                subprocess.run(
                    [npm, "pack", FACE_API, "--pack-destination", str(CACHE), "--silent"],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
        except (subprocess.SubprocessError, IndexError):
            return None
        folder.mkdir(exist_ok=True)
        with tarfile.open(CACHE / packed) as archive:
            for name in FACE_API_COUNTS:
                member = archive.extractfile(f"package/demo/{name}")
                if member is None:
                    return None
                (folder / name).write_bytes(member.read())
    return {name: (folder / name).read_bytes() for name in FACE_API_COUNTS}
