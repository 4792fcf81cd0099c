"""Retry policy and rate limits, as an operator would notice them."""

from __future__ import annotations

import asyncio
import time

from console.engine.limits import BackendLimits, RetryPolicy
from console.errors import AuthError, RateLimited, Unavailable


def test_backoff_grows_with_jitter_and_caps() -> None:
    policy = RetryPolicy(max_attempts=10, base=0.5, cap=8.0)
    err = Unavailable("503")
    delays = [policy.delay(n, err) for n in range(1, 8)]
    assert all(d is not None for d in delays)
    assert 0.375 <= delays[0] <= 0.5  # 0.5 minus up to 25 % jitter
    assert 6.0 <= delays[-1] <= 8.0  # capped at 8 s
    assert policy.delay(10, err) is None  # out of attempts


def test_retry_after_is_honoured_and_a_huge_one_gives_up() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert policy.delay(1, RateLimited("429", retry_after=3.0)) == 3.0
    assert policy.delay(1, RateLimited("429", retry_after=600)) is None


def test_non_retryable_errors_are_not_retried() -> None:
    assert RetryPolicy().delay(1, AuthError("401 bad key")) is None


async def test_rate_limit_spaces_calls() -> None:
    limits = BackendLimits(max_concurrency=8, rate_per_second=20)
    start = time.monotonic()

    async def call() -> None:
        async with limits:
            pass

    await asyncio.gather(*(call() for _ in range(30)))
    # a burst of 20 then 10 more at 20/s: at least 0.45 s
    assert time.monotonic() - start >= 0.45


async def test_concurrency_cap_is_respected() -> None:
    limits = BackendLimits(max_concurrency=3, rate_per_second=None)
    inflight = peak = 0

    async def call() -> None:
        nonlocal inflight, peak
        async with limits:
            inflight += 1
            peak = max(peak, inflight)
            await asyncio.sleep(0.01)
            inflight -= 1

    await asyncio.gather(*(call() for _ in range(20)))
    assert peak == 3


def test_partial_progress_is_not_drift() -> None:
    from console.engine.executor import on_the_way

    before = {"versions": {"1": "ENABLED", "2": "ENABLED"}}
    after = {"versions": {"1": "DISABLED", "2": "DISABLED"}}
    assert on_the_way(before, {"versions": {"1": "DISABLED", "2": "ENABLED"}}, after)
    assert not on_the_way(before, {"versions": {"1": "DESTROYED", "2": "ENABLED"}}, after)
    assert not on_the_way(before, {"versions": {"1": "ENABLED", "2": "ENABLED", "3": "ENABLED"}},
                          after)
