"""The audit trail in PostgreSQL: :class:`PgAuditLog`, the shared store's twin of
:class:`console.audit.AuditLog` (same methods, same rows, same hashes).

Everything but the database is :class:`console.audit.TrailBase`: scrubbing, the canonical
bodies and their MAC, chaining, the key rules, the verification walk, witnesses, export. A
chain copied row for row between the two stores verifies in either.

- **Tables.** ``events`` and ``meta``, the SQLite columns, in the connection's current schema
  (unqualified names: the URL's ``search_path`` picks the schema, so several trails share one
  database without seeing each other).
- **Append-only.** The trigger function ``killswitch_append_only()`` (in the same schema)
  raises on UPDATE, DELETE and TRUNCATE of either table; the triggers fire ``ALWAYS`` (also
  under ``session_replication_role = replica``). :meth:`PgAuditLog.verify` reports a missing
  or disabled trigger and an altered function; the chain still catches an edit made after
  ``DROP TRIGGER``. A writer that finds any of it missing restores it in the same
  transaction as an ``audit``/``trail.damaged`` event naming what was missing (as the SQLite
  trail does); verifying never repairs, and a read-only open creates nothing.
- **One total order.** Every append is one transaction that first takes
  ``pg_advisory_xact_lock`` on the trail's key (:func:`console.store.pg.advisory_key`: per
  database and schema), then reads the head and the ``meta`` rows and inserts the chained
  events: many writers, on many hosts, take turns and the chain never forks. The lock ends
  with the transaction, so a pooler or a dropped connection leaks nothing. Each append is
  durable when it returns (``synchronous_commit`` is turned back on if the role or server
  turned it off) and announces the new head with ``pg_notify`` on :func:`trail_channel`
  (the console's live view LISTENs there).
- **No high-water mark.** SQLite's ``sqlite_sequence`` also shows a tail deleted after the
  triggers were dropped; a PostgreSQL sequence is not transactional (a failed append would
  look like a deletion), so here the witnessed checkpoints (:mod:`console.witness`, written
  at the end of every run) are what catch a deleted tail.

PostgreSQL text cannot hold NUL characters: a NUL in an event's text field is stored (and
hashed) as U+FFFD. Errors from the driver become :class:`~console.errors.AuditError`
(:func:`console.store.pg.store_error`: no traceback, no password); a connection the server
dropped is opened again on the next call (the call that saw it fail has failed, closed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from console.audit import _INDEXES, _LAST_SQL, FIELDS, TrailBase
from console.errors import AuditError
from console.scrub import use_fingerprint_key
from console.store.pg import advisory_key, connect, redact_url, store_error

__all__ = ["PgAuditLog", "trail_channel", "trail_exists"]

FUNCTION = "killswitch_append_only"
"""The trigger function that refuses UPDATE, DELETE and TRUNCATE."""

_FUNCTION_BODY = """
BEGIN
  RAISE EXCEPTION '% append-only: % rejected',
    CASE TG_TABLE_NAME WHEN 'events' THEN 'audit events are' ELSE 'audit meta is' END, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
"""
_FUNCTION_SQL = (f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql "
                 f"AS $ks${_FUNCTION_BODY}$ks$")

_TABLES: dict[str, str] = {
    "events": """CREATE TABLE IF NOT EXISTS events (
    seq BIGINT PRIMARY KEY,
    ts TEXT NOT NULL, run_id TEXT, incident TEXT, operator TEXT, host TEXT, mode TEXT,
    integration TEXT, step TEXT, op_id TEXT, phase TEXT, action TEXT, target TEXT,
    outcome TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
)""",
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
}

# name -> (table, event, level, pg_trigger.tgtype: ROW 1, BEFORE 2, DELETE 8, UPDATE 16,
# TRUNCATE 32)
_TRIGGERS: dict[str, tuple[str, str, str, int]] = {
    f"{table}_no_{event.lower()}": (table, event, level, tgtype)
    for table in _TABLES
    for event, level, tgtype in (("UPDATE", "ROW", 19), ("DELETE", "ROW", 11),
                                 ("TRUNCATE", "STATEMENT", 34))
}
_OBJECTS = (*_TABLES, FUNCTION, *_TRIGGERS)

_NAMES_SQL = f"""
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()),
fn AS (SELECT p.oid, p.prosrc FROM pg_proc p, ns
       WHERE p.pronamespace = ns.oid AND p.proname = '{FUNCTION}' AND p.pronargs = 0)
