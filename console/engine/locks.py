"""Per-integration locks: rows that say who holds what, for how long, under which token.

A live run takes the lock of every integration it touches, all or none. A lock is a row in the
store (this module: the SQLite audit file; :mod:`console.store.pg_locks`: PostgreSQL) naming
its holder (run, operator, host, pid, since), a lease the holder renews every third of
``settings.lock_lease`` while it runs, and a **fencing token**: a number drawn from one
counter of the store that only ever increases, new for every acquire (a takeover included).

A lock is taken over only from a holder that is provably dead:

- on this host, its pid is gone, a zombie, or now belongs to another process (the start time
  recorded with the lock differs from the pid's current one);
- on another host (``$KILLSWITCH_HOST`` names this one; a holder with this host's name but
  another boot id counts as another host), its lease expired (the holder stopped renewing:
  crash, lost network, a laptop lid closed).

This holds for the run's own id too: ``resume RUN_ID`` while the original process is still
running is refused, naming the holder, so a live run is never executed twice at once.

A holder that was only *paused* (a stopped process, a suspended VM) past its lease wakes up
without its locks. So before every side effect the engine asks :class:`RunFence` whether the
row still carries the token the run got; when another holder took over (the token changed) or
the row is gone, the change is refused, the refusal is recorded, and the run stops with exit 3
naming the new holder. A fence that finds less than a third of the lease left renews it first,
so between a passed fence and the call it guards there is always a third of a lease.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from console.errors import AuditError, ConsoleError, LockHeld
from console.identity import host_name

__all__ = ["LEASE_SECONDS", "Lock", "LockStore", "LockTable", "RunFence", "holder_gone",
           "lock_lost", "process_start", "refusal", "takeover_detail"]

LEASE_SECONDS = 60.0
"""Default lease (``settings.lock_lease``): how long a lock outlives its holder's last
renewal (holders renew every third of it)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locks (
    integration TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    operator TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    since TEXT NOT NULL
)
"""
_TOKENS = """
CREATE TABLE IF NOT EXISTS lock_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
)
"""
_ADDED = (("pid_start", "TEXT NOT NULL DEFAULT ''"), ("lease_until", "REAL NOT NULL DEFAULT 0"),
          ("token", "INTEGER NOT NULL DEFAULT 0"))
"""Columns added after the first release (old files gain them on open)."""
_COLUMNS = "integration, run_id, operator, host, pid, since, pid_start, lease_until, token"


@dataclass(frozen=True)
class Lock:
    """One held lock."""

    integration: str
    run_id: str
    operator: str
    host: str
    pid: int
    since: str
    pid_start: str = ""
    """Boot id and start time of the holder process (tells a reused pid apart)."""
    lease_until: float = 0.0
    """Unix time after which a holder on another host counts as gone."""
    token: int = 0
    """Fencing token: larger than every token handed out before it in this store."""

    def describe(self) -> str:
        """Who holds it and since when, in one line."""
        return (f"{self.integration} is locked by run {self.run_id} "
                f"({self.operator} on {self.host}, pid {self.pid}) since {self.since}")

    def holder(self) -> dict[str, Any]:
        """The holder as the trail records it."""
        return {"operator": self.operator, "host": self.host, "pid": self.pid,
                "run_id": self.run_id, "since": self.since, "token": self.token}


class LockStore(Protocol):
    """What the engine needs of a lock table (SQLite :class:`LockTable` or PostgreSQL
    :class:`~console.store.pg_locks.PgLockTable`)."""

    lease: float

    def held(self) -> list[Lock]:
        """Every lock currently recorded."""
        ...

    def holder_gone(self, lock: Lock, now: float | None = None) -> bool:
        """True when the holder provably cannot act any more."""
        ...

    def acquire(self, integrations: list[str], run_id: str, operator: str,
                since: str) -> list[Lock]:
        """Take every lock or none; returns the dead holders' locks taken over."""
        ...

    def mine(self, run_id: str) -> dict[str, Lock]:
        """The locks this table took for ``run_id`` (integration -> lock)."""
        ...

    def renew(self, run_id: str) -> None:
        """Extend the run's leases; LockHeld when one was taken over."""
        ...

    def fence(self, run_id: str, tokens: dict[str, int] | None = None) -> None:
        """LockHeld unless every lock of the run still carries its token."""
        ...

    def release(self, run_id: str) -> None:
        """Drop the run's locks (only this holder's)."""
        ...

    def plant(self, lock: Lock, may_replace: Callable[[Lock], bool]) -> Lock | None:
        """Write a lock held elsewhere (exercise injects); the refusing row, or None."""
        ...

    def drop(self, integration: str, run_prefix: str) -> int:
        """Delete the lock on ``integration`` if its run id has that prefix."""
        ...


