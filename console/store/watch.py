"""A change feed of the store: what another commander just did, as soon as the store knows.

:class:`Watcher` tells its reader three things, as :class:`Change` values:

- ``trail``: the trail has events up to ``seq`` (read them with ``events_after``);
- ``locks``: the lock table now holds ``locks`` (someone took or released one);
- ``approvals``: the pending approvals (and co-signatures) are now ``approvals``;

and, as ``state``, how it is watching: ``live`` (PostgreSQL LISTEN on the trail's channel),
``polling`` (SQLite, or a PostgreSQL where LISTEN cannot work: the trail head is read every
:attr:`Watcher.poll` seconds, which is cheap), or ``reconnecting`` (the store cannot be
reached: it is tried again, with a growing pause, until it answers; the reader keeps what it
last saw and says it is not current).

On PostgreSQL every append notifies ``trail_channel(conn)`` with the new ``seq`` in the
appending transaction (:mod:`console.store.pg_audit`), so a console hears of another
commander's event when it commits. A notification whose payload is not a number (a lock or
an approval changing) makes the locks and approvals be read at once. Locks and approvals
are also read every :attr:`Watcher.slow` seconds and after every trail move, so nothing
depends on who notifies what.

Nothing here blocks the event loop: PostgreSQL is listened to with psycopg's async
connection and every other store call runs in a thread. Looking never creates a trail: an
SQLite file that does not exist yet is reported as an empty trail until it appears. This
module has no Textual in it (the headless CLI may use it too).

Example::

    async for change in Watcher(config):
        if change.kind == "trail":
            new = trail.events_after(seen, 500)
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from console.errors import ConsoleError

if TYPE_CHECKING:
    from console.config import Config

__all__ = ["RETRY", "Change", "ChangeKind", "Watcher", "WatchState", "lock_key"]

ChangeKind = Literal["trail", "locks", "approvals", "state"]
WatchState = Literal["starting", "live", "polling", "reconnecting", "off"]

RETRY = (0.5, 1.0, 2.0, 5.0)
"""Pauses between attempts to reach a store that went away (the last one repeats)."""


@dataclass(frozen=True)
class Change:
    """One thing the store says changed (or how it is being watched)."""

    kind: ChangeKind
    """``trail``, ``locks``, ``approvals`` or ``state``."""
    seq: int = 0
    """``trail``: the newest event's sequence number (0: no event yet)."""
    locks: tuple[Any, ...] = ()
    """``locks``: every lock held now (:class:`console.engine.locks.Lock` or its twin)."""
    approvals: tuple[Any, ...] = ()
    """``approvals``: every pending approval and co-signature."""
    state: WatchState = "starting"
    """``state``: ``live``, ``polling``, ``reconnecting`` or ``off``."""
    detail: str = ""
    """``state``: why (the store's error, without a password), or how it is watched."""


def lock_key(lock: Any) -> tuple[Any, ...]:
    """What identifies a holding (a renewed lease is not a change)."""
    return tuple(getattr(lock, f, None) for f in
                 ("integration", "run_id", "operator", "host", "pid", "since", "token"))


def _approval_key(approval: Any) -> tuple[Any, ...]:
    return tuple(getattr(approval, f, None) for f in ("id", "kind", "status", "plan_hash"))


class _ListenUnavailable(Exception):
    """LISTEN cannot work on this store (a transaction pooler): poll instead."""