SELECT 'table', c.relname, '', 0, false FROM pg_class c, ns
 WHERE c.relnamespace = ns.oid AND c.relkind IN ('r', 'p') AND c.relname IN ('events', 'meta')
UNION ALL
SELECT 'function', '{FUNCTION}', fn.prosrc, 0, false FROM fn
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname, t.tgenabled::text, t.tgtype::int,
       t.tgfoid IN (SELECT oid FROM fn)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
 WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal AND c.relname IN ('events', 'meta')
"""

_INSERT_SQL = (f"INSERT INTO events ({', '.join(FIELDS)}) "
               f"VALUES ({', '.join('%s' for _ in FIELDS)})")
_PAGE = 5000
"""Events read per query while verifying (keyset pages: no cursor outlives a call)."""


class _QuietPipelineExit(logging.Filter):
    """Drop psycopg's warning that leaving a pipeline failed while an error was already on
    its way out (an append that failed in the database): that error becomes the
    AuditError the caller sees, and the warning would only print it again on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "error ignored terminating %r: %s" and record.args
                    and isinstance(record.args, tuple)
                    and isinstance(record.args[0], psycopg.Pipeline))


logging.getLogger("psycopg").addFilter(_QuietPipelineExit())


def trail_channel(conn: psycopg.Connection[Any]) -> str:
    """The LISTEN/NOTIFY channel on which the trail in ``conn``'s database and schema
    announces each new head (payload: its ``seq``): ``killswitch_`` + the first 16 hex of
    SHA-256 of the database name followed by the schema name."""
    row = conn.execute("SELECT current_database(), current_schema()").fetchone()
    db, schema = (str(row[0] or ""), str(row[1] or "")) if row else ("", "")
    return _channel(db, schema)


def _channel(db: str, schema: str) -> str:
    return "killswitch_" + hashlib.sha256((db + schema).encode()).hexdigest()[:16]


def trail_exists(url: str) -> bool:
    """Whether the store at ``url`` (its schema) holds a trail: either table is there.
    Looking creates nothing.

    Raises:
        AuditError: The store cannot be reached.
    """
    try:
        with connect(url) as conn:
            names = {str(r[1]) for r in conn.execute(_NAMES_SQL) if r[0] == "table"}
    except psycopg.Error as exc:
        raise store_error(url, "read the audit trail", exc) from exc
    return bool(names)


