"""Per-integration locks, kept in the audit database so every console on the host shares them.

A live run takes the lock of every integration it touches, all or none. A lock names its
holder (run, operator, host, pid, since). A lock whose process is gone (same host, pid not
alive) is stale and is taken over; the takeover is reported to the caller.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from console.errors import AuditError, LockHeld

__all__ = ["Lock", "LockTable"]

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


@dataclass(frozen=True)
class Lock:
    """One held lock."""

    integration: str
    run_id: str
    operator: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        """Who holds it and since when, in one line."""
        return (f"{self.integration} is locked by run {self.run_id} "
                f"({self.operator} on {self.host}, pid {self.pid}) since {self.since}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed, not yet reaped) holds nothing
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class LockTable:
    """The ``locks`` table of an audit database file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open the lock table: {exc}", where=str(self.path)) from exc
        return conn

    def held(self) -> list[Lock]:
        """Every lock currently recorded."""
        conn = self._connect()
        try:
            return [Lock(*row) for row in conn.execute(
                "SELECT integration, run_id, operator, host, pid, since FROM locks")]
        finally:
            conn.close()

    def acquire(self, integrations: list[str], run_id: str, operator: str,
                since: str) -> list[Lock]:
        """Take every lock or none.

        Returns:
            The stale locks that were taken over.

        Raises:
            LockHeld: A live process of another run holds one of them.
        """
        host, pid = socket.gethostname(), os.getpid()
        conn = self._connect()
        stale: list[Lock] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(integrations))
            rows = [Lock(*r) for r in conn.execute(
                "SELECT integration, run_id, operator, host, pid, since FROM locks "
                f"WHERE integration IN ({marks})", integrations)]
            for lock in rows:
                if lock.run_id == run_id or (lock.host == host and not _alive(lock.pid)):
                    if lock.run_id != run_id:
                        stale.append(lock)
                    continue
                conn.execute("ROLLBACK")
                raise LockHeld(
                    lock.describe(), where=lock.integration,
                    hint=("coordinate with that operator; if that console is gone on another "
                          f"host, `killswitch resume {lock.run_id}` there finishes it"))
            conn.executemany(
                "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?)",
                [(i, run_id, operator, host, pid, since) for i in integrations])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot take locks: {exc}", where=str(self.path)) from exc
        finally:
            conn.close()
        return stale

    def release(self, run_id: str) -> None:
        """Drop every lock the run holds."""
        conn = self._connect()
        try:
            conn.execute("DELETE FROM locks WHERE run_id = ?", (run_id,))
        finally:
            conn.close()
