"""Supervision of the mesh's processes: each one that exits is restarted with backoff while the
others keep serving.

The delay before a restart doubles with each exit (from ``initial_s`` up to ``max_s``), with
jitter (between half and all of it) so that processes that fell together do not come back in
lockstep; a process that ran at least ``stable_s`` before exiting starts from ``initial_s`` again.
Every exit, restart and return to readiness is a structlog event (``process_exited``,
``process_restarted``, ``process_ready``).
"""

from __future__ import annotations

import pwd
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger()


class StartError(RuntimeError):
    """A process of the mesh exited or did not become ready in time."""


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to run one process of the mesh and tell that it is ready."""

    name: str
    """Unique name: ``api_svc-0``, ``triton``... (also its log file's name)."""
    argv: list[str]
    """Command line."""
    env: dict[str, str]
    """Environment."""
    ready: Callable[[], bool]
    """True once the process serves."""
    cwd: Path | None = None
    """Working directory."""
    user: str | None = None
    """System user to run as (PostgreSQL when the launcher is root)."""
    stop_signal: int = signal.SIGTERM
    """Signal that asks it to stop cleanly."""
    log_path: Path | None = None
    """File for its output; None writes to the launcher's terminal."""


@dataclass
class Backoff:
    """Restart delays: exponential with jitter, capped, reset after a stable run."""

    initial_s: float
    """First delay, seconds."""
    max_s: float
    """Longest delay, seconds."""
    stable_s: float
    """A run at least this long resets the delay to ``initial_s``."""
    random: Callable[[], float] = random.random
    """Source of jitter in [0, 1)."""
    exits: int = 0
    """Exits in a row counted so far."""

    def delay_after(self, uptime_s: float) -> float:
        """Seconds to wait before restarting a process that exited after ``uptime_s``."""
        if uptime_s >= self.stable_s:
            self.exits = 0
        full = min(self.max_s, self.initial_s * 2.0**self.exits)
        self.exits += 1
        return full * (0.5 + self.random() / 2)


Spawn = Callable[[ProcessSpec, "IO[bytes] | None"], "subprocess.Popen[bytes]"]


def popen(spec: ProcessSpec, out: IO[bytes] | None) -> subprocess.Popen[bytes]:
    """Starts ``spec`` in its own session (Ctrl-C reaches only the launcher)."""
    return subprocess.Popen(  # noqa: S603 (fixed argv)
        spec.argv,
        env=spec.env,
        cwd=spec.cwd,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
        user=spec.user,
        group=_group(spec.user),
        extra_groups=[] if spec.user else None,
    )


def _group(user: str | None) -> int | None:
    return None if user is None else pwd.getpwnam(user).pw_gid


@dataclass
class Supervised:
    """One process under supervision."""

    spec: ProcessSpec
    backoff: Backoff
    stage: int = 0
    """Start stage: later stages depend on earlier ones and stop first."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    """When a process that exited will be started again."""
    awaiting_ready: bool = False
    """Restarted and not yet ready."""
    restarts: int = 0
    log_file: IO[bytes] | None = None


@dataclass
class Supervisor:
    """Starts processes, restarts those that exit, stops them all in reverse order."""

    initial_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    spawn: Spawn = popen
    children: list[Supervised] = field(default_factory=list)

    def start(self, spec: ProcessSpec, stage: int = 0) -> None:
        """Starts a new process and supervises it from now on; processes of a later ``stage``
        depend on those of earlier ones (they are stopped first)."""
        if any(child.spec.name == spec.name for child in self.children):
            raise ValueError(f"{spec.name} is supervised already")
        child = Supervised(spec, Backoff(self.initial_s, self.max_s, self.stable_s), stage)
        self.children.append(child)
        self._run(child)
        log.info("process_started", process=spec.name, pid=self._pid(child))

    def _run(self, child: Supervised) -> None:
        if child.log_file is None and child.spec.log_path is not None:
            child.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            child.log_file = child.spec.log_path.open("ab")
        child.process = self.spawn(child.spec, child.log_file)
        child.started_at = self.clock()

    @staticmethod
    def _pid(child: Supervised) -> int | None:
        return None if child.process is None else child.process.pid

    def wait_ready(self, names: set[str], timeout_s: float, poll_s: float = 0.2) -> None:
        """Returns once every named process is ready; raises StartError when one exits first or
        the time is up (start-up fails fast: nothing is restarted yet)."""
        deadline = self.clock() + timeout_s
        pending = [child for child in self.children if child.spec.name in names]
        while pending:
            for child in list(pending):
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    raise StartError(f"{child.spec.name} exited with code {code} during start")
                if child.spec.ready():
                    log.info("process_ready", process=child.spec.name)
                    pending.remove(child)
            if pending and self.clock() > deadline:
                names_left = ", ".join(child.spec.name for child in pending)
                raise StartError(f"not ready in time: {names_left}")
            if pending:
                time.sleep(poll_s)

    def supervise(self) -> None:
        """One pass: notes exits (scheduling their restart), restarts those due, and reports
        restarted processes that became ready. Call it every fraction of a second."""
        now = self.clock()
        for child in self.children:
            process = child.process
            if child.restart_at is None and process is not None:
                code = process.poll()
                if code is not None:
                    self._exited(child, code, now)
                elif child.awaiting_ready and child.spec.ready():
                    child.awaiting_ready = False
                    log.info("process_ready", process=child.spec.name, restarts=child.restarts)
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                self._run(child)
                child.awaiting_ready = True
                log.info(
                    "process_restarted",
                    process=child.spec.name,
                    pid=self._pid(child),
                    restarts=child.restarts,
                )

    def _exited(self, child: Supervised, code: int, now: float) -> None:
        uptime_s = now - child.started_at
        delay_s = child.backoff.delay_after(uptime_s)
        child.restart_at = now + delay_s
        child.awaiting_ready = False
        log.warning(
            "process_exited",
            process=child.spec.name,
            pid=self._pid(child),
            code=code,
            uptime_s=round(uptime_s, 1),
            restart_in_s=round(delay_s, 2),
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """Stops every process, latest stage first (Envoy, then the services, then PostgreSQL):
        its stop signal, then SIGKILL after ``grace_s``; nothing is restarted any more."""
        for child in self.children:
            child.restart_at = None
        for stage in sorted({child.stage for child in self.children}, reverse=True):
            group = [child for child in reversed(self.children) if child.stage == stage]
            for child in group:
                if child.process is not None and child.process.poll() is None:
                    child.process.send_signal(child.spec.stop_signal)
            for child in group:
                self._reap(child, grace_s)
        self.children.clear()

    @staticmethod
    def _reap(child: Supervised, grace_s: float) -> None:
        process = child.process
        if process is not None:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("process_killed", process=child.spec.name)
                process.kill()
                process.wait()
            log.info("process_stopped", process=child.spec.name, code=process.returncode)
        if child.log_file is not None:
            child.log_file.close()
