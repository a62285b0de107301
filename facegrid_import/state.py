"""The resume state of an import: one JSON line per file stored, appended as results arrive.

A rerun skips every file listed. Lines are flushed one by one, so an interruption loses nothing
that was recorded; after a hard kill, files whose results were in flight are sent again (and
stored twice if the server had already stored them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TextIO


def default_path(folder: Path, api_key: str) -> Path:
    """``FOLDER/.facegrid-import-<key digest>.jsonl``: one state per folder and collection."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:12]
    return folder / f".facegrid-import-{digest}.jsonl"


class ImportState:
    """The files already stored, read from and appended to a state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, str] = {}
        """Image id by file key."""
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.done[str(entry["key"])] = str(entry["image_id"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill
        self._out: TextIO | None = None

    def record(self, key: str, image_id: str) -> None:
        """Adds ``key`` as stored under ``image_id``, on disk at once."""
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("a", encoding="utf-8")
        self._out.write(json.dumps({"key": key, "image_id": image_id}) + "\n")
        self._out.flush()
        self.done[key] = image_id

    def close(self) -> None:
        """Closes the file."""
        if self._out is not None:
            self._out.close()
            self._out = None
