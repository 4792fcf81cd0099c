"""One retry helper for the few places an adapter must retry inside one operation.

The engine retries whole operations (``console.engine.limits.RetryPolicy``). An adapter retries
only inside a change made of several calls, where an error half-way would leave a state that
is neither the plan's ``before`` nor its ``after`` (the engine would refuse that as drift), and
while it polls a job until it reaches a final state.

Built on stamina (itself on tenacity): exponential backoff with jitter, a cap on attempts and
on the total time, and a hook that honours the provider's Retry-After. stamina rather than
plain tenacity because its defaults are already production-sane, its backoff hook lets a
Retry-After replace the computed wait in one line, and ``stamina.set_testing`` turns waits
off for tests without monkeypatching ``time.sleep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import stamina

from console.errors import AdapterError

__all__ = ["NotYet", "poll", "retry_call"]

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a poll's ``get`` while the thing polled is not final yet."""


def _hook(classify: Callable[[BaseException], AdapterError | None],
          max_wait: float) -> Callable[[Exception], bool | float]:
    def on(exc: Exception) -> bool | float:
        if isinstance(exc, NotYet):
            return True
        mapped = exc if isinstance(exc, AdapterError) else classify(exc)
        if mapped is None or not mapped.retryable:
            return False
        if mapped.retry_after is not None:
            return min(max(0.0, float(mapped.retry_after)), max_wait)
        return True
    return on


def retry_call(call: Callable[[], T], *, attempts: int = 5, max_wait: float = 10.0,
               wait_initial: float = 0.1, wait_max: float = 2.0,
               classify: Callable[[BaseException], AdapterError | None] = lambda _: None,
               ) -> T:
    """``call()``, retried on retryable errors (AdapterError, or what ``classify`` maps).

    Args:
        call: The call.
        attempts: Total attempts, the first included.
        max_wait: Longest single wait, seconds (a longer Retry-After is cut to it).
        wait_initial: First backoff, seconds.
        wait_max: Longest computed backoff, seconds.
        classify: Maps a driver exception to the AdapterError it means (None: not retryable).

    Raises:
        Exception: The last error, unchanged, once attempts are spent or it is not retryable.
    """
    for attempt in stamina.retry_context(
            on=_hook(classify, max_wait), attempts=attempts, timeout=None,
            wait_initial=wait_initial, wait_max=wait_max, wait_jitter=wait_initial):
        with attempt:
            return call()
    raise AssertionError("unreachable")  # pragma: no cover - retry_context raises


def poll(get: Callable[[], T], *, timeout: float, wait_initial: float = 0.1,
         wait_max: float = 2.0) -> T:
    """``get()`` until it stops raising :class:`NotYet` or a retryable AdapterError.

    Raises:
        NotYet: Still not final when ``timeout`` seconds have passed.
        AdapterError: A non-retryable error, or a retryable one at the deadline.
    """
    for attempt in stamina.retry_context(
            on=_hook(lambda _: None, wait_max), attempts=None, timeout=timeout,
            wait_initial=wait_initial, wait_max=wait_max, wait_jitter=wait_initial):
        with attempt:
            return get()
    raise AssertionError("unreachable")  # pragma: no cover
