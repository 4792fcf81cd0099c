"""Per-backend concurrency caps, rate limits and the retry policy."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from console.errors import AdapterError

__all__ = ["BackendLimits", "RetryPolicy", "TokenBucket"]


class TokenBucket:
    """An asyncio token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a token is available and take it."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, honouring the provider's Retry-After.

    Attributes:
        max_attempts: Total attempts, the first included.
        base: First backoff, seconds.
        cap: Longest backoff, seconds.
        max_retry_after: A Retry-After above this is not waited for: the op fails instead.
    """

    max_attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, error: AdapterError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        retry_after: float | None = error.retry_after
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return max(0.0, retry_after)
        backoff = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return backoff * (1 - random.random() * 0.25)


class BackendLimits:
    """The semaphore and optional token bucket of one backend."""

    def __init__(self, max_concurrency: int, rate_per_second: float | None) -> None:
        self.semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self.bucket = TokenBucket(rate_per_second) if rate_per_second else None

    async def __aenter__(self) -> BackendLimits:
        await self.semaphore.acquire()
        if self.bucket is not None:
            try:
                await self.bucket.acquire()
            except BaseException:
                self.semaphore.release()
                raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.semaphore.release()
