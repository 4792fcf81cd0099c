"""The run journal: audit events written before and after every side effect.

Durability only where it matters (issue 11 §3):

* :meth:`Journal.record` queues an event and waits until it is durable. The intent to make a
  side effect (``started``) goes this way, so nothing touches the outside world before the
  trail says it will (fail closed).
* :meth:`Journal.post` queues an event and returns at once. Outcome and verify events go this
  way: resume re-reads every target whose operation started, so an outcome lost in a crash is
  recovered by reading, never repeated. A posted event is committed with the next durable
  write (the next intent, the run's ``finished`` event, :meth:`Journal.flush` or
  :meth:`Journal.aclose`), in the same transaction, in queue order.

Events are group-committed: every event queued while the previous transaction was being
written goes into the next one, so a run with 64 operations in flight pays for a handful of
fsyncs instead of 128. The hash chain follows the queue order exactly: one writer task takes
the queue in order and writes each batch in one transaction.

A failed write poisons the journal: the error is kept, nothing queued after it is written
(a later event must not be stored when an earlier one was lost), and every later
:meth:`~Journal.record`, :meth:`~Journal.post` and :meth:`~Journal.flush` raises it. A
failure that hit only posted events (nobody was waiting) is raised by the next awaited call,
or by :meth:`Journal.aclose`, so a run whose trail failed never reports success.

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


_Item = tuple[dict[str, Any] | None, "asyncio.Future[None] | None"]
"""A queued event (None: a flush marker) and the future of whoever waits for it (None:
posted, nobody waits)."""


class Journal:
    """Group-committing writer of one run's events.

    Args:
        audit: The audit trail.
        base: Fields every event of the run carries (run_id, incident, operator, mode).
    """

    def __init__(self, audit: AuditSink, base: dict[str, Any]) -> None:
        self.audit = audit
        self.base = dict(base)
        self._queue: asyncio.Queue[_Item] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.failed: AuditError | None = None
        """The write failure that poisoned this journal (None while the trail is healthy)."""
        self._surfaced = False  # the failure has been raised to some caller
        self.transactions = 0
        """Transactions written (benchmarks: events per fsync)."""
        self.events = 0
        """Events committed."""
        self.head: tuple[int, str] | None = None
        """``(seq, hash)`` of the newest event this journal committed (None before any)."""

    def _committed(self, stored: Any) -> None:
        """Remember the newest committed event as the head."""
        if isinstance(stored, list) and stored and isinstance(stored[-1], dict):
            seq, digest = stored[-1].get("seq"), stored[-1].get("hash")
            if isinstance(seq, int) and isinstance(digest, str):
                self.head = (seq, digest)

    def write_now(self, **fields: Any) -> None:
        """Write one event synchronously (outside the event loop, nothing queued)."""
        if self._queue is not None and not self._queue.empty():
            raise AuditError("journal: write_now with events still queued would reorder "
                             "the trail; flush first")
        self._committed(self.audit.append_many([{**self.base, **fields}]))

    def _raise_failed(self) -> None:
        if self.failed is not None:
            self._surfaced = True
            raise self.failed

    def _put(self, event: dict[str, Any] | None, fut: asyncio.Future[None] | None) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
            self._writer = asyncio.create_task(self._write_loop())
        self._queue.put_nowait((event, fut))

    async def _wait(self, fut: asyncio.Future[None]) -> None:
        try:
            await fut
        except AuditError:
            self._surfaced = True
            raise

    async def record(self, **fields: Any) -> None:
        """Queue an event and wait until it (and everything queued before it) is committed.

        Raises:
            AuditError: The trail could not be written (now or for an earlier event); the
                caller must not go on.
        """
        self._raise_failed()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put({**self.base, **fields}, fut)
        await self._wait(fut)

    def post(self, **fields: Any) -> None:
        """Queue an event and return at once; the next durable write commits it.

        For events whose loss a resume recovers (outcomes, verdicts). Must be called from the
        event loop.

        Raises:
            AuditError: An earlier write failed (the journal is poisoned).
        """
        self._raise_failed()
        self._put({**self.base, **fields}, None)

    async def flush(self) -> None:
        """Wait until every queued event is committed.

        Raises:
            AuditError: Some event could not be written.
        """
        self._raise_failed()
        if self._queue is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(None, fut)
        await self._wait(fut)

    async def _write_loop(self) -> None:
        assert self._queue is not None and self._pool is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            # one more turn of the loop: callers woken by the last commit (and the operations
            # they let start) queue their events too, and share this transaction
            await asyncio.sleep(0)
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events = [e for e, _ in batch if e is not None]
            if self.failed is None and events:
                try:
                    stored = await loop.run_in_executor(self._pool, self.audit.append_many,
                                                        events)
                    self.transactions += 1
                    self.events += len(events)
                    self._committed(stored)
                except Exception as exc:  # noqa: BLE001 - converted and handed to every waiter
                    self.failed = exc if isinstance(exc, AuditError) else AuditError(
                        f"audit trail write failed: {exc}",
                        hint="check the audit_db path, disk space and permissions")
            for _, fut in batch:
                if fut is None or fut.done():
                    continue
                if self.failed is not None:
                    fut.set_exception(self.failed)
                else:
                    fut.set_result(None)

    async def aclose(self) -> None:
        """Commit everything queued, then stop the writer.

        Raises:
            AuditError: Some event could not be written and no caller has been told yet
                (a posted event): the run must not report success.
        """
        try:
            if self._queue is not None and self.failed is None:
                try:
                    await self.flush()
                except AuditError:
                    self._surfaced = False  # told nobody but aclose's caller: raise below
        finally:
            if self._writer is not None:
                self._writer.cancel()
                try:
                    await self._writer
                except asyncio.CancelledError:
                    pass
                self._writer = None
            self._queue = None
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        if self.failed is not None and not self._surfaced:
            self._surfaced = True
            raise self.failed
