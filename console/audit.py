"""The audit trail: an append-only, hash-chained table of everything seen and done.

:class:`TrailBase` is all of it but the database; :class:`AuditLog` keeps the trail in one
SQLite file (the embedded default, described below), :class:`console.store.pg_audit.PgAuditLog`
in a shared PostgreSQL store, with the same rows, hashes and checks.

Each event's ``hash`` is SHA-256 (HMAC-SHA-256 when a key is configured) over the canonical
JSON of all its other fields, ``prev_hash`` included, so that editing, deleting or reordering
any row breaks the chain from that row on. Triggers reject UPDATE and DELETE; the chain
catches what bypasses them (the ``sqlite3`` CLI after dropping the triggers).

A chain cannot see its own tail deleted, nor a trail rewritten whole: that is what the
witnessed checkpoints of :mod:`console.witness` are for. :meth:`AuditLog.verify` compares
the trail with the heads a witness saw (``witnessed``) and takes whether the trail must be
keyed from its caller (``require_key``: the config and the witness), never from the
trail's own ``meta`` alone. Verifying never repairs: open the trail with ``readonly=True``
(what ``audit verify`` does) and a dropped trigger or table is reported, the file left as
found. A writer that finds the trail damaged restores the missing tables and triggers in
the same transaction as an ``audit``/``trail.damaged`` event naming what was missing, so the
repair itself is on the record.

Writes fail closed: if an event cannot be stored, :class:`~console.errors.AuditError` is
raised and the caller must not perform the side effect. Every text field and the detail pass
:func:`console.scrub.scrub` before hashing, so secret values never enter the file; the
fingerprints the scrubber leaves are keyed with this trail's fingerprint key (derived from
the audit key, else a random salt in ``meta``), see :mod:`console.scrub`.

The file, its WAL and the folders created for it are private (``0600`` / ``0700``, whatever
the umask; see :mod:`console.privfile`).

The engine keeps its own tables (journal, locks) in the same database file; this module only
creates ``events`` and ``meta`` and never drops anything.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import random
import secrets
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, Protocol, Self

import sqlite_utils

from adapters.canonical import canonical_bytes, legacy_json
from adapters.canonical import canonical_json as _jcs_text
from console.errors import AuditError, AuditTampered, UsageError
from console.identity import host_name
from console.privfile import PRIVATE_FILE, make_private_dirs, open_private
from console.scrub import (
    fingerprint_key_from_audit_key,
    fingerprint_secret,
    scrub,
    use_fingerprint_key,
)

__all__ = [
    "FIELDS",
    "GENESIS_HASH",
    "KEY_ENV",
    "AuditLog",
    "ChainHead",
    "ChainReport",
    "TrailBase",
    "WitnessedHead",
    "canonical_json",
    "checkpoint_mac",
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
_CHECKPOINT_LABEL = b"killswitch checkpoint key v1"

_TABLES: dict[str, str] = {
    "events": """CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL, run_id TEXT, incident TEXT, operator TEXT, host TEXT, mode TEXT,
    integration TEXT, step TEXT, op_id TEXT, phase TEXT, action TEXT, target TEXT,
    outcome TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
)""",
    "meta": "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
}
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_run_id ON events(run_id)",
    "CREATE INDEX IF NOT EXISTS events_incident ON events(incident)",
)
_TRIGGERS: dict[str, str] = {
    "events_no_update": "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
                        "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE "
                        "rejected'); END",
    "events_no_delete": "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
                        "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE "
                        "rejected'); END",
    "meta_no_update": "CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta "
                      "BEGIN SELECT RAISE(ABORT, 'audit meta is append-only: UPDATE "
                      "rejected'); END",
    "meta_no_delete": "CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta "
                      "BEGIN SELECT RAISE(ABORT, 'audit meta is append-only: DELETE "
                      "rejected'); END",
}
_OBJECTS = (*_TABLES, *_TRIGGERS)


class WitnessedHead(Protocol):
    """A chain head seen by a witness (see :class:`console.witness.Checkpoint`)."""

    @property
    def seq(self) -> int:
        """Sequence number of the head event."""
        ...

    @property
    def hash(self) -> str:
        """Its hash."""
        ...

    @property
    def time(self) -> str:
        """When the witness saw it (UTC)."""
        ...


@dataclass(frozen=True)
class ChainHead:
    """The newest event of a trail: its ``seq`` and ``hash``, and how many events there are.

    An empty trail has ``seq`` 0 and the genesis hash.
    """

    seq: int
    hash: str
    count: int

    def short(self) -> str:
        """``seq 42, hash 3f2a9c0d1e2b4f56`` (the form notifications quote)."""
        return f"seq {self.seq}, hash {self.hash[:16]}"


SCHEMA_VERSION = "2"
"""Trail schema written to new trails: 2 hashes events over RFC 8785 (JCS) canonical JSON, so a
verifier in any language can recompute the chain; 1 (Python's sorted-keys JSON) still verifies.
"""


def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON of ``value`` (see :mod:`adapters.canonical`)."""
    return _jcs_text(value)


def _chain_bytes(body: Any, schema: str) -> bytes:
    """What an event's hash covers, in the canonical form of the trail's schema version."""
    return legacy_json(body).encode() if schema == "1" else canonical_bytes(body)


_LAST_SQL = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
_DETAIL_TEXT = "__detail_text"
"""A prepared event's key for the canonical text of its detail (what is stored)."""
_SEQ, _PREV, _HASH, _DETAIL = (FIELDS.index(n) for n in ("seq", "prev_hash", "hash", "detail"))
_encode_string = json.encoder.encode_basestring
_HASHED = [(name, FIELDS.index(name)) for name in sorted(FIELDS) if name != "hash"]
"""The hashed fields in RFC 8785 key order (all ASCII names) and their column index."""
_PREFIXED = [(f'"{name}":', idx) for name, idx in _HASHED]
_DETAIL_PREFIX = '"detail":'
_FIELD_SET = frozenset(FIELDS)
_REPEATED = frozenset(("run_id", "incident", "operator", "host", "mode", "step", "phase",
                       "action", "outcome"))
"""Text fields whose values recur across a batch (a run's events): scrubbed once a batch."""


def _stored_body(row: Sequence[Any]) -> bytes:
    """What a schema-2 event's hash covers, built from the stored row (values in
    :data:`FIELDS` order): the ``detail`` column holds the canonical JSON text written at
    append time, so it is hashed as stored instead of being parsed and serialised again
    (any edit to it changes the bytes hashed). Strings use the C JSON string encoder, whose
    output is RFC 8785's for every valid Unicode string (a lone surrogate falls back)."""
    parts = [_DETAIL_PREFIX + str(row[_DETAIL]) if idx == _DETAIL else
             prefix + (_encode_string(value) if type(value := row[idx]) is str else
                       "null" if value is None else
                       str(value) if type(value) is int else
                       canonical_bytes(value).decode())
             for prefix, idx in _PREFIXED]
    try:
        return ("{" + ",".join(parts) + "}").encode()
    except UnicodeEncodeError:  # a lone surrogate: the canonical encoder says what it hashes
        return canonical_bytes({name: (json.loads(row[idx]) if name == "detail" else row[idx])
                                for name, idx in _HASHED})


def _detail_text(detail: dict[str, Any]) -> str:
    """:func:`canonical_json` of a scrubbed detail (a fresh dict), the same text, without
    the normalising copy when it is plain JSON data already (almost every event): see
    :func:`console.engine.planfile.canonical_plan_bytes`."""
    from console.engine.planfile import canonical_plan_bytes

    return canonical_plan_bytes(detail).decode("utf-8")


def checkpoint_mac(key: bytes, body: bytes) -> str:
    """HMAC-SHA-256 of a witness checkpoint's canonical ``body``, with a key derived from the
    audit ``key`` (so the chain key signs events only)."""
    derived = hmac.new(key, _CHECKPOINT_LABEL, hashlib.sha256).digest()
    return hmac.new(derived, body, hashlib.sha256).hexdigest()


def utc_now() -> str:
    """The current UTC time as ISO-8601 with microseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ChainReport:
    """Result of :meth:`AuditLog.verify`.

    Attributes:
        ok: Whether every event verifies, the structure is intact and every witnessed head
            is in the trail.
        count: Number of events checked.
        first_bad_seq: The first sequence number that does not verify (None when ok, or
            when the failure is not at one event: a missing trigger, a missing key).
        reason: Why it does not verify ("" when ok; else every problem found).
        last_good_seq: The last sequence number that can be trusted: every event up to it
            verifies and matches every witness that saw it (None when nothing can be said).
        checkpoints: How many witnessed heads the trail was compared with.
    """

    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str = ""
    last_good_seq: int | None = None
    checkpoints: int = 0


class TrailBase(ABC):
    """What every audit trail does, whichever database holds it: scrubbing and preparing
    events, the canonical bodies and their MAC, chaining, the key rules, reading, the
    verification walk, witnesses and export.

    A store supplies the database half (the abstract methods below, plus ``path``,
    ``close`` and its own ``__init__`` calling :meth:`_setup`): :class:`AuditLog` keeps the
    trail in one SQLite file, :class:`console.store.pg_audit.PgAuditLog` in PostgreSQL. Both
    store the same rows, so one chain hashes identically in either.

    SQL given to :meth:`_sql` and :meth:`_query` uses ``?`` placeholders; a store whose
    driver wants another style translates them.
    """

    path: Any
    """Where the trail is: the SQLite file (a ``Path``), or the store's URL without its
    password (a ``str``)."""
    readonly: bool
    """Opened read-only: nothing is created, migrated or repaired, and writing raises."""

    _TABLE_NAMES: ClassVar[tuple[str, ...]] = tuple(_TABLES)
    _TRIGGER_NAMES: ClassVar[tuple[str, ...]] = tuple(_TRIGGERS)
    _KEEP_HINT: ClassVar[str] = "keep the file as evidence; compare with an export or a backup"

    def _setup(self, key: bytes | None, readonly: bool) -> None:
        """The state every trail keeps (``key`` None: ``$KILLSWITCH_AUDIT_KEY``)."""
        if key is None:
            env = os.environ.get(KEY_ENV, "")
            key = env.encode("utf-8") if env else None
        self.readonly = readonly
        self._key = key or None
        self._lock = threading.RLock()
        self._host = host_name()
        self._damage: list[str] = []
        self._fp_key: bytes | None = None

    # -- what the database provides -------------------------------------------------------

    @property
    def location(self) -> str:
        """Where the trail is, for messages (``where=``)."""
        return str(self.path)

    @abstractmethod
    def _errors(self, doing: str) -> AbstractContextManager[None]:
        """A context that turns the driver's errors into :class:`AuditError` (fail closed)."""

    @abstractmethod
    def _sql(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; a cursor (iterable rows as tuples, ``fetchone``)."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; every row as a dict keyed by column name."""

    @abstractmethod
    def _insert_meta(self, rows: list[tuple[str, str]]) -> None:
        """Insert ``meta`` rows whose key is not there yet (never replace one)."""

    @abstractmethod
    def _insert_events(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert chained event rows (values in :data:`FIELDS` order), in the write
        transaction of :meth:`_write`."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[None]:
        """One write transaction that holds the trail's write lock from its start (so the
        head read in it is still the head when it commits): commit on success, roll back
        on any error."""

    @abstractmethod
    def _names(self) -> set[str]:
        """The trail's objects (tables, triggers, ...) that are there and intact."""

    @abstractmethod
    def _repair(self) -> None:
        """Restore what is missing (tables, triggers, meta rows) and record it with a
        ``trail.damaged`` event, in one write transaction; learn the fingerprint key."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; further use raises AuditError."""

    def _snapshot(self) -> AbstractContextManager[None]:
        """A context in which every read sees one state of the trail (for verifying)."""
        return nullcontext()

    def _high_seq(self, names: set[str]) -> int | None:
        """The highest ``seq`` the database ever handed out, when it keeps one apart from
        the rows (a deleted tail then shows)."""
        return None

    def _event_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every event row (values in :data:`FIELDS` order) by ``seq``."""
        return iter(self._sql(f"SELECT {', '.join(FIELDS)} FROM events ORDER BY seq"))

    def _structure_problems(self, names: set[str]) -> list[str]:
        """What :meth:`verify` reports missing from a trail (nothing for a store where no
        trail was ever created)."""
        if not {"events", "meta"} & names:  # an empty file: no trail was ever created
            return []
        return ([f"table {t} is missing (dropped?)" for t in self._TABLE_NAMES
                 if t not in names]
                + [f"trigger {t} is missing: rows could be edited or deleted"
                   for t in self._TRIGGER_NAMES if t not in names])

    def _meta(self) -> dict[str, str]:
        return {k: v for k, v in self._sql("SELECT key, value FROM meta")}

    def _meta_and_last(self) -> tuple[dict[str, str], tuple[int, str] | None]:
        """In the write transaction: the ``meta`` rows and ``(seq, hash)`` of the newest
        event (None: no event yet)."""
        row = self._sql(_LAST_SQL).fetchone()
        return self._meta(), (row[0], row[1]) if row else None

    def _damage_event(self, missing: list[str]) -> None:
        """Append the ``trail.damaged`` event naming what :meth:`_repair` recreated."""
        raw = {"phase": "audit", "action": "trail.damaged", "outcome": "repaired",
               "detail": {"missing": missing,
                          "message": "found missing when writing; recreated: "
                                     "run `killswitch audit verify`"}}
        self._insert([raw], [self._prepare(raw)])

    # -- the chain ----------------------------------------------------------------------------

    def _meta_or_empty(self) -> dict[str, str]:
        return self._meta() if "meta" in self._names() else {}

    def _new_meta_rows(self) -> list[tuple[str, str]]:
        return [("trail_id", str(uuid.uuid4())), ("fp_salt", secrets.token_hex(32))]

    def _fingerprint_key(self, meta: Mapping[str, str]) -> bytes | None:
        if self._key is not None:
            return fingerprint_key_from_audit_key(self._key)
        salt = meta.get("fp_salt")
        try:
            return bytes.fromhex(salt) if salt else None
        except ValueError:
            return None

    def _key_check(self) -> str:
        assert self._key is not None
        return hmac.new(self._key, _KEY_CHECK_MSG, hashlib.sha256).hexdigest()[:16]

    def _digest(self, event: Mapping[str, Any], schema: str = SCHEMA_VERSION) -> str:
        return self._mac(_chain_bytes({k: event.get(k) for k in FIELDS if k != "hash"}, schema))

    def _mac(self, body: bytes) -> str:
        """SHA-256 of ``body``, or its HMAC with the trail's key."""
        if self._key is not None:
            return hmac.new(self._key, body, hashlib.sha256).hexdigest()
        return hashlib.sha256(body).hexdigest()

    def _check_key_for_write(self, meta: dict[str, str]) -> None:
        keyed = meta.get("keyed")
        if keyed is None:
            rows = [("schema_version", SCHEMA_VERSION), ("keyed", "1" if self._key else "0")]
            if self._key is not None:
                rows.append(("key_check", self._key_check()))
            self._insert_meta(rows)
        elif keyed == "1" and self._key is None:
            raise AuditError(
                "this audit trail is keyed (HMAC) and no key is configured",
                where=self.location, hint=f"set {KEY_ENV} to the trail's key",
            )
        elif keyed == "1" and meta.get("key_check") != self._key_check():
            raise AuditError(
                "the configured audit key is not the key this trail was written with",
                where=self.location, hint=f"check {KEY_ENV}",
            )
        elif keyed == "0" and self._key is not None:
            raise AuditError(
                "this audit trail is not keyed but an audit key is configured",
                where=self.location,
                hint=f"unset {KEY_ENV} for this trail, or start a new trail file for keyed use",
            )

    def _prepare(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(raw) - set(FIELDS)
        if unknown:
            raise UsageError(f"unknown audit event fields: {', '.join(sorted(unknown))}")
        for name in ("prev_hash", "hash"):
            if raw.get(name) is not None:
                raise UsageError(f"audit event field {name!r} is assigned by the audit log")
        fp_key = self._fp_key
        event: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            value = raw.get(name)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            event[name] = None if value is None else scrub(str(value), key=fp_key)
        event["ts"] = event["ts"] or utc_now()
        event["host"] = event["host"] or scrub(self._host, key=fp_key)
        detail = raw.get("detail")
        if detail is None:
            detail = {}
        if not isinstance(detail, Mapping):
            raise UsageError("audit event detail must be a dict")
        # Round-trip through canonical JSON so what is hashed is exactly what is stored; the
        # text is kept: it is what is stored and, as stored, what the hash covers.
        text = canonical_json(scrub(dict(detail), key=fp_key))
        event["detail"] = json.loads(text)
        event[_DETAIL_TEXT] = text
        return event

    def _prepare_row(self, raw: Mapping[str, Any],
                     memo: dict[str, str] | None = None) -> tuple[Any, ...]:
        """:meth:`_prepare` as a compact row in :data:`FIELDS` order, for
        :meth:`append_batch`: ``detail`` is the canonical text (what is stored; it is not
        parsed back), ``seq`` the one asked for (None: any), ``prev_hash`` and ``hash`` None.
        Same checks, same scrubbing, same stored values; ``memo`` (one batch's, so one
        fingerprint key) shares the scrubbed text of fields that repeat from event to event.
        """
        for name in raw:
            if name not in _FIELD_SET:
                unknown = set(raw) - _FIELD_SET
                raise UsageError(f"unknown audit event fields: {', '.join(sorted(unknown))}")
        if raw.get("prev_hash") is not None or raw.get("hash") is not None:
            name = "prev_hash" if raw.get("prev_hash") is not None else "hash"
            raise UsageError(f"audit event field {name!r} is assigned by the audit log")
        fp_key = self._fp_key
        values: list[Any] = [raw.get("seq")]
        same = memo if memo is not None else {}
        for name in _TEXT_FIELDS:
            value = raw.get(name)
            if value is None:
                values.append(None)
                continue
            if isinstance(value, datetime):
                value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if name in _REPEATED:  # one scrubbed string for a value every event repeats
                text = str(value)
                done = same.get(text)
                if done is None:
                    done = same[text] = scrub(text, key=fp_key)
                values.append(done)
            else:
                values.append(scrub(str(value), key=fp_key))
        if not values[1]:  # ts
            values[1] = utc_now()
        if not values[5]:  # host
            values[5] = scrub(self._host, key=fp_key)
        detail = raw.get("detail")
        if detail is None:
            detail = {}
        if not isinstance(detail, Mapping):
            raise UsageError("audit event detail must be a dict")
        values += (_detail_text(scrub(dict(detail), key=fp_key)), None, None)
        return tuple(values)

    # -- writing ----------------------------------------------------------------------------

    def _insert(self, events: list[dict[str, Any]],
                prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain and insert ``prepared`` inside the caller's write transaction."""
        meta, last = self._meta_and_last()
        self._check_key_for_write(meta)
        schema = meta.get("schema_version", SCHEMA_VERSION)
        seq, prev = (last[0], last[1]) if last else (0, GENESIS_HASH)
        stored: list[dict[str, Any]] = []
        rows: list[tuple[Any, ...]] = []
        for raw, event in zip(events, prepared, strict=True):
            seq += 1
            wanted = raw.get("seq")
            if wanted is not None and wanted != seq:
                raise UsageError(f"audit event seq {wanted} given, next is {seq}")
            text = event.pop(_DETAIL_TEXT, None) or canonical_json(event["detail"])
            event.update(seq=seq, prev_hash=prev, hash=None)
            row = tuple(text if k == "detail" else event[k] for k in FIELDS)
            event["hash"] = prev = (self._mac(_stored_body(row)) if schema == SCHEMA_VERSION
                                    else self._digest(event, schema))
            stored.append({k: event[k] for k in FIELDS})
            rows.append(row[:_HASH] + (prev,) + row[_HASH + 1:])
        self._insert_events(rows)
        return stored

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
        if self.readonly:
            raise AuditError("this audit trail was opened read-only", where=self.location)
        if not events:
            return []
        with self._lock, self._errors("append to the audit trail"):
            if self._damage or self._fp_key is None:
                self._repair()
        prepared = [self._prepare(e) for e in events]
        with self._lock, self._errors("append to the audit trail"), self._write():
            stored = self._insert(events, prepared)
        return stored

    def append_batch(self, events: Iterable[Mapping[str, Any]]) -> tuple[int, str] | None:
        """Like :meth:`append_many` (one transaction: all stored, or none; the same stored
        rows and hashes), for large batches whose stored events the caller does not need:
        ``events`` may be any iterable (a generator: the events are never all held), each is
        kept only as its compact stored row, and nothing is parsed back or returned but the
        new head.

        Returns:
            ``(seq, hash)`` of the last event appended, or None when ``events`` is empty.

        Raises:
            UsageError: An event has unknown fields, a non-dict detail or a set hash.
            AuditError: The events could not be written (nothing was written).
        """
        if self.readonly:
            raise AuditError("this audit trail was opened read-only", where=self.location)
        prepared: list[tuple[Any, ...]] = []
        memo: dict[str, str] = {}
        repaired = False
        for raw in events:
            if not repaired:  # the first event: the fingerprint key must be known first
                with self._lock, self._errors("append to the audit trail"):
                    if self._damage or self._fp_key is None:
                        self._repair()
                repaired = True
            prepared.append(self._prepare_row(raw, memo))
        if not prepared:
            return None
        with self._lock, self._errors("append to the audit trail"), self._write():
            head = self._insert_rows(prepared)
        return head

    def _insert_rows(self, prepared: list[tuple[Any, ...]]) -> tuple[int, str]:
        """Chain and insert rows from :meth:`_prepare_row` inside the caller's write
        transaction (rows are hashed as the database takes them); the new head."""
        meta, last = self._meta_and_last()
        self._check_key_for_write(meta)
        schema = meta.get("schema_version", SCHEMA_VERSION)
        head: list[Any] = [last[0], last[1]] if last else [0, GENESIS_HASH]
        mac = self._mac

        def chained() -> Iterator[tuple[Any, ...]]:
            seq, prev = head
            for row in prepared:
                seq += 1
                wanted = row[_SEQ]
                if wanted is not None and wanted != seq:
                    raise UsageError(f"audit event seq {wanted} given, next is {seq}")
                row = (seq, *row[1:_PREV], prev, None)
                if schema == SCHEMA_VERSION:
                    prev = mac(_stored_body(row))
                else:
                    event = dict(zip(FIELDS, row, strict=True))
                    event["detail"] = json.loads(row[_DETAIL])
                    prev = self._digest(event, schema)
                head[0], head[1] = seq, prev
                yield (*row[:_HASH], prev)

        self._insert_events(chained())
        return head[0], head[1]

    def append(self, **fields: Any) -> dict[str, Any]:
        """Append one event; see :meth:`append_many`.

        Returns:
            The stored event.
        """
        return self.append_many([fields])[0]

    # -- facts about the trail -----------------------------------------------------------

    def head(self) -> ChainHead:
        """The newest event's ``seq`` and ``hash`` and the number of events (one snapshot).

        Raises:
            AuditError: The trail cannot be read.
        """
        with self._lock, self._errors("read the audit trail"):
            row = self._sql(
                "SELECT (SELECT count(*) FROM events), seq, hash FROM events "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return ChainHead(0, GENESIS_HASH, 0)
        return ChainHead(int(row[1]), str(row[2]), int(row[0]))

    @property
    def keyed(self) -> bool:
        """Whether the trail is keyed (its ``meta``; before its first event: whether a key is
        configured)."""
        with self._lock, self._errors("read the audit trail"):
            keyed = self._meta_or_empty().get("keyed")
        return keyed == "1" if keyed is not None else self._key is not None

    @property
    def trail_id(self) -> str:
        """The random id the trail was created with ("" for a trail that has none)."""
        with self._lock, self._errors("read the audit trail"):
            return self._meta_or_empty().get("trail_id", "")

    def checkpoint_mac(self, body: bytes) -> str | None:
        """HMAC-SHA-256 of a checkpoint's canonical body with a key derived from the audit
        key, or None when no key is configured."""
        return None if self._key is None else checkpoint_mac(self._key, body)

    def fingerprint(self, value: str) -> str:
        """The fingerprint this trail stores for the secret ``value`` (``hmac:...``).

        Lets an investigator who holds a suspected key (and, for a keyed trail, the audit
        key) find it in the trail without the trail ever holding it.

        Raises:
            AuditError: The trail has no fingerprint key yet (no salt and no audit key).
        """
        if self._fp_key is None:
            raise AuditError("this audit trail has no fingerprint key yet",
                             where=self.location)
        return fingerprint_secret(value, self._fp_key)

    # -- reading ----------------------------------------------------------------------------

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        with self._lock, self._errors("read the audit trail"):
            rows = self._query(sql, params)
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
            summary = self._query(
                "SELECT run_id, min(ts) AS first_ts, max(ts) AS last_ts, "
                "coalesce(max(CASE WHEN mode != 'plan' THEN mode END), max(mode)) AS mode, "
                "max(incident) AS incident, max(operator) AS operator, "
                "count(*) AS count, min(seq) AS first_seq FROM events "
                "WHERE run_id IS NOT NULL GROUP BY run_id ORDER BY first_seq"
            )
            outcome_rows = self._query(
                "SELECT run_id, outcome, count(*) AS n FROM events "
                "WHERE run_id IS NOT NULL AND outcome IS NOT NULL GROUP BY run_id, outcome"
            )
        outcomes: dict[str, dict[str, int]] = {}
        for r in outcome_rows:
            outcomes.setdefault(r["run_id"], {})[r["outcome"]] = r["n"]
        for run in summary:
            run.pop("first_seq")
            run["outcomes"] = dict(sorted(outcomes.get(run["run_id"], {}).items()))
        return summary

    def run_modes(self) -> dict[str, str]:
        """Every mode each run's events were written in: run id -> the modes, sorted and
        comma-separated (``"live,plan"``; "" when its events name none).

        Raises:
            AuditError: The trail cannot be read.
        """
        modes: dict[str, set[str]] = {}
        with self._lock, self._errors("read the audit trail"):
            for run_id, mode in self._sql("SELECT DISTINCT run_id, mode FROM events "
                                          "WHERE run_id IS NOT NULL"):
                seen = modes.setdefault(run_id, set())
                if mode:
                    seen.add(mode)
        return {run_id: ",".join(sorted(seen)) for run_id, seen in modes.items()}

    def events_after(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """At most ``limit`` events with a ``seq`` above ``seq``, oldest first (what a live
        view reads after being told the head moved).

        Raises:
            AuditError: The trail cannot be read.
        """
        return list(self._rows(f"SELECT {', '.join(FIELDS)} FROM events WHERE seq > ? "
                               "ORDER BY seq LIMIT ?", (int(seq), max(0, int(limit)))))

    def verify(
        self, *, require_key: bool = False, witnessed: Sequence[WitnessedHead] = ()
    ) -> ChainReport:
        """Check the whole trail: structure, keying, every hash and link, and the witnesses.

        Recomputes every hash and ``prev_hash`` link and checks ``seq`` continuity; checks
        that the tables and the append-only triggers are all there (and reports, never
        restores, what is missing); compares the trail with every head a witness saw: a
        trail shorter than a witnessed head, or whose hash at a witnessed seq differs, does
        not verify. Nothing is written.

        Args:
            require_key: The trail must be keyed (``settings.audit_keyed``, or a witness saw
                it keyed): an unkeyed trail, or no key to check it with, does not verify.
            witnessed: Heads seen by witnesses (:class:`console.witness.Checkpoint`).

        Returns:
            A :class:`ChainReport`; ``first_bad_seq`` names the first event that does not
            verify (a missing event counts as bad at its own sequence number) and
            ``last_good_seq`` the last one that can be trusted.

        Raises:
            AuditError: The trail cannot be read.
        """
        with self._lock, self._errors("verify the audit trail"), self._snapshot():
            return self._verify(require_key, sorted(witnessed, key=lambda w: w.seq))

    def _verify(self, require_key: bool, witnessed: list[WitnessedHead]) -> ChainReport:
        witnessed = [w for w in witnessed if w.seq > 0]  # an empty trail's head says nothing
        n_witnessed = len(witnessed)

        def fail(count: int, first_bad: int | None, reason: str,
                 last_good: int | None) -> ChainReport:
            return ChainReport(False, count, first_bad, "; ".join([reason, *structure]),
                               last_good, n_witnessed)

        names = self._names()
        structure = self._structure_problems(names)
        meta = self._meta() if "meta" in names else {}
        count = (self._sql("SELECT count(*) FROM events").fetchone()[0]
                 if "events" in names else 0)
        keyed = meta.get("keyed")
        if keyed == "1" and self._key is None:
            return fail(count, None, "this audit trail is keyed (HMAC) and no key is "
                        f"configured: it cannot be verified (set {KEY_ENV})", None)
        if require_key and self._key is None:
            return fail(count, None, "this audit trail must be keyed (settings.audit_keyed, "
                        "or a witness saw it keyed) and no key is configured: it cannot be "
                        f"verified (set {KEY_ENV})", None)
        if keyed == "1" and meta.get("key_check") != self._key_check():
            return fail(count, 1 if count else None,
                        "the configured key is not this trail's key", None)
        if keyed != "1" and self._key is not None and count:
            return fail(count, 1, "a key is configured but the trail is not keyed: it may "
                        "have been rewritten without the key", 0)
        if count and keyed is None and "meta" in names:
            structure.append("the trail's metadata lost its 'keyed' row")
        schema = meta.get("schema_version", SCHEMA_VERSION)
        if schema not in ("1", SCHEMA_VERSION):
            return fail(count, 1 if count else None, f"unknown trail schema version {schema!r}",
                        None)

        expected, prev, checked = 1, GENESIS_HASH, 0
        pending = list(witnessed)  # heads not yet reached, by seq
        last_matched = 0  # highest witnessed seq found as witnessed
        rows: Iterator[tuple[Any, ...]] = (
            self._event_rows() if "events" in names else iter(()))
        current = schema == SCHEMA_VERSION
        mac, same = self._mac, hmac.compare_digest
        for values in rows:
            seq = values[_SEQ]
            if seq != expected:
                return fail(checked, expected, f"event {expected} is missing (found {seq} "
                            "next)", expected - 1)
            if values[_PREV] != prev:
                return fail(checked, seq, "prev_hash does not link to the previous event",
                            seq - 1)
            stored = values[_HASH]
            if current and type(values[_DETAIL]) is str:
                # the fast path: the stored bytes, not re-serialised
                if type(stored) is str and same(mac(_stored_body(values)), stored):
                    if pending and pending[0].seq <= seq:
                        last_matched = self._witnessed(pending, seq, stored, last_matched)
                        if last_matched < 0:
                            head = pending[0]
                            return fail(checked, seq, f"event {seq} is not the one witnessed "
                                        f"at {head.time} (hash {str(head.hash)[:16]} "
                                        f"witnessed, {stored[:16]} found): the trail was "
                                        "rewritten", -last_matched - 1)
                    prev, expected, checked = stored, expected + 1, checked + 1
                    continue
            row: dict[str, Any] = {"seq": seq, "prev_hash": values[_PREV], "hash": stored,
                                   "detail": values[_DETAIL]}
            if current and isinstance(row["detail"], str):
                digest = mac(_stored_body(values))
            else:
                row = dict(zip(FIELDS, values, strict=True))
                try:
                    row["detail"] = json.loads(row["detail"])
                except (TypeError, ValueError):
                    return fail(checked, seq, "detail is not valid JSON", seq - 1)
                digest = self._digest(row, schema)
            if not hmac.compare_digest(digest, str(row["hash"])):
                try:
                    json.loads(row["detail"]) if isinstance(row["detail"], str) else None
                except ValueError:
                    return fail(checked, seq, "detail is not valid JSON", seq - 1)
                return fail(checked, seq, "hash does not match the event's content (edited)",
                            seq - 1)
            if pending and pending[0].seq <= seq:
                last_matched = self._witnessed(pending, seq, str(row["hash"]), last_matched)
                if last_matched < 0:
                    head = pending[0]
                    return fail(checked, seq, f"event {seq} is not the one witnessed at "
                                f"{head.time} (hash {str(head.hash)[:16]} witnessed, "
                                f"{str(row['hash'])[:16]} found): the trail was rewritten",
                                -last_matched - 1)
            prev, expected, checked = row["hash"], expected + 1, checked + 1
        last = expected - 1
        high = self._high_seq(names)
        if high is not None and high >= expected:
            return fail(checked, expected, f"events {expected}..{high} were deleted from "
                        "the end", last)
        if pending:
            newest = pending[-1]
            what = "is empty" if last == 0 else f"ends at seq {last}"
            return fail(checked, last + 1, f"the trail {what} but a witness saw seq "
                        f"{newest.seq} at {newest.time}: events {last + 1}..{newest.seq} "
                        "were deleted", last)
        if structure:
            return ChainReport(False, checked, None, "; ".join(structure), last, n_witnessed)
        return ChainReport(True, checked, None, "", last, n_witnessed)

    @staticmethod
    def _witnessed(pending: list[WitnessedHead], seq: int, found: str,
                   last_matched: int) -> int:
        """Check the witnessed heads at ``seq`` (popping them): the new highest matched seq,
        or ``-(last matched) - 1`` when a head at ``seq`` saw another hash (left first)."""
        while pending and pending[0].seq <= seq:
            head = pending[0]
            if head.seq == seq and not hmac.compare_digest(str(head.hash).encode(),
                                                           found.encode()):
                return -last_matched - 1
            pending.pop(0)
            if head.seq == seq:
                last_matched = seq
        return last_matched

    def verify_or_raise(self, **kw: Any) -> ChainReport:
        """Like :meth:`verify` (same keywords), but raise when the trail does not verify.

        Raises:
            AuditTampered: With ``seq`` set to the first bad sequence number (0 when the
                failure is not at one event).
        """
        report = self.verify(**kw)
        if not report.ok:
            seq = report.first_bad_seq or 0
            raise AuditTampered(
                f"audit trail does not verify at seq {seq}: {report.reason}",
                seq=seq, where=self.location,
                hint=self._KEEP_HINT,
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode, waiting up to ``timeout`` s for other openers.

    Switching a file to WAL needs an exclusive lock, and SQLite answers "database is locked"
    at once, without its busy handler, when the switch could deadlock with another
    connection that is writing (two processes opening a brand-new trail at the same moment:
    a commander's CLI and their console, two commanders on one machine). Once the file is
    in WAL mode the statement changes nothing and never waits.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.03))


class AuditLog(TrailBase):
    """The hash-chained audit trail in one SQLite file; safe to share between threads.

    Args:
        path: The database file; missing parent folders are created ``0700`` and a new
            file ``0600``.
        key: HMAC key. Defaults to ``$KILLSWITCH_AUDIT_KEY`` (UTF-8); None or empty means an
            unkeyed SHA-256 chain. A trail's first event fixes whether it is keyed.
        busy_timeout: Seconds to wait for another writer before failing. Appends wait for
            the write lock in short, jittered polls (:meth:`_begin_write`), so that many
            processes sharing one trail take turns instead of the newest waiter winning.
        readonly: Open the file read-only (SQLite ``mode=ro``): nothing is created, migrated
            or repaired, and writing raises. What verifying uses.

    Raises:
        AuditError: The file cannot be opened (or, read-only, does not exist) or its schema
            cannot be created.
    """

    def __init__(
        self, path: str | Path, key: bytes | None = None, *, busy_timeout: float = 30.0,
        readonly: bool = False,
    ) -> None:
        self._setup(key, readonly)
        self.path = Path(path).expanduser()
        self._busy_timeout = busy_timeout
        with self._errors("open the audit trail"):
            if readonly:
                if not self.path.is_file():
                    raise AuditError(f"no audit trail at {self.path}", where=str(self.path),
                                     hint="check settings.audit_db")
                target, uri = self.path.resolve().as_uri() + "?mode=ro", True
            else:
                self._create_private_file()
                target, uri = str(self.path), False
            conn = sqlite3.connect(
                target,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=uri,
            )
            self._conn = conn
            try:
                self.db = sqlite_utils.Database(conn)
                if not readonly:
                    _wal(conn, busy_timeout)
                conn.execute("PRAGMA synchronous=FULL")
                if not readonly:
                    self._prepare_trail()
                self._fp_key = self._fingerprint_key(self._meta_or_empty())
            except BaseException:
                conn.close()
                raise
        if not readonly and self._fp_key is not None:
            use_fingerprint_key(self._fp_key)

    # -- plumbing ---------------------------------------------------------------------------

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def _insert_meta(self, rows: list[tuple[str, str]]) -> None:
        self._conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", rows)

    def _insert_events(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._conn.executemany(
            f"INSERT INTO events ({', '.join(FIELDS)}) "
            f"VALUES ({', '.join('?' for _ in FIELDS)})", rows)

    @contextmanager
    def _write(self) -> Iterator[None]:
        conn = self._conn
        self._begin_write()
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _high_seq(self, names: set[str]) -> int | None:
        if "sqlite_sequence" not in names:
            return None
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'"
                                 ).fetchone()
        return None if row is None else int(row[0])

    def _errors(self, doing: str) -> _ErrorContext:
        return _ErrorContext(self, doing)

    def _create_private_file(self) -> None:
        """Create the database file ``0600`` (folders ``0700``) before SQLite does (``0644``)."""
        if self.path.exists():
            return
        make_private_dirs(self.path.parent)
        os.close(open_private(self.path, os.O_RDWR))

    def _tighten(self) -> None:
        """A new trail: the file (maybe created by the lock table) and its WAL become 0600."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = Path(f"{self.path}{suffix}")
            try:
                if p.is_file() and p.stat().st_mode & 0o777 != PRIVATE_FILE:
                    os.chmod(p, PRIVATE_FILE)
            except OSError:  # not ours (another user's file): leave it
                continue

    def _names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}

    def _prepare_trail(self) -> None:
        """Create a new trail; note (never silently repair) a damaged one; migrate old ones."""
        conn = self._conn
        names = self._names()
        if not {"events", "meta"} & names:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not {"events", "meta"} & self._names():  # nobody created it meanwhile
                    for sql in (*_TABLES.values(), *_INDEXES, *_TRIGGERS.values()):
                        conn.execute(sql)
                    self._insert_meta(self._new_meta_rows())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._tighten()
            names = self._names()
        self._damage = [name for name in _OBJECTS if name not in names]
        if not self._damage and not {"trail_id", "fp_salt"} <= set(self._meta()):
            # A trail written before trail ids and salts: add them (INSERT only).
            self._insert_meta(self._new_meta_rows())

    def _repair(self) -> None:
        """Restore what an attacker (or an accident) removed, on the record, in one go.

        Runs before the first write to a damaged trail: recreates the missing tables and
        triggers and appends a ``trail.damaged`` event naming them, in one transaction.
        Verifying never gets here.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            names = self._names()
            missing = [name for name in _OBJECTS if name not in names]
            for name in missing:
                if name in _TABLES:
                    conn.execute(_TABLES[name])
            for sql in (*_INDEXES, *(_TRIGGERS[n] for n in missing if n in _TRIGGERS)):
                conn.execute(sql)
            self._insert_meta(self._new_meta_rows())
            self._fp_key = self._fingerprint_key(self._meta())
            if missing:
                self._damage_event(missing)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._damage = []
        if self._fp_key is not None:
            use_fingerprint_key(self._fp_key)

    def _begin_write(self) -> None:
        """``BEGIN IMMEDIATE``: take the trail's write lock, waiting up to ``busy_timeout``.

        SQLite's own busy handler sleeps longer the longer a connection has waited (1 ms up to
        100 ms a try), so among many writers (several console processes on one trail) the
        newest waiter tends to win and an old one can starve past the timeout ("database is
        locked"). Here every waiter polls at the same short, jittered pace (at most
        :data:`_BUSY_POLL` apart), which keeps the lock busy and the waits even.

        Raises:
            sqlite3.OperationalError: The lock was not free within ``busy_timeout`` (or
                another error).
        """
        conn = self._conn
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.0005
        conn.execute("PRAGMA busy_timeout = 0")  # fail fast; this loop does the waiting
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, _BUSY_POLL)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def close(self) -> None:
        """Close the connection; further use raises AuditError."""
        with self._lock:
            self._conn.close()


_BUSY_POLL = 0.02
"""Longest pause (seconds, before jitter) between two tries for the write lock."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says another connection holds the lock (SQLITE_BUSY / LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


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
