"""Per-integration locks, kept in the audit database so every console on the host shares them.

A live run takes the lock of every integration it touches, all or none. A lock names its
holder (run, operator, host, pid, since) and carries a lease that the holder renews while it
runs. A lock is taken over only from a holder that is provably dead:

- on this host, its pid is gone, a zombie, or now belongs to another process (the start time
  recorded with the lock differs from the pid's current one);
- on another host, its lease expired (the holder stopped renewing: crash or lost network).

This holds for the run's own id too: ``resume RUN_ID`` while the original process is still
running is refused, naming the holder, so a live run is never executed twice at once.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from console.errors import AuditError, LockHeld

__all__ = ["LEASE_SECONDS", "Lock", "LockTable", "process_start"]

LEASE_SECONDS = 60.0
"""How long a lock outlives its holder's last renewal (holders renew every third of it)."""

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
_COLUMNS = "integration, run_id, operator, host, pid, since, pid_start, lease_until"


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

    def describe(self) -> str:
        """Who holds it and since when, in one line."""
        return (f"{self.integration} is locked by run {self.run_id} "
                f"({self.operator} on {self.host}, pid {self.pid}) since {self.since}")


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


class LockTable:
    """The ``locks`` table of an audit database file."""

    def __init__(self, path: str | Path, lease: float = LEASE_SECONDS) -> None:
        self.path = Path(path)
        self.lease = lease

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute(_SCHEMA)
            have = {row[1] for row in conn.execute("PRAGMA table_info(locks)")}
            if "pid_start" not in have:
                conn.execute("ALTER TABLE locks ADD COLUMN pid_start TEXT NOT NULL DEFAULT ''")
            if "lease_until" not in have:
                conn.execute("ALTER TABLE locks ADD COLUMN lease_until REAL NOT NULL DEFAULT 0")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open the lock table: {exc}", where=str(self.path)) from exc
        return conn

    def held(self) -> list[Lock]:
        """Every lock currently recorded."""
        conn = self._connect()
        try:
            return [Lock(*row) for row in conn.execute(f"SELECT {_COLUMNS} FROM locks")]
        finally:
            conn.close()

    @staticmethod
    def holder_gone(lock: Lock, now: float | None = None) -> bool:
        """True when the holder provably cannot act any more (see the module docstring)."""
        if lock.host == socket.gethostname():
            return not _alive(lock.pid, lock.pid_start)
        return (now if now is not None else time.time()) > lock.lease_until

    def acquire(self, integrations: list[str], run_id: str, operator: str,
                since: str) -> list[Lock]:
        """Take every lock or none.

        Returns:
            The locks of dead holders that were taken over.

        Raises:
            LockHeld: A holder that may still be alive has one of them (this run's own
                id included: a resume while the original process runs is refused).
        """
        host, pid = socket.gethostname(), os.getpid()
        conn = self._connect()
        stale: list[Lock] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(integrations))
            rows = [Lock(*r) for r in conn.execute(
                f"SELECT {_COLUMNS} FROM locks WHERE integration IN ({marks})", integrations)]
            for lock in rows:
                if lock.host == host and lock.pid == pid and lock.run_id == run_id:
                    continue  # this process already holds it for this run
                if self.holder_gone(lock):
                    stale.append(lock)
                    continue
                conn.execute("ROLLBACK")
                if lock.run_id == run_id:
                    raise LockHeld(
                        f"run {run_id} is still running: {lock.describe()}",
                        where=lock.integration,
                        hint=("wait for it to finish, or stop that process (Ctrl-C) and "
                              f"resume; on another host the lease ends {self.lease:g} s "
                              "after its last renewal"))
                raise LockHeld(
                    lock.describe(), where=lock.integration,
                    hint=("coordinate with that operator; if that console is gone on another "
                          f"host, `killswitch resume {lock.run_id}` finishes it once its "
                          "lease has expired"))
            lease_until = time.time() + self.lease
            start = process_start(pid)
            conn.executemany(
                f"INSERT OR REPLACE INTO locks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(i, run_id, operator, host, pid, since, start, lease_until)
                 for i in integrations])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot take locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        return stale

    def renew(self, run_id: str) -> None:
        """Extend the lease of every lock this process holds for ``run_id``."""
        conn = self._connect()
        try:
            conn.execute("UPDATE locks SET lease_until = ? WHERE run_id = ? AND host = ? "
                         "AND pid = ?", (time.time() + self.lease, run_id,
                                         socket.gethostname(), os.getpid()))
        except sqlite3.Error as exc:
            raise AuditError(f"cannot renew locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()

    def release(self, run_id: str) -> None:
        """Drop every lock the run holds (only this process's)."""
        conn = self._connect()
        try:
            conn.execute("DELETE FROM locks WHERE run_id = ? AND host = ? AND pid = ?",
                         (run_id, socket.gethostname(), os.getpid()))
        finally:
            conn.close()