class Watcher:
    """Watch the configured store for other commanders' events, locks and approvals.

    Iterate it (``async for change in watcher``) or hand it a callback (:meth:`run`). It
    runs until :meth:`close` (or the task reading it is cancelled) and never raises for a
    store that is unreachable: it says ``reconnecting`` and tries again.

    Args:
        config: The loaded config (``settings.store`` / ``$KILLSWITCH_STORE``).
        poll: Seconds between reads of the trail head when polling.
        slow: Seconds between reads of the locks and the approvals (also read after every
            trail move), and between liveness checks of the LISTEN connection.
        listen: Use PostgreSQL LISTEN when the store is PostgreSQL (False: always poll).
        retry: Pauses between attempts to reach a store that went away.
    """

    def __init__(self, config: Config, *, poll: float = 1.0, slow: float = 3.0,
                 listen: bool = True, retry: tuple[float, ...] = RETRY) -> None:
        self.config = config
        self.poll = poll
        self.slow = slow
        self.listen = listen
        self.retry = retry or RETRY
        self.state: WatchState = "starting"
        """How the store is watched now."""
        self.detail = ""
        """Why (the last error), or how."""
        self._closed = False
        self._trail: Any = None
        self._present = False
        self._locks: tuple[tuple[Any, ...], ...] | None = None
        self._approvals: tuple[tuple[Any, ...], ...] | None = None
        self._approvals_off = False
        self._lock_table: Any = None
        self._approval_store: Any = None

    # -- the reader's side -----------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Change]:
        return self.changes()

    async def run(self, callback: Callable[[Change], Awaitable[None] | None]) -> None:
        """Call ``callback`` with every change until closed (or cancelled)."""
        async with contextlib.aclosing(self.changes()) as feed:
            async for change in feed:
                result = callback(change)
                if result is not None:
                    await result

    def close(self) -> None:
        """Stop watching (the iteration ends at its next step) and close what is open."""
        self._closed = True
        self._drop_trail()

    async def changes(self) -> AsyncGenerator[Change, None]:
        """Every change, as it happens; the first ones say what the store holds now."""
        from console.store import store_url

        try:
            url = store_url(self.config)
        except ConsoleError as exc:
            yield self._say("off", exc.msg)
            return
        attempt = 0
        while not self._closed:
            try:
                if url and self.listen:
                    feed = self._listening(url)
                else:
                    feed = self._polling()
                async with contextlib.aclosing(feed) as changes:
                    async for change in changes:
                        if change.kind == "state" and change.state in ("live", "polling"):
                            attempt = 0
                        yield change
                        if self._closed:
                            return
            except _ListenUnavailable as exc:
                self.listen = False
                self._forget()
                yield self._say("polling", f"LISTEN unavailable ({exc}); polling the trail")
            except Exception as exc:  # noqa: BLE001 - whatever the store says, watch on
                self._drop_trail()
                self._forget()
                yield self._say("reconnecting", _why(exc, url))
                await asyncio.sleep(self.retry[min(attempt, len(self.retry) - 1)])
                attempt += 1

    # -- watching --------------------------------------------------------------------------
    def _say(self, state: WatchState, detail: str) -> Change:
        self.state, self.detail = state, detail
        return Change("state", state=state, detail=detail)

    def _forget(self) -> None:
        """After a reconnection, say everything again (the reader may have missed some)."""
        self._locks = self._approvals = None

    async def _polling(self) -> AsyncGenerator[Change, None]:
        """Read the trail head every :attr:`poll` s; locks and approvals every :attr:`slow`."""
        last = -1
        last_slow = 0.0
        said = False
        while not self._closed:
            head = await asyncio.to_thread(self._head)
            if not said:
                said = True
                yield self._say("polling", f"reading the trail every {self.poll:g} s")
            moved = head != last
            if moved:
                last = head
                yield Change("trail", seq=head)
            if moved or time.monotonic() - last_slow >= self.slow:
                last_slow = time.monotonic()
                for change in await asyncio.to_thread(self._slow_changes):
                    yield change
            await asyncio.sleep(self.poll)

    async def _listening(self, url: str) -> AsyncGenerator[Change, None]:
        """LISTEN on the trail's channel; every notification is a trail move (or, without a
        number, a reason to read the locks and approvals)."""
        import psycopg
        from psycopg import sql

        channel = await asyncio.to_thread(self._channel, url)
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=5, keepalives=1, keepalives_idle=5,
            keepalives_interval=2, keepalives_count=2)
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            yield self._say("live", f"listening on {channel}")
            last = await asyncio.to_thread(self._head)
            yield Change("trail", seq=last)
            for change in await asyncio.to_thread(self._slow_changes):
                yield change
            last_slow, slow_due = time.monotonic(), False
            while not self._closed:
                every = self.poll if slow_due else self.slow
                wait = max(last_slow + every - time.monotonic(), 0.05)
                heard = False
                async with contextlib.aclosing(conn.notifies(timeout=wait)) as notes:
                    async for note in notes:
                        heard = True
                        try:
                            seq = int(note.payload)
                        except ValueError:
                            slow_due = True  # a lock or an approval changed
                            continue
                        if seq > last:
                            last = seq
                            yield Change("trail", seq=seq)
                            slow_due = True
                every = self.poll if slow_due else self.slow
                if time.monotonic() - last_slow < every:
                    continue
                if not heard and not slow_due:  # a quiet while: is the connection alive?
                    await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)
                for change in await asyncio.to_thread(self._slow_changes):
                    yield change
                last_slow, slow_due = time.monotonic(), False
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- blocking reads (in a thread) ------------------------------------------------------
    def _channel(self, url: str) -> str:
        """The trail's NOTIFY channel (and the pooler check, once per URL per process)."""
        from console.errors import AuditError
        from console.store.pg import connect

        try:
            conn = connect(url, timeout=2)
        except AuditError as exc:
            if "pool" in exc.msg:
                raise _ListenUnavailable(exc.msg) from exc
            raise
        try:
            from console.store.pg_audit import trail_channel

            return str(trail_channel(conn))
        finally:
            conn.close()

    def _has_trail(self) -> bool:
        """The store holds a trail (an SQLite file with its ``events`` table; a schema with
        the trail's tables): looking creates nothing."""
        if not self._present:
            from console.store import has_trail, store_url

            if store_url(self.config):
                self._present = has_trail(self.config)
            else:
                self._present = _sqlite_has_events(
                    self.config.resolve(self.config.settings.audit_db))
        return self._present

    def _store_exists(self) -> bool:
        """There is a store to read locks and approvals from (a lock may be taken before
        the first event is written): the SQLite file exists, or PostgreSQL is configured."""
        from console.store import store_url

        return bool(store_url(self.config)) or \
            self.config.resolve(self.config.settings.audit_db).exists()

    def _head(self) -> int:
        """The newest event's seq (0 while there is no trail: looking creates none)."""
        if self._trail is None:
            if not self._has_trail():
                return 0
            from console.store import open_audit

            self._trail = open_audit(self.config, readonly=True)
        try:
            return int(self._trail.head().seq)
        except BaseException:
            self._drop_trail()
            raise

    def _drop_trail(self) -> None:
        """Close the trail, the lock table and the approvals (reopened when next read)."""
        for name in ("_trail", "_lock_table", "_approval_store"):
            thing = getattr(self, name)
            setattr(self, name, None)
            close = getattr(thing, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _slow_changes(self) -> list[Change]:
        """Locks and approvals, when they differ from what was said last."""
        out: list[Change] = []
        if not self._store_exists():
            locks: list[Any] = []
        else:
            if self._lock_table is None:
                from console.store import open_locks

                self._lock_table = open_locks(self.config)
            locks = list(self._lock_table.held())
        locks.sort(key=lambda lk: str(getattr(lk, "integration", "")))
        keys = tuple(lock_key(lk) for lk in locks)
        if keys != self._locks:
            self._locks = keys
            out.append(Change("locks", locks=tuple(locks)))
        pending = self._pending()
        if pending is not None:
            akeys = tuple(_approval_key(a) for a in pending)
            if akeys != self._approvals:
                self._approvals = akeys
                out.append(Change("approvals", approvals=tuple(pending)))
        return out

    def _pending(self) -> list[Any] | None:
        """Pending approvals, or None where the store keeps none (yet)."""
        if self._approvals_off:
            return None
        if not self._store_exists():
            return []
        if self._approval_store is None:
            from console.store import open_approvals

            try:
                self._approval_store = open_approvals(self.config)
            except ImportError:  # a console without the two-person rule
                self._approvals_off = True
                return None
        return list(self._approval_store.pending())


def _sqlite_has_events(path: Path) -> bool:
    """The SQLite file exists and has the trail's ``events`` table (opened read-only)."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                           "AND name = 'events'").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None


def _why(exc: BaseException, url: str) -> str:
    """A person-readable reason, never a password."""
    if isinstance(exc, ConsoleError):
        return exc.msg
    if isinstance(exc, asyncio.TimeoutError):
        return "the store did not answer in time"
    if url:
        from console.store.pg import store_error

        return store_error(url, "reach the shared store", exc).msg
    return str(exc) or type(exc).__name__
