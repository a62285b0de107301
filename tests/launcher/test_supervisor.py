"""Supervision: a process that exits is restarted after a capped, jittered, growing delay
(reset after a stable run) while the others keep running; every exit and restart is logged;
stopping goes latest stage first and restarts nothing."""

from __future__ import annotations

import signal
from typing import IO, Any

import pytest
from structlog.testing import capture_logs

from launcher.supervisor import Backoff, ProcessSpec, StartError, Supervisor


class FakeProcess:
    """A child process the test ends (``code``) instead of the operating system."""

    next_pid = 100

    def __init__(self, spec: ProcessSpec) -> None:
        FakeProcess.next_pid += 1
        self.pid = FakeProcess.next_pid
        self.spec = spec
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


class World:
    """A fake clock and the processes spawned so far."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.spawned: list[FakeProcess] = []
        self.stop_order: list[str] = []

    def spawn(self, spec: ProcessSpec, out: IO[bytes] | None) -> Any:
        process = FakeProcess(spec)
        self.spawned.append(process)
        original = process.send_signal

        def record(sig: int) -> None:
            self.stop_order.append(spec.name)
            original(sig)

        process.send_signal = record  # type: ignore[method-assign]
        return process

    def latest(self, name: str) -> FakeProcess:
        return [p for p in self.spawned if p.spec.name == name][-1]

    def count(self, name: str) -> int:
        return sum(p.spec.name == name for p in self.spawned)


def _spec(name: str, ready: bool = True, stop_signal: int = signal.SIGTERM) -> ProcessSpec:
    return ProcessSpec(name, ["true"], {}, lambda: ready, stop_signal=stop_signal)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def supervisor(world: World) -> Supervisor:
    return Supervisor(
        initial_s=1.0, max_s=8.0, stable_s=60.0, clock=lambda: world.now, spawn=world.spawn
    )


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets_after_a_stable_run() -> None:
    top = Backoff(initial_s=0.5, max_s=4.0, stable_s=60.0, random=lambda: 0.999999)
    assert [round(top.delay_after(1.0), 3) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    bottom = Backoff(initial_s=0.5, max_s=4.0, stable_s=60.0, random=lambda: 0.0)
    assert [bottom.delay_after(1.0) for _ in range(3)] == [0.25, 0.5, 1.0]  # half, at least
    assert bottom.delay_after(61.0) == 0.25  # it ran a minute: start again from the first delay


def test_an_exited_process_is_restarted_after_its_delay_and_the_others_run_on(
    world: World, supervisor: Supervisor
) -> None:
    supervisor.start(_spec("api_svc-0"))
    supervisor.start(_spec("api_svc-1"))
    survivor = world.latest("api_svc-0")
    world.now += 30
    world.latest("api_svc-1").returncode = -9
    with capture_logs() as events:
        supervisor.supervise()
        world.now += 0.49  # the first delay is 0.5..1 s
        supervisor.supervise()
        assert world.count("api_svc-1") == 1
        world.now += 0.52
        supervisor.supervise()
        assert world.count("api_svc-1") == 2
        supervisor.supervise()  # the restarted process answers its readiness probe
    exited, restarted, ready = events
    assert exited["event"] == "process_exited" and exited["process"] == "api_svc-1"
    assert exited["code"] == -9 and exited["uptime_s"] == 30.0
    assert 0.5 <= float(exited["restart_in_s"]) <= 1.0
    assert restarted["event"] == "process_restarted" and restarted["restarts"] == 1
    assert restarted["pid"] == world.latest("api_svc-1").pid
    assert ready["event"] == "process_ready" and ready["process"] == "api_svc-1"
    assert survivor.returncode is None and world.count("api_svc-0") == 1


def test_a_process_that_keeps_failing_waits_longer_each_time(
    world: World, supervisor: Supervisor
) -> None:
    supervisor.start(_spec("triton", ready=False))
    delays = []
    for _ in range(5):
        world.latest("triton").returncode = 1
        with capture_logs() as events:
            supervisor.supervise()
        delays.append(float(events[0]["restart_in_s"]))
        world.now += 10  # past the longest delay
        supervisor.supervise()
    assert world.count("triton") == 6
    # doubling from 1 s, capped at 8 s; each at least half of its full value (logged rounded)
    for delay, full in zip(delays, [1, 2, 4, 8, 8], strict=True):
        assert full / 2 - 0.01 <= delay <= full + 0.01


def test_start_fails_fast_when_a_process_exits_before_it_is_ready(
    world: World, supervisor: Supervisor
) -> None:
    supervisor.start(_spec("admin_svc", ready=False))
    world.latest("admin_svc").returncode = 3
    with pytest.raises(StartError, match="admin_svc exited with code 3 during start"):
        supervisor.wait_ready({"admin_svc"}, timeout_s=5, poll_s=0)


def test_stop_goes_latest_stage_first_and_restarts_nothing(
    world: World, supervisor: Supervisor
) -> None:
    supervisor.start(_spec("postgres", stop_signal=signal.SIGINT), stage=0)
    supervisor.start(_spec("triton"), stage=1)
    supervisor.start(_spec("api_svc-0"), stage=1)
    supervisor.start(_spec("envoy"), stage=2)
    world.latest("triton").returncode = -9
    supervisor.supervise()  # a restart is now pending
    supervisor.stop(grace_s=1)
    assert world.stop_order == ["envoy", "api_svc-0", "postgres"]
    assert world.latest("postgres").signals == [signal.SIGINT]
    assert world.latest("envoy").signals == [signal.SIGTERM]
    world.now += 100
    supervisor.supervise()
    assert world.count("triton") == 1
