"""One store interface, two implementations: where the journal, locks, runs, approvals and
the audit trail live.

- **SQLite** (the embedded default): the ``settings.audit_db`` file, exactly as before.
- **PostgreSQL** (a team's shared store): ``[settings] store = "postgresql://..."`` or
  ``$KILLSWITCH_STORE`` (the environment wins, and is where a password belongs). Several
  commanders on several machines then share one trail, one lock table and one list of
  approvals.

Everything that opens the store goes through :func:`open_audit`, :func:`open_locks` and
:func:`open_approvals`; nothing else needs to know which one is configured.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from console.errors import ConfigError

if TYPE_CHECKING:
    from console.audit import TrailBase
    from console.config import Config
    from console.engine.locks import LockStore
    from console.store.approvals import Approvals

__all__ = ["LOCAL", "STORE_ENV", "describe", "has_trail", "is_postgres", "local_override",
           "open_approvals", "open_audit", "open_locks", "redact_url", "store_url"]

STORE_ENV = "KILLSWITCH_STORE"
"""Environment variable naming the shared store (overrides ``settings.store``)."""

_PG_SCHEMES = ("postgresql://", "postgres://")


LOCAL = "sqlite"
"""``KILLSWITCH_STORE=sqlite``: use the embedded SQLite file even when ``settings.store``
names a shared store (the way out when the shared store is down: see :func:`local_override`)."""


def local_override(config: Config) -> bool:
    """True when ``$KILLSWITCH_STORE=sqlite`` sets aside a shared store the config names:
    this console then neither sees nor is seen by the other commanders."""
    return (os.environ.get(STORE_ENV, "").strip() == LOCAL
            and bool(config.settings.store.strip()))


def store_url(config: Config) -> str:
    """The configured shared-store URL, or "" for the embedded SQLite file.

    Raises:
        ConfigError: The setting names something that is not a PostgreSQL URL.
    """
    env = os.environ.get(STORE_ENV, "").strip()
    if env == LOCAL:
        return ""
    url = (env or config.settings.store or "").strip()
    if url and not url.startswith(_PG_SCHEMES):
        where = STORE_ENV if os.environ.get(STORE_ENV) else "settings.store"
        raise ConfigError(f"the store {url.split(':', 1)[0]!r} is not supported",
                          where=where,
                          hint='use a "postgresql://user@host:port/db" URL, or leave it '
                               "empty (or KILLSWITCH_STORE=sqlite) for the embedded SQLite "
                               "file (settings.audit_db)")
    return url


def is_postgres(config: Config) -> bool:
    """True when the config (or the environment) names a PostgreSQL store."""
    return bool(store_url(config))


def describe(config: Config) -> str:
    """Where the store is, for a person: the SQLite path or the URL without its password."""
    url = store_url(config)
    if not url:
        return str(config.resolve(config.settings.audit_db))
    return redact_url(url)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (what messages and screens show)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://<unparsable URL>"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    if parts.password is None:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, query,
                       parts.fragment))


def _sqlite_has_events(path: Path) -> bool:
    """True when the SQLite file exists and has an ``events`` table (a file holding only the
    lock table, made by a lock check, is not a trail). Opened read-only: looking creates
    nothing."""
    import sqlite3

    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'events'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # unreadable here: let the opener say what is wrong with it
    return row is not None


def has_trail(config: Config) -> bool:
    """True when the store holds a trail already (looking creates nothing).

    Raises:
        AuditError: The PostgreSQL store cannot be reached.
    """
    url = store_url(config)
    if not url:
        return _sqlite_has_events(config.resolve(config.settings.audit_db))
    from console.store.pg import connect
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
    return bool(row and row[0])


def open_audit(config: Config, *, readonly: bool = False,
               key: bytes | None = None) -> TrailBase:
    """The audit trail of the configured store: an :class:`~console.audit.AuditLog` (SQLite)
    or a :class:`~console.store.pg_audit.PgAuditLog`, both a :class:`~console.audit.TrailBase`."""
    url = store_url(config)
    if url:
        from console.store.pg_audit import PgAuditLog
        return PgAuditLog(url, key=key, readonly=readonly)
    from console.audit import AuditLog
    return AuditLog(config.resolve(config.settings.audit_db), key=key, readonly=readonly)


def open_locks(config: Config) -> LockStore:
    """The per-integration lock table of the configured store."""
    url = store_url(config)
    if url:
        from console.store.pg_locks import PgLockTable
        return PgLockTable(url, lease=config.settings.lock_lease)
    from console.engine.locks import LockTable
    return LockTable(config.resolve(config.settings.audit_db), lease=config.settings.lock_lease)


def open_approvals(config: Config) -> Approvals:
    """The two-person-rule approvals of the configured store."""
    url = store_url(config)
    if url:
        from console.store.approvals import PgApprovals
        return PgApprovals(url)
    from console.store.approvals import SqliteApprovals
    return SqliteApprovals(config.resolve(config.settings.audit_db))
