"""Retry delays shared by the services: exponential backoff with jitter, from tenacity."""

from __future__ import annotations

from tenacity import wait_exponential, wait_random_exponential
from tenacity.wait import wait_base


def jittered_backoff(first_s: float, cap_s: float) -> wait_base:
    """Delays that double from ``first_s`` up to ``cap_s``, each drawn uniformly from the upper
    half of its step ("equal jitter"): nodes that lost the same server do not come back in
    lockstep, and no delay is shorter than half its step."""
    return wait_exponential(multiplier=first_s / 2, max=cap_s / 2) + wait_random_exponential(
        multiplier=first_s / 2, max=cap_s / 2
    )