def process_start(pid: int) -> str:
    """``boot_id:start_ticks`` of a process, or "" when /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str = "") -> bool:
    """True while ``pid`` runs and is still the process that took the lock."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie (killed, not yet reaped) holds nothing
    except (OSError, IndexError):
        return True
    now = process_start(pid)
    return not (start and now and now != start)  # a different start time: pid reused


def _this_boot() -> str:
    """This machine's boot id ("" when /proc cannot tell)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _here(lock: Lock) -> bool:
    """True when the holder ran on this machine, since its last boot: the same host name,
    and (where /proc tells) the same boot id. Two machines that share a name (two laptops
    called ``localhost``) are told apart by it, so a pid is never looked up on the wrong one."""
    if lock.host != host_name():
        return False
    boot = lock.pid_start.partition(":")[0] if ":" in lock.pid_start else ""
    return not boot or boot == _this_boot()


def holder_gone(lock: Lock, now: float | None = None) -> bool:
    """True when the holder provably cannot act any more (see the module docstring).

    ``now``: the store's clock (Unix time) to compare the lease with; default this host's.
    """
    if _here(lock):
        return not _alive(lock.pid, lock.pid_start)
    return (now if now is not None else time.time()) > lock.lease_until


def refusal(lock: Lock, run_id: str, lease: float) -> LockHeld:
    """The LockHeld of an acquire that found ``lock`` held by a holder that may be alive."""
    if lock.run_id == run_id:
        return LockHeld(
            f"run {run_id} is still running: {lock.describe()}", where=lock.integration,
            hint=("wait for it to finish, or stop that process (Ctrl-C) and resume; on "
                  f"another host the lease ends {lease:g} s after its last renewal "
                  f"(lease until {_clock(lock.lease_until)})"))
    return LockHeld(
        lock.describe(), where=lock.integration,
        hint=("coordinate with that operator; if that console is gone on another host, "
              f"`killswitch resume {lock.run_id}` finishes it once its lease has expired "
              f"(lease until {_clock(lock.lease_until)})"))


def lock_lost(row: Lock | None, integration: str, run_id: str, token: int) -> LockHeld:
    """The LockHeld of a run whose lock on ``integration`` is no longer its own: ``row`` is
    what the store holds now (None: the lock is gone)."""
    hint = (f"nothing further was changed by this process; see `killswitch audit show --run "
            f"{run_id}`")
    if row is None:
        return LockHeld(f"run {run_id} lost its lock: the lock on {integration} is gone "
                        f"(token {token} no longer in the store); it stopped before its next "
                        "change", where=integration, hint=hint)
    by = ("resumed elsewhere" if row.run_id == run_id else "taken over")
    return LockHeld(f"run {run_id} lost its lock ({by}): {row.describe()} (token {row.token}, "
                    f"this run held token {token}); it stopped before its next change",
                    where=integration, hint=hint)


def takeover_detail(old: Lock, new: Lock | None, now: float | None = None) -> dict[str, Any]:
    """What the trail records when ``new`` took over the dead holder ``old``'s lock."""
    why = ("its process is gone" if _here(old)
           else f"its lease expired at {_clock(old.lease_until)}")
    return {"previous": old.describe(), "previous_holder": old.holder(),
            "holder": new.holder() if new is not None else None,
            "token": new.token if new is not None else None, "why": why}


def _clock(ts: float) -> str:
    """A Unix time as ``2026-11-27T03:00:00Z`` (UTC)."""
    if ts <= 0:
        return "never renewed"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class TakenLocks:
    """What both lock tables keep of the locks they took: run id -> integration -> lock."""

    _mine: dict[str, dict[str, Lock]]

    def mine(self, run_id: str) -> dict[str, Lock]:
        """The locks this table took for ``run_id`` (integration -> lock)."""
        return dict(self._mine.get(run_id, {}))

    def _wanted(self, run_id: str, tokens: dict[str, int] | None) -> dict[str, int]:
        """The tokens a fence checks: those given, else the ones this table got."""
        return tokens if tokens is not None else {
            i: lk.token for i, lk in self._mine.get(run_id, {}).items()}


