"""The photos of an import folder: ``FOLDER/<subject>/<photo>``, one subject per folder."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

#: File name extensions imported (CompreFace's image formats).
IMAGE_EXTENSIONS = frozenset({"jpeg", "jpg", "ico", "png", "bmp", "gif", "tif", "tiff", "webp"})


@dataclass(frozen=True, slots=True)
class Photo:
    """One file to import."""

    key: str
    """Its path relative to the folder, with '/' separators (the client key and state entry)."""
    subject: str
    """The name of the folder it is in, directly under the import folder."""
    path: Path

    @property
    def content_type(self) -> str:
        """Its media type from its name; empty when unknown (the server tells it)."""
        return mimetypes.guess_type(self.path.name)[0] or ""


def scan(folder: Path) -> tuple[list[Photo], list[str]]:
    """The photos under ``folder`` sorted by key, and the image files that are not in a subject
    folder (directly under ``folder``: they have no subject). Hidden files are skipped."""
    photos: list[Photo] = []
    orphans: list[str] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower().lstrip(".") not in IMAGE_EXTENSIONS:
            continue
        if len(relative.parts) < 2:
            orphans.append(relative.as_posix())
            continue
        photos.append(Photo(relative.as_posix(), relative.parts[0], path))
    return photos, orphans
