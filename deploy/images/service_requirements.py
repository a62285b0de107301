"""Writes the services' requirements: requirements.txt less the packages a file names.

    python3 service_requirements.py requirements.txt not-in-service-image.txt > service.txt

Runs in the image's build stage (standard library only). Names compare as PEP 503 normalises
them; pins, extras and comments of the kept lines are kept as they are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def normalise(name: str) -> str:
    """PEP 503 normal form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The distribution a requirements line names, or None for blanks and comments."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    return normalise(found.group(0)) if found else None


def kept_lines(requirements: str, excluded: str) -> list[str]:
    """The lines of ``requirements`` whose package ``excluded`` does not name."""
    leave_out = {name for line in excluded.splitlines() if (name := requirement_name(line))}
    return [
        line
        for line in requirements.splitlines()
        if (name := requirement_name(line)) is not None and name not in leave_out
    ]


if __name__ == "__main__":
    requirements_path, excluded_path = map(Path, sys.argv[1:3])
    lines = kept_lines(requirements_path.read_text(), excluded_path.read_text())
    sys.stdout.write("".join(f"{line}\n" for line in lines))
