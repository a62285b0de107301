"""CompreFace's errors about the faces found in an image."""

from __future__ import annotations

from facegrid.errors import ServiceError, invalid_argument

#: CompreFace's code for an image without a face.
NO_FACE_FOUND = 28
#: CompreFace's code for more faces than the call allows.
TOO_MANY_FACES = 31


def no_face(field: str) -> ServiceError:
    """``field``'s image holds no face (above the detection threshold); CompreFace's message
    for a single image, the image named where a call takes two."""
    where = "given image" if field == "file" else field.replace("_", " ")
    return invalid_argument(
        "NO_FACE_DETECTED", f"No face is found in the {where}", NO_FACE_FOUND, field=field
    )


def too_many_faces(field: str) -> ServiceError:
    """``field``'s image holds more than the one face the call needs."""
    where = "given image" if field == "file" else field.replace("_", " ")
    return invalid_argument(
        "TOO_MANY_FACES",
        f"More than one face in the {where}",
        TOO_MANY_FACES,
        field=field,
    )
