"""PostgreSQL plumbing shared by the store's tables: connecting, the pooler check, advisory
lock keys, and URLs without their passwords.

Only transaction-scoped advisory locks (``pg_advisory_xact_lock``) are ever taken: they end
with the transaction that took them, so nothing leaks when a connection is dropped, reused or
handed to another client. A *transaction-pooling* proxy (PgBouncer ``pool_mode =
transaction``) hands one server session to many clients between transactions: LISTEN,
session settings and session locks do not survive there, so :func:`connect` refuses it
(:func:`check_pooler`) with a message saying what to change. A session-pooling proxy, or
none, is fine.

Advisory lock ids are derived from the database, the schema and the purpose (Terraform's
``pg`` backend uses fixed ids, and two states in two schemas of one database collide).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any
from urllib.parse import urlsplit

import psycopg

from console.errors import AuditError
from console.store import redact_url

__all__ = ["POOLER_HINT", "advisory_key", "check_pooler", "connect", "redact_url",
           "store_error"]

POOLER_HINT = ("connect to PostgreSQL directly, or set the pooler's pool_mode = session for "
               "this database (PgBouncer: in [databases], add pool_mode=session)")

_checked: set[str] = set()
_checked_lock = threading.Lock()


def store_error(url: str, doing: str, exc: BaseException) -> AuditError:
    """A person-readable :class:`AuditError` for a failure talking to the store."""
    from console.scrub import scrub
    text = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    parts = urlsplit(url) if url else None
    if parts is not None and parts.password:
        text = text.replace(parts.password, "***")
    return AuditError(f"cannot {doing}: {text}", where=redact_url(url),
                      hint="check that PostgreSQL runs and accepts this user "
                           "(settings.store or $KILLSWITCH_STORE); while it is down, "
                           "KILLSWITCH_STORE=sqlite works on the local file alone")


def connect(url: str, *, autocommit: bool = True, check: bool = True,
            timeout: float = 5.0) -> psycopg.Connection[Any]:
    """Open a connection to the store (autocommit unless told otherwise).

    Args:
        url: A ``postgresql://`` URL (libpq syntax; ``?options=-csearch_path%3Dname`` picks a
            schema).
        autocommit: Each statement commits on its own; use ``conn.transaction()`` blocks.
        check: Refuse a transaction-pooling proxy (once per URL per process).
        timeout: Seconds to wait for the server to answer.

    Raises:
        AuditError: The server cannot be reached, refuses us, or is behind a transaction
            pooler.
    """
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except (psycopg.Error, ValueError) as exc:
        raise store_error(url, "connect to the shared store", exc) from exc
    if check:
        with _checked_lock:
            done = url in _checked
        if not done:
            try:
                check_pooler(url, conn)
            except BaseException:
                conn.close()
                raise
            with _checked_lock:
                _checked.add(url)
    return conn


def _backend(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return int(row[0]) if row else 0


def check_pooler(url: str, conn: psycopg.Connection[Any]) -> None:
    """Refuse a transaction-pooling proxy between us and PostgreSQL.

    A direct or session-pooled connection keeps one server backend for its whole life, and
    two open client connections never share one. Behind transaction pooling, a backend goes
    back to the pool after every transaction: the next statement of this connection, or
    another client's, gets whichever is free (PgBouncer reuses the most recently freed one
    first). So: note this connection's backend pid, open a second connection, and look at
    both again; any sharing or change means a pooler.

    Raises:
        AuditError: The backend changed between transactions or is shared (names the fix).
    """
    try:
        first = _backend(conn)
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as other:
            seen = {_backend(other) for _ in range(3)}
            again = {_backend(conn) for _ in range(3)}
    except psycopg.Error as exc:
        raise store_error(url, "check the shared store's connection", exc) from exc
    if first in seen or again != {first} or len(seen) > 1:
        raise AuditError(
            "the shared store is behind a transaction-pooling proxy: one session is shared "
            "between clients, so LISTEN/NOTIFY and locks cannot be trusted",
            where=redact_url(url), hint=POOLER_HINT)


def advisory_key(conn: psycopg.Connection[Any], purpose: str) -> int:
    """A 64-bit advisory lock id for ``purpose`` in this connection's database and schema."""
    row = conn.execute("SELECT current_database(), current_schema()").fetchone()
    db, schema = (row[0], row[1]) if row else ("", "")
    digest = hashlib.blake2b(f"killswitch\0{db}\0{schema}\0{purpose}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
