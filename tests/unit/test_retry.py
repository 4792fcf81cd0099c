"""The one adapter retry helper: retries what is retryable, honours Retry-After, stops."""

from __future__ import annotations

import time

import pytest

from adapters.retry import NotYet, poll, retry_call
from console.errors import NotFound, RateLimited, Unavailable


def test_retries_retryable_errors_then_succeeds() -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Unavailable("503")
        return "ok"

    assert retry_call(flaky, wait_initial=0.01, wait_max=0.02) == "ok"
    assert len(calls) == 3


def test_honours_retry_after_and_caps_it() -> None:
    calls: list[float] = []

    def throttled() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RateLimited("429", retry_after=0.3)
        return "ok"

    assert retry_call(throttled, max_wait=0.2) == "ok"
    assert 0.18 <= calls[1] - calls[0] < 1.0  # waited the capped Retry-After, not 0.1 s


def test_non_retryable_and_spent_attempts_raise_the_error_unchanged() -> None:
    calls = []

    def missing() -> None:
        calls.append(1)
        raise NotFound("404")

    with pytest.raises(NotFound):
        retry_call(missing)
    assert calls == [1]

    def down() -> None:
        calls.append(1)
        raise Unavailable("503")

    with pytest.raises(Unavailable):
        retry_call(down, attempts=3, wait_initial=0.01, wait_max=0.01)
    assert len(calls) == 4


def test_driver_errors_are_classified() -> None:
    seen = []

    def boto() -> str:
        seen.append(1)
        if len(seen) == 1:
            raise KeyError("Throttling")
        return "ok"

    assert retry_call(boto, classify=lambda e: RateLimited("t") if isinstance(e, KeyError)
                      else None, wait_initial=0.01) == "ok"


def test_poll_waits_for_a_final_state_and_gives_up_at_the_deadline() -> None:
    states = iter(["running", "running", "cancelled"])

    def get() -> str:
        s = next(states)
        if s != "cancelled":
            raise NotYet(s)
        return s

    assert poll(get, timeout=5, wait_initial=0.01) == "cancelled"
    start = time.monotonic()
    with pytest.raises(NotYet):
        poll(lambda: (_ for _ in ()).throw(NotYet("running")), timeout=0.3, wait_initial=0.05)
    assert time.monotonic() - start < 3
