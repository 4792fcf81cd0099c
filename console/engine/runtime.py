"""What a run needs at hand: adapters by backend, the thread pool, limits and timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.base import CURRENT_RUN, Adapter, load_adapter_class
from console.engine.limits import BackendLimits, RetryPolicy
from console.errors import AdapterError, ConfigError, ConsoleError, Timeout

if TYPE_CHECKING:
    from console.config import Config

__all__ = ["Runtime"]

T = TypeVar("T")


class Runtime:
    """Adapters (opened lazily, one per backend), the bounded thread pool and the limits.

    Args:
        config: The loaded config.
        max_threads: Upper bound of blocking SDK calls in flight across all backends.
    """

    def __init__(self, config: Config, max_threads: int | None = None) -> None:
        self.config = config
        caps = sum(b.max_concurrency for b in config.backends.values()) or 8
        self.pool = ThreadPoolExecutor(max_workers=max_threads or min(256, max(8, caps)),
                                       thread_name_prefix="adapter")
        self.retry = RetryPolicy(max_attempts=config.settings.max_attempts)
        self._adapters: dict[str, Adapter] = {}
        self._opened: set[str] = set()
        self._limits: dict[tuple[int, str], BackendLimits] = {}
        self._lock = threading.Lock()
        self._backend_locks: dict[str, threading.Lock] = {}
        self.parent: Runtime | None = None
        """The runtime this one is a view of (its clients and pool are the parent's)."""
        self.operator = ""
        """Who is acting (quoted by notifications)."""
        self.runbook = ""
        """The runbook being planned (quoted by notifications)."""
        self.default_timeout: float | None = None
        """When set, caps every per-operation timeout (background observation)."""
        self.run_id = ""
        """The run this runtime serves; every adapter it builds carries it (``User-Agent``)."""

    def view(self, *, run_id: str = "", max_attempts: int | None = None,
             default_timeout: float | None = None) -> Runtime:
        """A runtime for one phase or run that shares this one's adapters (clients), thread
        pool and per-backend limits, with its own run id, retry policy and timeout cap.

        Closing a view closes nothing: the clients live as long as this runtime.
        """
        view = Runtime.__new__(Runtime)
        view.__dict__.update(self.__dict__)
        view.parent = self
        view.retry = RetryPolicy(max_attempts=max_attempts or self.retry.max_attempts)
        view.default_timeout = default_timeout
        view.run_id = run_id
        return view

    def warm(self) -> None:
        """Build and open every configured backend's adapter now (blocking; for a thread),
        so the first plan does not pay for SDK imports and client construction. A backend
        that fails here is left for the call that needs it to report."""
        for backend in self.config.backends:
            try:
                self._opened_adapter(backend)
            except Exception:  # noqa: BLE001, S112 - the real call reports it, with context
                continue

    def _backend_lock(self, backend: str) -> threading.Lock:
        """The lock of one backend: building or opening one adapter never holds up a call
        to another backend whose adapter is ready."""
        with self._lock:
            return self._backend_locks.setdefault(backend, threading.Lock())

    def adapter(self, backend: str) -> Adapter:
        """The adapter serving ``backend`` (constructed, not yet opened)."""
        built_already = self._adapters.get(backend)
        if built_already is not None:
            return built_already
        with self._backend_lock(backend):
            if backend not in self._adapters:
                spec = self.config.backends.get(backend)
                if spec is None:
                    raise ConfigError(
                        f"backend {backend!r} is not defined",
                        where=str(self.config.path),
                        hint=f"define [backends.{backend}] or fix the reference")
                cls = load_adapter_class(spec.type)
                try:
                    built = cls(backend, self._typed(cls, backend, spec.options))
                    self._adapters[backend] = built
                except ConsoleError:
                    raise
                except Exception as exc:  # noqa: BLE001 - an adapter's option parsing
                    raise ConfigError(
                        f"backend {backend!r} ({spec.type}): invalid options: {exc}",
                        where=f"{self.config.path}: [backends.{backend}]",
                        hint=f"fix the options of [backends.{backend}] (see the "
                             f"{spec.type} adapter's OPTIONS)") from exc
            return self._adapters[backend]

    def _typed(self, cls: type[Adapter], backend: str, options: dict[str, Any]) -> dict[str, Any]:
        """The options validated by the adapter's ``Options`` model, files resolved against
        the config's folder (typed fields, never guessed from a key's spelling).

        Raises:
            AdapterError: An option is invalid (the config loader reports it first, with
                its file:line, for a config read from a file).
        """
        typed = cls.Options.parse(backend, options, base_dir=self.config.path.parent)
        spec = self.config.backends.get(backend)
        # the backend's concurrency cap, so that a client sizes its connection pool to it
        cap = {"max_concurrency": spec.max_concurrency} if spec is not None else {}
        return {**options, **typed.to_options(), **cap}

    def limits(self, backend: str) -> BackendLimits:
        """The concurrency cap and rate limit of ``backend`` (created in the running loop)."""
        key = (id(asyncio.get_running_loop()), backend)  # asyncio primitives bind a loop
        if key not in self._limits:
            spec = self.config.backends.get(backend)
            cap = spec.max_concurrency if spec else 8
            rate = spec.rate_per_second if spec else None
            self._limits[key] = BackendLimits(cap, rate)
        return self._limits[key]

    def timeout(self, backend: str, step_timeout: float | None = None) -> float:
        """Per-operation timeout: the step's, else the backend's, else the default."""
        spec = self.config.backends.get(backend)
        limit = step_timeout or (spec.timeout if spec is not None and spec.timeout else None)
        limit = limit or self.config.settings.default_timeout
        return min(limit, self.default_timeout) if self.default_timeout else limit

    def _opened_adapter(self, backend: str) -> Adapter:
        adapter = self.adapter(backend)
        if backend in self._opened:
            return adapter
        with self._backend_lock(backend):
            if backend not in self._opened:
                adapter.open()
                self._opened.add(backend)
        return adapter

    async def call(self, backend: str, fn: Callable[[Adapter], T],
                   timeout: float | None = None) -> T:
        """Run ``fn(adapter)`` in the pool under the backend's limits and timeout.

        Raises:
            AdapterError: From the adapter, or Timeout when no answer came in time (the call
                may still complete in its thread: its outcome is unknown).
        """
        limit = timeout or self.timeout(backend)
        loop = asyncio.get_running_loop()
        async with self.limits(backend):
            ctx = contextvars.copy_context()
            ctx.run(CURRENT_RUN.set, self.run_id)
            fut = loop.run_in_executor(
                self.pool, lambda: ctx.run(lambda: fn(self._opened_adapter(backend))))
            try:
                async with asyncio.timeout(limit):
                    return await fut
            except TimeoutError as exc:
                raise Timeout(f"no answer within {limit:g}s; outcome unknown",
                              where=backend) from exc
            except AdapterError:
                raise
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - an adapter broke the contract
                raise AdapterError(f"{type(exc).__name__}: {exc}", where=backend) from exc

    async def read_call(self, backend: str, fn: Callable[[Adapter], T],
                        timeout: float | None = None) -> T:
        """Like :meth:`call`, for read-only calls: retried on throttling, 5xx and timeouts."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.call(backend, fn, timeout)
            except AdapterError as exc:
                delay = self.retry.delay(attempt, exc)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    def close(self) -> None:
        """Close every opened adapter and the pool (a view closes nothing)."""
        if self.parent is not None:
            return
        for backend in list(self._opened):
            try:
                self._adapters[backend].close()
            except Exception:  # noqa: BLE001, S110 - closing must not mask the run's outcome
                pass
        self.pool.shutdown(wait=False, cancel_futures=True)

    def describe(self, backend: str) -> dict[str, Any]:
        """Backend name and adapter type, for messages."""
        spec = self.config.backends.get(backend)
        return {"backend": backend, "type": spec.type if spec else "?"}
