"""Fixtures shared by every test level: free ports and short scratch directories."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.render import node_ports
from launcher.ports import port_is_free


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_base_port(nodes: int) -> int:
    """A base port such that node i's port (base + 100 * i, DESIGN.md "Ports and names") is
    free for each of ``nodes`` nodes."""
    for _ in range(200):
        base = _free_port()
        ports = node_ports(base, nodes)
        if ports[-1] < 65536 and all(port_is_free("127.0.0.1", port) for port in ports):
            return base
    raise AssertionError(f"no free base port for {nodes} nodes")


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
