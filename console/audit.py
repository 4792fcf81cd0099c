"""The audit trail: an append-only, hash-chained SQLite table of everything seen and done.

Each event's ``hash`` is SHA-256 (HMAC-SHA-256 when a key is configured) over the canonical
JSON of all its other fields, ``prev_hash`` included, so that editing, deleting or reordering
any row breaks the chain from that row on. Triggers reject UPDATE and DELETE; the chain
catches what bypasses them (the ``sqlite3`` CLI after dropping the triggers).

Writes fail closed: if an event cannot be stored, :class:`~console.errors.AuditError` is
raised and the caller must not perform the side effect. Every text field and the detail pass
:func:`console.scrub.scrub` before hashing, so secret values never enter the file.

The engine keeps its own tables (journal, locks) in the same database file; this module only
creates ``events`` and ``meta`` and never drops anything.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import sqlite_utils

from console.errors import AuditError, AuditTampered, UsageError
from console.scrub import scrub

__all__ = [
    "FIELDS",
    "GENESIS_HASH",
    "KEY_ENV",
    "AuditLog",
    "ChainReport",
    "canonical_json",
    "utc_now",
]

KEY_ENV = "KILLSWITCH_AUDIT_KEY"
"""Environment variable holding the HMAC key (used as UTF-8 bytes)."""

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event."""

FIELDS: tuple[str, ...] = (
    "seq", "ts", "run_id", "incident", "operator", "host", "mode", "integration", "step",
    "op_id", "phase", "action", "target", "outcome", "detail", "prev_hash", "hash",
)
"""Every event field, in storage and export order."""

_TEXT_FIELDS = ("ts", "run_id", "incident", "operator", "host", "mode", "integration", "step",
                "op_id", "phase", "action", "target", "outcome")
_ASSIGNED = ("seq", "prev_hash", "hash")
_KEY_CHECK_MSG = b"killswitch audit key check v1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL, run_id TEXT, incident TEXT, operator TEXT, host TEXT, mode TEXT,
    integration TEXT, step TEXT, op_id TEXT, phase TEXT, action TEXT, target TEXT,
    outcome TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run_id ON events(run_id);
