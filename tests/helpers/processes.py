"""Stopping a process a test started."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15) -> int:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``; its exit status."""
    process.terminate()
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