class LockTable(TakenLocks):
    """The ``locks`` table of an audit database file (one host's commanders).

    Args:
        path: The audit database (``settings.audit_db``).
        lease: Seconds a lock outlives its holder's last renewal (``settings.lock_lease``).
    """

    def __init__(self, path: str | Path, lease: float = LEASE_SECONDS) -> None:
        self.path = Path(path)
        self.lease = lease
        self._mine: dict[str, dict[str, Lock]] = {}
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"cannot open the lock table: {exc}", where=str(self.path)) from exc
        if not self._ready:
            try:
                self._migrate(conn)
            except sqlite3.Error as exc:
                conn.close()
                raise AuditError(f"cannot open the lock table: {exc}",
                                 where=str(self.path)) from exc
            self._ready = True
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Create the tables, or add the columns an older file lacks (one writer at a time:
        two consoles opening an old file at once must not both add a column)."""
        def complete() -> bool:
            have = {row[1] for row in conn.execute("PRAGMA table_info(locks)")}
            tokens = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                  "AND name = 'lock_tokens'").fetchone()
            return tokens is not None and all(name in have for name, _ in _ADDED)

        if complete():
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_SCHEMA)
            conn.execute(_TOKENS)
            have = {row[1] for row in conn.execute("PRAGMA table_info(locks)")}
            for name, decl in _ADDED:
                if name not in have:
                    conn.execute(f"ALTER TABLE locks ADD COLUMN {name} {decl}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def held(self) -> list[Lock]:
        """Every lock currently recorded."""
        conn = self._connect()
        try:
            return [Lock(*row) for row in conn.execute(f"SELECT {_COLUMNS} FROM locks")]
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the lock table: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()

    @staticmethod
    def holder_gone(lock: Lock, now: float | None = None) -> bool:
        """True when the holder provably cannot act any more (see the module docstring)."""
        return holder_gone(lock, now)

    @staticmethod
    def _next_token(conn: sqlite3.Connection) -> int:
        """Draw the next fencing token (inside the caller's write transaction)."""
        conn.execute("INSERT INTO lock_tokens (id, last) SELECT 1, coalesce(max(token), 0) "
                     "FROM locks WHERE true ON CONFLICT (id) DO NOTHING")
        row = conn.execute("UPDATE lock_tokens SET last = last + 1 WHERE id = 1 "
                           "RETURNING last").fetchone()
        return int(row[0])

    def _rows(self, conn: sqlite3.Connection, integrations: Iterable[str]) -> dict[str, Lock]:
        names = list(integrations)
        marks = ",".join("?" * len(names))
        return {r[0]: Lock(*r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM locks WHERE integration IN ({marks})", names)}

    def acquire(self, integrations: list[str], run_id: str, operator: str,
                since: str) -> list[Lock]:
        """Take every lock or none, under a new fencing token.

        Returns:
            The locks of dead holders that were taken over (:meth:`mine` has the new ones).

        Raises:
            LockHeld: A holder that may still be alive has one of them (this run's own
                id included: a resume while the original process runs is refused).
        """
        host, pid = host_name(), os.getpid()
        names = list(dict.fromkeys(integrations))
        conn = self._connect()
        stale: list[Lock] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()
            for lock in self._rows(conn, names).values():
                if lock.host == host and lock.pid == pid and lock.run_id == run_id:
                    continue  # this process already holds it for this run
                if holder_gone(lock, now):
                    stale.append(lock)
                    continue
                conn.execute("ROLLBACK")
                raise refusal(lock, run_id, self.lease)
            token = self._next_token(conn)
            start = process_start(pid)
            new = {i: Lock(i, run_id, operator, host, pid, since, start, now + self.lease, token)
                   for i in names}
            conn.executemany(
                f"INSERT OR REPLACE INTO locks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(lk.integration, lk.run_id, lk.operator, lk.host, lk.pid, lk.since,
                  lk.pid_start, lk.lease_until, lk.token) for lk in new.values()])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot take locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        self._mine[run_id] = new
        return stale

    def renew(self, run_id: str) -> None:
        """Extend the lease of every lock this table holds for ``run_id``.

        Raises:
            LockHeld: One of them was taken over (or is gone): the run must stop.
        """
        mine = self._mine.get(run_id)
        conn = self._connect()
        try:
            until = time.time() + self.lease
            if not mine:  # not taken through this table: this process's rows of the run
                conn.execute("UPDATE locks SET lease_until = ? WHERE run_id = ? AND host = ? "
                             "AND pid = ?", (until, run_id, host_name(), os.getpid()))
                return
            conn.execute("BEGIN IMMEDIATE")
            done = conn.executemany(
                "UPDATE locks SET lease_until = ? WHERE integration = ? AND token = ?",
                [(until, i, lk.token) for i, lk in mine.items()]).rowcount
            rows = self._rows(conn, mine) if done != len(mine) else {}
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot renew locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        for i, lk in mine.items():
            row = rows.get(i)
            if done != len(mine) and (row is None or row.token != lk.token):
                raise lock_lost(row, i, run_id, lk.token)

    def fence(self, run_id: str, tokens: dict[str, int] | None = None) -> None:
        """Check, before a side effect, that every lock of ``run_id`` still carries its token
        (default: the tokens this table got); renew first when a lease is a third from its end.

        Raises:
            LockHeld: A lock was taken over or is gone (names the holder now).
        """
        want = self._wanted(run_id, tokens)
        if not want:
            return
        conn = self._connect()
        try:
            rows = self._rows(conn, want)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot check locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        for i, token in want.items():
            row = rows.get(i)
            if row is None or row.token != token:
                raise lock_lost(row, i, run_id, token)
        if min(r.lease_until for r in rows.values()) - time.time() < self.lease / 3:
            self.renew(run_id)

    def release(self, run_id: str) -> None:
        """Drop every lock the run holds (only those this holder still has)."""
        mine = self._mine.pop(run_id, None)
        conn = self._connect()
        try:
            if mine:
                conn.execute("BEGIN IMMEDIATE")  # one transaction, however many locks
                conn.executemany("DELETE FROM locks WHERE integration = ? AND token = ?",
                                 [(i, lk.token) for i, lk in mine.items()])
                conn.execute("COMMIT")
            else:
                conn.execute("DELETE FROM locks WHERE run_id = ? AND host = ? AND pid = ?",
                             (run_id, host_name(), os.getpid()))
        except sqlite3.Error as exc:
            raise AuditError(f"cannot release locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()

    def plant(self, lock: Lock, may_replace: Callable[[Lock], bool]) -> Lock | None:
        """Write ``lock`` (a holder elsewhere: exercise injects) under a new token.

        Returns:
            None when written; else the row already there, which ``may_replace`` refused.
        """
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = self._rows(conn, [lock.integration]).get(lock.integration)
            if row is not None and not may_replace(row):
                conn.execute("ROLLBACK")
                return row
            token = self._next_token(conn)
            conn.execute(
                f"INSERT OR REPLACE INTO locks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (lock.integration, lock.run_id, lock.operator, lock.host, lock.pid, lock.since,
                 lock.pid_start, lock.lease_until, token))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot write a lock: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        return None

    def drop(self, integration: str, run_prefix: str) -> int:
        """Delete the lock on ``integration`` if its run id starts with ``run_prefix``;
        returns how many were deleted (exercise injects)."""
        conn = self._connect()
        try:
            return int(conn.execute(
                "DELETE FROM locks WHERE integration = ? AND substr(run_id, 1, ?) = ?",
                (integration, len(run_prefix), run_prefix)).rowcount)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot drop a lock: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()


class RunFence:
    """A run's locks, checked before every side effect and renewed while it runs.

    :meth:`check_sync` asks the store (:meth:`LockStore.fence`) whether every lock still
    carries the token the run got. The executor calls it in the worker thread, after the
    backend's limits let the call through and right before the adapter's method, so nothing
    waits between the check and the side effect it guards. Checks are shared, never stale:
    a caller waits for a check that *started* after it asked, so many concurrent operations
    cost one query per round trip, not one each. A loss is remembered: every later check, and
    :meth:`keep`'s next renewal, refuses at once.

    Args:
        locks: The table the run's locks were taken from.
        run_id: The run.
    """

    def __init__(self, locks: LockStore, run_id: str) -> None:
        self.locks = locks
        self.run_id = run_id
        self.tokens = {i: lk.token for i, lk in locks.mine(run_id).items()}
        self.lost: LockHeld | None = None
        """Why the run no longer holds its locks (None while it does)."""
        self.checks = 0
        """Store round trips made by the checks (benchmarks, tests)."""
        self._cond = threading.Condition()
        self._begun = 0
        self._passed = 0
        self._running = False

    def check_sync(self) -> None:
        """Return when the run still holds every lock, as of a moment after the call (any
        thread).

        Raises:
            LockHeld: A lock was taken over, expired and taken, or is gone.
            AuditError: The store cannot be asked (nothing may be changed then either).
        """
        with self._cond:
            want = self._begun + 1  # a check begun before this call does not count
            while True:
                if self.lost is not None:
                    raise self.lost
                if self._passed >= want:
                    return
                if not self._running:
                    break
                self._cond.wait()
            self._running = True
            self._begun += 1
            number = self._begun
        passed = False
        try:
            self.locks.fence(self.run_id, self.tokens)
            passed = True
        except LockHeld as exc:
            self.lost = exc
            raise
        finally:
            with self._cond:
                self.checks += 1
                self._running = False
                if passed:
                    self._passed = number
                self._cond.notify_all()

    async def check(self) -> None:
        """:meth:`check_sync` from the event loop."""
        if self.lost is not None:
            raise self.lost
        await asyncio.to_thread(self.check_sync)

    async def keep(self) -> None:
        """Renew the run's leases every third of a lease until cancelled, or until a renewal
        finds a lock taken over (then :attr:`lost` stops the run's next side effect)."""
        while self.lost is None:
            await asyncio.sleep(self.locks.lease / 3)
            try:
                await asyncio.to_thread(self.locks.renew, self.run_id)
            except LockHeld as exc:
                self.lost = exc
            except ConsoleError:
                continue  # a missed renewal only shortens the lease; the next one retries
