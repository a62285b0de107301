"""Fixtures shared by every test level: free ports and short scratch directories."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Returns a function giving a currently unused loopback TCP port."""
    return _free_port


@pytest.fixture(scope="session")
def short_tmp() -> Iterator[Path]:
    """A scratch directory with a short path (PostgreSQL's unix socket lives in its data dir,
    and socket paths are limited to about 107 bytes); traversable by other system users."""
    path = Path(tempfile.mkdtemp(prefix="fg-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
