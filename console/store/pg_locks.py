"""Per-integration locks in the shared PostgreSQL store: the twin of
:class:`console.engine.locks.LockTable`, with the same rows, rules and methods.

- The ``locks`` table and the ``lock_tokens`` sequence live in the URL's current schema
  (unqualified names), so several schemas of one database never see each other's locks.
- Every write (acquire, renew, release) is one transaction under
  ``pg_advisory_xact_lock(advisory_key(conn, "locks"))``: acquires are totally ordered, and
  the lock ends with the transaction, so nothing leaks when a connection drops (no session
  lock is ever taken). Rows are read ``FOR UPDATE`` on top of it.
- Fencing tokens come from the ``lock_tokens`` sequence: ``nextval`` only ever increases, and
  a rolled-back acquire leaves a gap, never a repeat.
- Leases are measured on the **server's** clock (``clock_timestamp()``), so commanders whose
  laptops disagree about the time still agree on when a lease ends.
- :meth:`PgLockTable.fence` (before every side effect) is a single read on a kept connection.
- Taking, releasing, planting or dropping a lock notifies the trail's channel with the payload
  ``locks`` (:func:`console.store.pg_audit.trail_channel`), so watching consoles re-read the
  locks at once.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import psycopg

from console.engine.locks import (
    LEASE_SECONDS,
    Lock,
    TakenLocks,
    holder_gone,
    lock_lost,
    process_start,
    refusal,
)
from console.identity import host_name
from console.store.pg import advisory_key, connect, store_error
from console.store.pg_audit import trail_channel

__all__ = ["PgLockTable"]

T = TypeVar("T")

_DDL = (
    """CREATE TABLE IF NOT EXISTS locks (
        integration TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        operator TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        since TEXT NOT NULL,
        pid_start TEXT NOT NULL DEFAULT '',
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        token BIGINT NOT NULL DEFAULT 0
    )""",
    "CREATE SEQUENCE IF NOT EXISTS lock_tokens",
)
_COLUMNS = "integration, run_id, operator, host, pid, since, pid_start, lease_until, token"
_NOW = "extract(epoch FROM clock_timestamp())::float8"
_UPSERT = (f"INSERT INTO locks ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
           "ON CONFLICT (integration) DO UPDATE SET run_id = EXCLUDED.run_id, "
           "operator = EXCLUDED.operator, host = EXCLUDED.host, pid = EXCLUDED.pid, "
           "since = EXCLUDED.since, pid_start = EXCLUDED.pid_start, "
           "lease_until = EXCLUDED.lease_until, token = EXCLUDED.token")

Conn = psycopg.Connection[Any]

_ready: set[str] = set()
"""Store URLs whose table and sequence this process has created or seen."""


def _lock(row: Any) -> Lock:
    return Lock(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), str(row[5]),
                str(row[6]), float(row[7]), int(row[8]))


class PgLockTable(TakenLocks):
    """The ``locks`` table of a PostgreSQL store.

    Args:
        url: The store's ``postgresql://`` URL (its ``search_path`` picks the schema).
        lease: Seconds a lock outlives its holder's last renewal (``settings.lock_lease``).
    """

    def __init__(self, url: str, lease: float = LEASE_SECONDS) -> None:
        self.url = url
        self.lease = lease
        self._mine: dict[str, dict[str, Lock]] = {}
        self._conn: Conn | None = None
        self._key = 0
        self._channel = ""
        self._guard = threading.Lock()
        self._skew = 0.0
        """Server clock minus this host's, as last seen (for :meth:`holder_gone`)."""

    # -- plumbing -----------------------------------------------------------------------
    def _connection(self) -> Conn:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = connect(self.url)
        try:
            self._key = advisory_key(conn, "locks")
            self._channel = trail_channel(conn)
            if self.url not in _ready:  # once per store per process
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
                    for ddl in _DDL:
                        conn.execute(ddl)
                _ready.add(self.url)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        weakref.finalize(self, conn.close)
        return conn

    def _run(self, doing: str, fn: Callable[[Conn], T]) -> T:
        """``fn(connection)`` on the kept connection; a dropped connection is opened again
        once (every write is one transaction, and each is safe to repeat)."""
        with self._guard:
            for attempt in (1, 2):
                try:
                    return fn(self._connection())
                except psycopg.OperationalError as exc:
                    self._close()
                    if attempt == 2:
                        raise store_error(self.url, doing, exc) from exc
                except psycopg.Error as exc:
                    raise store_error(self.url, doing, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        """Close the kept connection (a later call opens another)."""
        with self._guard:
            self._close()

    def _now(self, conn: Conn) -> float:
        row = conn.execute(f"SELECT {_NOW}").fetchone()
        now = float(row[0]) if row else time.time()
        self._skew = now - time.time()
        return now

    def _rows(self, conn: Conn, integrations: Iterable[str], *,
              for_update: bool = False) -> dict[str, Lock]:
        sql = f"SELECT {_COLUMNS} FROM locks WHERE integration = ANY(%s)"
        if for_update:
            sql += " ORDER BY integration FOR UPDATE"
        return {r[0]: _lock(r) for r in conn.execute(sql, (list(integrations),)).fetchall()}

    def _serialize(self, conn: Conn) -> None:
        """Take the store's lock-table advisory lock for the current transaction."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))

    def _announce(self, conn: Conn) -> None:
        """Tell watching consoles (:mod:`console.store.watch`) the locks changed, when the
        current transaction commits (a payload that is not a trail ``seq``)."""
        conn.execute("SELECT pg_notify(%s, 'locks')", (self._channel,))

    # -- the table ----------------------------------------------------------------------
    def held(self) -> list[Lock]:
        """Every lock currently recorded."""
        def go(conn: Conn) -> list[Lock]:
            self._now(conn)
            return [_lock(r) for r in conn.execute(
                f"SELECT {_COLUMNS} FROM locks ORDER BY integration").fetchall()]
        return self._run("read the lock table", go)

    def holder_gone(self, lock: Lock, now: float | None = None) -> bool:
        """True when the holder provably cannot act any more: on this host its process is
        gone; elsewhere its lease expired by the server's clock (as last seen)."""
        return holder_gone(lock, now if now is not None else time.time() + self._skew)

    def acquire(self, integrations: list[str], run_id: str, operator: str,
                since: str) -> list[Lock]:
        """Take every lock or none, under a new fencing token (one transaction).

        Returns:
            The locks of dead holders that were taken over (:meth:`mine` has the new ones).

        Raises:
            LockHeld: A holder that may still be alive has one of them (this run's own
                id included).
            AuditError: The store cannot be reached.
        """
        host, pid = host_name(), os.getpid()
        names = list(dict.fromkeys(integrations))

        def go(conn: Conn) -> tuple[list[Lock], dict[str, Lock]]:
            stale: list[Lock] = []
            with conn.transaction():
                self._serialize(conn)
                now = self._now(conn)
                for lock in self._rows(conn, names, for_update=True).values():
                    if lock.host == host and lock.pid == pid and lock.run_id == run_id:
                        continue  # this process already holds it for this run
                    if holder_gone(lock, now):
                        stale.append(lock)
                        continue
                    raise refusal(lock, run_id, self.lease)  # rolls the transaction back
                row = conn.execute("SELECT nextval('lock_tokens')").fetchone()
                token = int(row[0]) if row else 0
                start = process_start(pid)
                new = {i: Lock(i, run_id, operator, host, pid, since, start, now + self.lease,
                               token) for i in names}
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT, [
                        (lk.integration, lk.run_id, lk.operator, lk.host, lk.pid, lk.since,
                         lk.pid_start, lk.lease_until, lk.token) for lk in new.values()])
                self._announce(conn)
            return stale, new

        stale, new = self._run("take locks", go)
        self._mine[run_id] = new
        return stale

    def renew(self, run_id: str) -> None:
        """Extend the lease of every lock this table holds for ``run_id``.

        Raises:
            LockHeld: One of them was taken over (or is gone): the run must stop.
        """
        mine = self._mine.get(run_id)

        def go(conn: Conn) -> tuple[set[str], dict[str, Lock]]:
            with conn.transaction():
                self._serialize(conn)
                if not mine:
                    conn.execute(f"UPDATE locks SET lease_until = {_NOW} + %s WHERE run_id = %s "
                                 "AND host = %s AND pid = %s",
                                 (self.lease, run_id, host_name(), os.getpid()))
                    return set(), {}
                done = {r[0] for r in conn.execute(
                    f"UPDATE locks SET lease_until = {_NOW} + %s "
                    "FROM unnest(%s::text[], %s::bigint[]) AS m(integration, token) "
                    "WHERE locks.integration = m.integration AND locks.token = m.token "
                    "RETURNING locks.integration",
                    (self.lease, list(mine), [lk.token for lk in mine.values()])).fetchall()}
                lost = [i for i in mine if i not in done]
                return done, (self._rows(conn, lost) if lost else {})

        done, rows = self._run("renew locks", go)
        for i, lk in (mine or {}).items():
            if i not in done:
                raise lock_lost(rows.get(i), i, run_id, lk.token)

    def fence(self, run_id: str, tokens: dict[str, int] | None = None) -> None:
        """Check, before a side effect, that every lock of ``run_id`` still carries its token
        (default: the tokens this table got); renew first when a lease is a third from its end.

        Raises:
            LockHeld: A lock was taken over or is gone (names the holder now).
        """
        want = self._wanted(run_id, tokens)
        if not want:
            return

        def go(conn: Conn) -> tuple[dict[str, Lock], float]:
            return self._rows(conn, want), self._now(conn)

        rows, now = self._run("check locks", go)
        for i, token in want.items():
            row = rows.get(i)
            if row is None or row.token != token:
                raise lock_lost(row, i, run_id, token)
        if min(r.lease_until for r in rows.values()) - now < self.lease / 3:
            self.renew(run_id)

    def release(self, run_id: str) -> None:
        """Drop every lock the run holds (only those this holder still has)."""
        mine = self._mine.pop(run_id, None)

        def go(conn: Conn) -> None:
            with conn.transaction():
                self._serialize(conn)
                if mine:
                    conn.execute("DELETE FROM locks USING unnest(%s::text[], %s::bigint[]) "
                                 "AS m(integration, token) WHERE locks.integration = "
                                 "m.integration AND locks.token = m.token",
                                 (list(mine), [lk.token for lk in mine.values()]))
                else:
                    conn.execute("DELETE FROM locks WHERE run_id = %s AND host = %s "
                                 "AND pid = %s", (run_id, host_name(), os.getpid()))
                self._announce(conn)

        try:
            self._run("release locks", go)
        finally:
            if not self._mine:
                self.close()

    def plant(self, lock: Lock, may_replace: Callable[[Lock], bool]) -> Lock | None:
        """Write ``lock`` (a holder elsewhere: exercise injects) under a new token.

        Returns:
            None when written; else the row already there, which ``may_replace`` refused.
        """
        def go(conn: Conn) -> Lock | None:
            with conn.transaction():
                self._serialize(conn)
                row = self._rows(conn, [lock.integration], for_update=True).get(
                    lock.integration)
                if row is not None and not may_replace(row):
                    return row
                token_row = conn.execute("SELECT nextval('lock_tokens')").fetchone()
                conn.execute(_UPSERT, (lock.integration, lock.run_id, lock.operator, lock.host,
                                       lock.pid, lock.since, lock.pid_start, lock.lease_until,
                                       int(token_row[0]) if token_row else 0))
                self._announce(conn)
            return None
        return self._run("write a lock", go)

    def drop(self, integration: str, run_prefix: str) -> int:
        """Delete the lock on ``integration`` if its run id starts with ``run_prefix``;
        returns how many were deleted (exercise injects)."""
        def go(conn: Conn) -> int:
            with conn.transaction():
                self._serialize(conn)
                cur = conn.execute("DELETE FROM locks WHERE integration = %s AND "
                                   "left(run_id, %s) = %s",
                                   (integration, len(run_prefix), run_prefix))
                self._announce(conn)
                return max(cur.rowcount, 0)
        return self._run("drop a lock", go)