def _no_nul(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw`` with NUL characters in its text fields replaced (PostgreSQL text refuses
    them; ``detail`` is stored as escaped JSON and needs nothing)."""
    if not any(type(v) is str and "\x00" in v for v in raw.values()):
        return raw
    return {k: v.replace("\x00", "\ufffd") if type(v) is str else v for k, v in raw.items()}


class PgAuditLog(TrailBase):
    """The hash-chained audit trail in a PostgreSQL schema; safe to share between threads
    (one connection, used by one thread at a time) and between processes and hosts.

    Args:
        url: A ``postgresql://`` URL (``?options=-csearch_path%3D<schema>`` picks the schema).
        key: HMAC key. Defaults to ``$KILLSWITCH_AUDIT_KEY``; see
            :class:`~console.audit.AuditLog`.
        readonly: Create, migrate and repair nothing, refuse to write (every transaction of
            the session is ``READ ONLY``). What verifying uses.
        busy_timeout: Seconds to wait for the trail's append lock (``lock_timeout``) before
            failing.

    Attributes:
        url: The URL given (with its password: never show it; ``path`` is for people).
        path: The URL without its password (``where=`` of every error, a checkpoint's
            ``db``).
        channel: The NOTIFY channel of this trail (:func:`trail_channel`).

    Raises:
        AuditError: The store cannot be reached, its schema does not exist, it is behind a
            transaction pooler, the trail cannot be created, or (read-only) there is no
            trail in the schema.
    """

    _TABLE_NAMES: ClassVar[tuple[str, ...]] = tuple(_TABLES)
    _TRIGGER_NAMES: ClassVar[tuple[str, ...]] = tuple(_TRIGGERS)
    _KEEP_HINT: ClassVar[str] = ("keep the schema as evidence (pg_dump --schema); compare "
                                 "with an export or a backup")

    def __init__(self, url: str, key: bytes | None = None, *, readonly: bool = False,
                 busy_timeout: float = 30.0) -> None:
        self._setup(key, readonly)
        self.url = url
        self.path = redact_url(url)
        self.channel = ""
        self._busy_timeout = busy_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._trail_key = 0
        with self._errors("open the audit trail"):
            try:
                if readonly:
                    if not {"events", "meta"} & self._names():
                        raise AuditError(
                            f"no audit trail in the store (schema {self._schema}): nothing "
                            "was ever written there", where=self.path,
                            hint="check settings.store or $KILLSWITCH_STORE (and the schema "
                                 "in its search_path)")
                else:
                    self._prepare_trail()
                self._fp_key = self._fingerprint_key(self._meta_or_empty())
            except BaseException:
                self.close()
                raise
        if not readonly and self._fp_key is not None:
            use_fingerprint_key(self._fp_key)

    # -- the connection -------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        """Open the session: check the schema, wait ``busy_timeout`` at most for locks, keep
        commits durable and statements in READ COMMITTED (a write reads the head after it
        holds the append lock), read-only when asked."""
        conn = connect(self.url)
        try:
            row = conn.execute(
                "SELECT current_database(), current_schema(), "
                "current_setting('synchronous_commit'), "
                "set_config('lock_timeout', %s, false), "
                "set_config('default_transaction_isolation', 'read committed', false), "
                "set_config('default_transaction_read_only', %s, false)",
                (f"{max(1, int(self._busy_timeout * 1000))}ms",
                 "on" if self.readonly else "off")).fetchone()
            assert row is not None
            db, schema, sync = row[0], row[1], row[2]
            if schema is None:
                raise AuditError(
                    "the store URL names a schema that does not exist", where=self.path,
                    hint="create it (CREATE SCHEMA <name>) or fix search_path in the URL")
            if sync == "off":
                conn.execute("SET synchronous_commit = on")
            self._schema = str(schema)
            self.channel = _channel(str(db), self._schema)
            self._trail_key = advisory_key(conn, "trail")
        except psycopg.Error as exc:
            conn.close()
            raise store_error(self.url, "open the audit trail", exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def _live(self) -> psycopg.Connection[Any]:
        conn = self._conn
        assert conn is not None, "used outside _errors()"
        return conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Fail closed: psycopg errors become AuditError; a broken session is replaced."""
        if self._closed:
            raise AuditError(f"cannot {doing}: the audit log was closed", where=self.path,
                             hint="the audit log was closed; open a new PgAuditLog")
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = None
            self._conn = self._connect()
        try:
            yield
        except psycopg.Error as exc:
            raise store_error(self.url, doing, exc) from exc

    def close(self) -> None:
        """Close the connection; further use raises AuditError."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()

    def __del__(self) -> None:
        # Like a sqlite3 connection: a trail dropped without close() ends its session.
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            conn.close()

    # -- what TrailBase asks of the database --------------------------------------------

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._live.execute(sql.replace("?", "%s"), tuple(params))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._live.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.replace("?", "%s"), tuple(params))
            return cur.fetchall()

    def _insert_meta(self, rows: list[tuple[str, str]]) -> None:
        with self._live.cursor() as cur:
            cur.executemany("INSERT INTO meta (key, value) VALUES (%s, %s) "
                            "ON CONFLICT (key) DO NOTHING", rows)

    def _insert_events(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """One INSERT per row, queued in the append's pipeline (``executemany`` would wait
        for the server at its end, with the lock held), then the NOTIFY of the new head."""
        conn, last = self._live, None
        with conn.cursor() as cur:
            for row in rows:
                cur.execute(_INSERT_SQL, row)
                last = row[0]
        if last is not None:  # delivered when (and only if) this transaction commits
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(last)))

    @contextmanager
    def _write(self) -> Iterator[None]:
        """The append transaction in one pipeline: BEGIN, the lock and the reads of
        :meth:`_meta_and_last` go in one round trip, the inserts, the NOTIFY and COMMIT in
        another, so the lock is held for two round trips and the commit's flush. Leaving
        the pipeline waits for COMMIT's answer: the events are durable when this returns.
        Any error (ours or the server's) rolls the transaction back."""
        conn = self._live
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._trail_key,))
                yield
                conn.execute("COMMIT")
        except BaseException:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                with suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise

    def _meta_and_last(self) -> tuple[dict[str, str], tuple[int, str] | None]:
        conn = self._live
        meta = conn.execute("SELECT key, value FROM meta")
        last = conn.execute(_LAST_SQL).fetchone()  # one sync brings both
        return dict(meta.fetchall()), (last[0], last[1]) if last else None

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        conn = self._live
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _event_rows(self) -> Iterator[tuple[Any, ...]]:
        conn, cols, after = self._live, ", ".join(FIELDS), None
        while True:
            if after is None:
                page = conn.execute(f"SELECT {cols} FROM events ORDER BY seq LIMIT {_PAGE}"
                                    ).fetchall()
            else:
                page = conn.execute(f"SELECT {cols} FROM events WHERE seq > %s ORDER BY seq "
                                    f"LIMIT {_PAGE}", (after,)).fetchall()
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def _names(self) -> set[str]:
        """Tables present; the function if its body is ours; each trigger if it is on its
        table, for its event, fires ALWAYS and calls our function."""
        names: set[str] = set()
        for kind, name, text, tgtype, ours in self._live.execute(_NAMES_SQL):
            if kind == "table":
                names.add(name)
            elif kind == "function" and text == _FUNCTION_BODY:
                names.add(name)
            elif kind == "trigger":
                table, _, trigger = str(name).partition(".")
                want = _TRIGGERS.get(trigger)
                if want and want[0] == table and want[3] == tgtype and text == "A" and ours:
                    names.add(trigger)
        return names

    def _structure_problems(self, names: set[str]) -> list[str]:
        if not {"events", "meta"} & names:  # no trail was ever created in this schema
            return []
        return ([f"table {t} is missing (dropped?)" for t in _TABLES if t not in names]
                + ([f"function {FUNCTION}() is missing or altered: the triggers may not "
                    "refuse edits"] if FUNCTION not in names else [])
                + [f"trigger {t} is missing or disabled: rows could be edited or deleted"
                   for t in _TRIGGERS if t not in names])

    def _prepare(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return super()._prepare(_no_nul(raw))

    def _prepare_row(self, raw: Mapping[str, Any],
                     memo: dict[str, str] | None = None) -> tuple[Any, ...]:
        return super()._prepare_row(_no_nul(raw), memo)

    # -- creating and repairing ---------------------------------------------------------

    def _create(self, missing: Sequence[str]) -> None:
        """Create the missing objects (in the caller's transaction)."""
        conn = self._live
        for name in missing:
            if name in _TABLES:
                conn.execute(_TABLES[name])
        for sql in _INDEXES:
            conn.execute(sql)
        if FUNCTION in missing:
            conn.execute(_FUNCTION_SQL)
        for name in missing:
            if name in _TRIGGERS:
                table, event, level, _ = _TRIGGERS[name]
                conn.execute(f"CREATE OR REPLACE TRIGGER {name} BEFORE {event} ON {table} "
                             f"FOR EACH {level} EXECUTE FUNCTION {FUNCTION}()")
                conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")

    def _prepare_trail(self) -> None:
        """Create a new trail (under the append lock: one creator wins); note, never
        silently repair, a damaged one."""
        names = self._names()
        if not {"events", "meta"} & names:
            with self._write():
                if not {"events", "meta"} & self._names():  # nobody created it meanwhile
                    self._create(_OBJECTS)
                    self._insert_meta(self._new_meta_rows())
            names = self._names()
        self._damage = [name for name in _OBJECTS if name not in names]
        if not self._damage and not {"trail_id", "fp_salt"} <= set(self._meta()):
            self._insert_meta(self._new_meta_rows())

    def _repair(self) -> None:
        """Restore what was removed or disabled, on the record: recreate it and append a
        ``trail.damaged`` event naming it, in one transaction. Verifying never gets here."""
        with self._write():
            missing = [name for name in _OBJECTS if name not in self._names()]
            self._create(missing)
            self._insert_meta(self._new_meta_rows())
            self._fp_key = self._fingerprint_key(self._meta())
            if missing:
                self._damage_event(missing)
        self._damage = []
        if self._fp_key is not None:
            use_fingerprint_key(self._fp_key)
