"""The run journal: audit events written before and after every side effect.

Events are group-committed: every event queued while the previous transaction was being
written goes into the next one, so a run with 64 operations in flight pays for a handful of
fsyncs instead of 128, and each caller still waits until *its* event is durable before it
touches the outside world (fail closed).

:attr:`Journal.head` is the ``(seq, hash)`` of the newest event this journal has committed:
the trail's head as this run last wrote it, which notifications quote (``Chain: seq N, hash
...``) so that their recipients hold a witness of the trail.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from console.errors import AuditError

__all__ = ["Journal", "AuditSink"]


class AuditSink(Protocol):
    """What the journal needs of the audit trail."""

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write events in one transaction."""
        ...


class Journal:
    """Group-committing writer of one run's events.

    Args:
        audit: The audit trail.
        base: Fields every event of the run carries (run_id, incident, operator, mode).
    """

    def __init__(self, audit: AuditSink, base: dict[str, Any]) -> None:
        self.audit = audit
        self.base = dict(base)
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self.failed: AuditError | None = None
        self.transactions = 0
        self.head: tuple[int, str] | None = None
        """``(seq, hash)`` of the newest event this journal committed (None before any)."""

    def _committed(self, stored: Any) -> None:
        """Remember the newest committed event as the head."""
        if isinstance(stored, list) and stored and isinstance(stored[-1], dict):
            seq, digest = stored[-1].get("seq"), stored[-1].get("hash")
            if isinstance(seq, int) and isinstance(digest, str):
                self.head = (seq, digest)

    def write_now(self, **fields: Any) -> None:
        """Write one event synchronously (outside the event loop)."""
        self._committed(self.audit.append_many([{**self.base, **fields}]))

    async def record(self, **fields: Any) -> None:
        """Queue an event and wait until it is committed.

        Raises:
            AuditError: The trail could not be written; the caller must not go on.
        """
        if self.failed is not None:
            raise self.failed
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._write_loop())
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(({**self.base, **fields}, fut))
        await fut

    async def _write_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events = [e for e, _ in batch]
            try:
                stored = await loop.run_in_executor(self._pool, self.audit.append_many, events)
                self.transactions += 1
                self._committed(stored)
            except Exception as exc:  # noqa: BLE001 - converted and handed to every waiter
                err = exc if isinstance(exc, AuditError) else AuditError(
                    f"audit trail write failed: {exc}",
                    hint="check the audit_db path, disk space and permissions")
                self.failed = err
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def aclose(self) -> None:
        """Flush and stop the writer."""
        if self._queue is not None:
            while not self._queue.empty():
                await asyncio.sleep(0.001)
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)
