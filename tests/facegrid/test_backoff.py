"""Jittered exponential backoff: doubles up to its cap, never below half a step, not in step."""

from tenacity import RetryCallState

from facegrid.backoff import jittered_backoff


def _delay(wait, attempt: int) -> float:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return wait(state)


def test_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    wait = jittered_backoff(0.1, 5.0)
    for attempt, step in ((1, 0.1), (2, 0.2), (3, 0.4), (6, 3.2), (7, 5.0), (60, 5.0)):
        delays = [_delay(wait, attempt) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), attempt
        assert len(set(delays)) > 100, "every draw is jittered"


def test_zero_delays_for_tests() -> None:
    assert _delay(jittered_backoff(0.0, 0.0), 3) == 0.0