CREATE INDEX IF NOT EXISTS events_incident ON events(incident);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE rejected'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE rejected'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'audit meta is append-only: UPDATE rejected'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'audit meta is append-only: DELETE rejected'); END;
"""
_TRIGGERS = ("events_no_update", "events_no_delete", "meta_no_update", "meta_no_delete")


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically (sorted keys, no spaces) for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def utc_now() -> str:
    """The current UTC time as ISO-8601 with microseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ChainReport:
    """Result of :meth:`AuditLog.verify`.

    Attributes:
        ok: Whether every event verifies.
        count: Number of events checked.
        first_bad_seq: The first sequence number that does not verify (None when ok).
        reason: Why it does not verify, in one sentence ("" when ok).
    """

    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    """The hash-chained audit trail in one SQLite file; safe to share between threads.

    Args:
        path: The database file; missing parent folders are created.
        key: HMAC key. Defaults to ``$KILLSWITCH_AUDIT_KEY`` (UTF-8); None or empty means an
            unkeyed SHA-256 chain. A trail's first event fixes whether it is keyed.
        busy_timeout: Seconds to wait for another writer before failing.

    Raises:
        AuditError: The file cannot be opened or its schema created.
    """

    def __init__(
        self, path: str | Path, key: bytes | None = None, *, busy_timeout: float = 30.0
    ) -> None:
        if key is None:
            env = os.environ.get(KEY_ENV, "")
            key = env.encode("utf-8") if env else None
        self.path = Path(path).expanduser()
        self._key = key or None
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        with self._errors("open the audit trail"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path),
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn = conn
            try:
                self.db = sqlite_utils.Database(conn)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                if not {"events", "meta", *_TRIGGERS} <= existing:
                    conn.executescript(_SCHEMA)  # also restores dropped triggers
            except BaseException:
                conn.close()
                raise

    # -- plumbing ---------------------------------------------------------------------------

    def _errors(self, doing: str) -> _ErrorContext:
        return _ErrorContext(self, doing)

    def _meta(self) -> dict[str, str]:
        return {k: v for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def _key_check(self) -> str:
        assert self._key is not None
        return hmac.new(self._key, _KEY_CHECK_MSG, hashlib.sha256).hexdigest()[:16]

    def _digest(self, event: Mapping[str, Any]) -> str:
        body = canonical_json({k: event.get(k) for k in FIELDS if k != "hash"}).encode()
        if self._key is not None:
            return hmac.new(self._key, body, hashlib.sha256).hexdigest()
        return hashlib.sha256(body).hexdigest()

    def _check_key_for_write(self, meta: dict[str, str]) -> None:
        keyed = meta.get("keyed")
        if keyed is None:
            rows = [("schema_version", "1"), ("keyed", "1" if self._key else "0")]
            if self._key is not None:
                rows.append(("key_check", self._key_check()))
            self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
        elif keyed == "1" and self._key is None:
            raise AuditError(
                "this audit trail is keyed (HMAC) and no key is configured",
                where=str(self.path), hint=f"set {KEY_ENV} to the trail's key",
            )
        elif keyed == "1" and meta.get("key_check") != self._key_check():
            raise AuditError(
                "the configured audit key is not the key this trail was written with",
                where=str(self.path), hint=f"check {KEY_ENV}",
            )
        elif keyed == "0" and self._key is not None:
            raise AuditError(
                "this audit trail is not keyed but an audit key is configured",
                where=str(self.path),
                hint=f"unset {KEY_ENV} for this trail, or start a new trail file for keyed use",
            )

    def _prepare(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(raw) - set(FIELDS)
        if unknown:
            raise UsageError(f"unknown audit event fields: {', '.join(sorted(unknown))}")
        for name in ("prev_hash", "hash"):
            if raw.get(name) is not None:
                raise UsageError(f"audit event field {name!r} is assigned by the audit log")
        event: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            value = raw.get(name)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            event[name] = None if value is None else scrub(str(value))
        event["ts"] = event["ts"] or utc_now()
        event["host"] = event["host"] or scrub(self._host)
        detail = raw.get("detail")
        if detail is None:
            detail = {}
        if not isinstance(detail, Mapping):
            raise UsageError("audit event detail must be a dict")
        # Round-trip through canonical JSON so what is hashed is exactly what is stored.
        event["detail"] = json.loads(canonical_json(scrub(dict(detail))))
        return event

    # -- writing ----------------------------------------------------------------------------

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append events in one transaction: all of them are stored, or none.

        ``seq``, ``prev_hash`` and ``hash`` are assigned here; ``ts`` defaults to now (UTC)
        and ``host`` to this host. Text fields and ``detail`` are scrubbed before hashing.

        Args:
            events: Event field mappings (see :data:`FIELDS`); ``detail`` is a dict.

        Returns:
            The stored events, with every field filled in.

        Raises:
            UsageError: An event has unknown fields, a non-dict detail or a set hash.
            AuditError: The events could not be written (nothing was written).
        """
        prepared = [self._prepare(e) for e in events]
        if not prepared:
            return []
        with self._lock, self._errors("append to the audit trail"):
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_key_for_write(self._meta())
                last = conn.execute(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (last[0], last[1]) if last else (0, GENESIS_HASH)
                stored: list[dict[str, Any]] = []
                for raw, event in zip(events, prepared, strict=True):
                    seq += 1
                    wanted = raw.get("seq")
                    if wanted is not None and wanted != seq:
                        raise UsageError(f"audit event seq {wanted} given, next is {seq}")
                    event.update(seq=seq, prev_hash=prev)
                    event["hash"] = prev = self._digest(event)
                    stored.append({k: event[k] for k in FIELDS})
                conn.executemany(
                    f"INSERT INTO events ({', '.join(FIELDS)}) "
                    f"VALUES ({', '.join('?' for _ in FIELDS)})",
                    [
                        tuple(canonical_json(e[k]) if k == "detail" else e[k] for k in FIELDS)
                        for e in stored
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return stored

    def append(self, **fields: Any) -> dict[str, Any]:
        """Append one event; see :meth:`append_many`.

        Returns:
            The stored event.
        """
        return self.append_many([fields])[0]

    # -- reading ----------------------------------------------------------------------------

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        with self._lock, self._errors("read the audit trail"):
            rows = list(self.db.query(sql, params))
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
            yield row

    def events(
        self,
        run_id: str | None = None,
        incident: str | None = None,
        integration: str | None = None,
        outcome: str | None = None,
    ) -> list[dict[str, Any]]:
        """Events matching every given filter, ordered by ``seq``, ``detail`` as a dict."""
        filters = {"run_id": run_id, "incident": incident, "integration": integration,
                   "outcome": outcome}
        where = [(k, v) for k, v in filters.items() if v is not None]
        sql = f"SELECT {', '.join(FIELDS)} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k, _ in where)
        sql += " ORDER BY seq"
        return list(self._rows(sql, tuple(v for _, v in where)))

    def runs(self) -> list[dict[str, Any]]:
        """One summary per run, oldest first.

        Returns:
            Dicts with ``run_id``, ``first_ts``, ``last_ts``, ``mode``, ``incident``,
            ``operator``, ``count`` and ``outcomes`` (outcome -> number of events).
        """
        with self._lock, self._errors("read the audit trail"):
            summary = list(self.db.query(
                "SELECT run_id, min(ts) AS first_ts, max(ts) AS last_ts, "
                "coalesce(max(CASE WHEN mode != 'plan' THEN mode END), max(mode)) AS mode, "
                "max(incident) AS incident, max(operator) AS operator, "
                "count(*) AS count, min(seq) AS first_seq FROM events "
                "WHERE run_id IS NOT NULL GROUP BY run_id ORDER BY first_seq"
            ))
            outcome_rows = list(self.db.query(
                "SELECT run_id, outcome, count(*) AS n FROM events "
                "WHERE run_id IS NOT NULL AND outcome IS NOT NULL GROUP BY run_id, outcome"
            ))
        outcomes: dict[str, dict[str, int]] = {}
        for r in outcome_rows:
            outcomes.setdefault(r["run_id"], {})[r["outcome"]] = r["n"]
        for run in summary:
            run.pop("first_seq")
            run["outcomes"] = dict(sorted(outcomes.get(run["run_id"], {}).items()))
        return summary

    def verify(self) -> ChainReport:
        """Recompute every hash and ``prev_hash`` link and check ``seq`` continuity.

        Returns:
            A :class:`ChainReport`; ``first_bad_seq`` names the first event that does not
            verify (a missing event counts as bad at its own sequence number).

        Raises:
            AuditError: The trail is keyed and no key is configured, or it cannot be read.
        """
        with self._lock, self._errors("verify the audit trail"):
            meta = self._meta()
            keyed = meta.get("keyed")
            if keyed == "1" and self._key is None:
                raise AuditError(
                    "this audit trail is keyed (HMAC); verifying it needs the key",
                    where=str(self.path), hint=f"set {KEY_ENV} to the trail's key",
                )
            if keyed == "1" and meta.get("key_check") != self._key_check():
                return ChainReport(False, 0, 1, "the configured key is not this trail's key")
            count = self._conn.execute("SELECT count(*) FROM events").fetchone()[0]
            if keyed != "1" and self._key is not None and count:
                return ChainReport(
                    False, 0, 1,
                    "a key is configured but the trail is not keyed: it may have been "
                    "rewritten without the key",
                )
            expected, prev, checked = 1, GENESIS_HASH, 0
            cursor = self._conn.execute(f"SELECT {', '.join(FIELDS)} FROM events ORDER BY seq")
            for values in cursor:
                row = dict(zip(FIELDS, values, strict=True))
                seq = row["seq"]
                if seq != expected:
                    return ChainReport(False, checked, expected,
                                       f"event {expected} is missing (found {seq} next)")
                if row["prev_hash"] != prev:
                    return ChainReport(False, checked, seq,
                                       "prev_hash does not link to the previous event")
                try:
                    row["detail"] = json.loads(row["detail"])
                except (TypeError, ValueError):
                    return ChainReport(False, checked, seq, "detail is not valid JSON")
                if not hmac.compare_digest(self._digest(row), str(row["hash"])):
                    return ChainReport(False, checked, seq,
                                       "hash does not match the event's content (edited)")
                prev, expected, checked = row["hash"], expected + 1, checked + 1
            high = self._conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
            ).fetchone()
            if high is not None and high[0] >= expected:
                return ChainReport(False, checked, expected,
                                   f"events {expected}..{high[0]} were deleted from the end")
        return ChainReport(True, checked)

    def verify_or_raise(self) -> ChainReport:
        """Like :meth:`verify`, but raise when the chain does not verify.

        Raises:
            AuditTampered: With ``seq`` set to the first bad sequence number.
        """
        report = self.verify()
        if not report.ok:
            seq = report.first_bad_seq or 0
            raise AuditTampered(
                f"audit chain does not verify at seq {seq}: {report.reason}",
                seq=seq, where=str(self.path),
                hint="keep the file as evidence; compare with an export or a backup",
            )
        return report

    def export(
        self, fmt: Literal["jsonl", "csv"], out: IO[str], run_id: str | None = None
    ) -> int:
        """Write events (all, or one run's) as JSON Lines or CSV.

        In CSV, ``detail`` is a canonical JSON string.

        Returns:
            The number of events written.

        Raises:
            UsageError: ``fmt`` is neither ``jsonl`` nor ``csv``.
        """
        if fmt not in ("jsonl", "csv"):
            raise UsageError(f"unknown export format {fmt!r}", hint="use jsonl or csv")
        rows = self.events(run_id=run_id)
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(out, fieldnames=list(FIELDS), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "detail": canonical_json(row["detail"])})
        return len(rows)

    def close(self) -> None:
        """Close the connection; further use raises AuditError."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ErrorContext:
    """Turn sqlite3 and OS errors into AuditError (fail closed) with a hint."""

    def __init__(self, log: AuditLog, doing: str) -> None:
        self.log, self.doing = log, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None or not isinstance(exc, sqlite3.Error | OSError):
            return
        text = str(exc)
        if "locked" in text or "busy" in text:
            hint = "another process holds the audit database; retry, or check for a hung run"
        elif "not a database" in text or "malformed" in text:
            hint = "the file is not a healthy SQLite database; keep it as evidence, use a new path"
        elif isinstance(exc, sqlite3.ProgrammingError):
            hint = "the audit log was closed; open a new AuditLog"
        else:
            hint = ("check that the folder exists, is writable and has free space "
                    "(settings.audit_db)")
        raise AuditError(f"cannot {self.doing}: {text}", where=str(self.log.path),
                         hint=hint) from exc
