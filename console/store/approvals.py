"""The two-person rule's approvals, bound to the plan: one API, two stores.

An :class:`Approval` holds the exact saved plan (its JSON text, as :mod:`console.engine.planfile`
writes it) and that plan's hash. A second operator approves *that* plan; the run that uses the
approval re-derives it against live state and refuses on any drift (see
:mod:`console.approvals_cli`).

Kinds and states::

    approval   pending --approve--> approved --mark_used--> used
                  \\                    \\
                   `--void--> void      `--void (drift)--> void
    cosign     pending --approve (co-sign)--> approved          (a break-glass run's debt)

- :class:`SqliteApprovals` keeps the ``approvals`` table in the audit database file;
  :class:`PgApprovals` in the current schema of the shared PostgreSQL store. Both change a
  state with one conditional ``UPDATE ... WHERE status = <expected>``: of two approvers racing,
  exactly one changes a row, and the other is refused.
- Nobody approves their own request: :meth:`Identity.same_person
  <console.identity.Identity.same_person>` (the same operator name, or the same OS user on the
  same host, whatever name either claims) is refused with exit 3.
- Every state change (and every refused approval) is written to the audit trail: ``phase``
  ``approval``, ``action`` one of :data:`EVENTS`, ``target`` the approval id, ``outcome``
  ``requested`` / ``approved`` / ``rejected`` / ``void`` / ``used`` / ``break-glass`` /
  ``cosigned``, the identities and the plan hash in ``detail``; never the plan's values,
  never a secret. The events of a run (``used``, ``break-glass``, ``cosigned``) carry its
  ``run_id``; the others none (they belong to the incident, not to a run). If the event
  cannot be written the state change is undone and :class:`~console.errors.AuditError` raised.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from console.errors import AuditError, ConsoleError, Refused, UsageError
from console.identity import Identity

__all__ = ["EVENTS", "Approval", "ApprovalKind", "ApprovalStatus", "Approvals", "AuditSink",
           "PgApprovals", "SqliteApprovals", "self_approval_reason"]

ApprovalKind = Literal["approval", "cosign"]
ApprovalStatus = Literal["pending", "approved", "void", "used"]

EVENTS = ("approval.requested", "approval.approved", "approval.refused", "approval.void",
          "approval.used", "approval.break_glass", "approval.cosigned")
"""The audit ``action`` of each approval event."""

PHASE = "approval"
"""The audit ``phase`` of every approval event."""


class AuditSink(Protocol):
    """What the store needs of the audit trail (an AuditLog or its PostgreSQL twin)."""

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write events in one transaction."""
        ...


@dataclass(frozen=True)
class Approval:
    """One request of the two-person rule (or a break-glass run's co-signature)."""

    id: str
    kind: ApprovalKind
    status: ApprovalStatus
    plan_hash: str
    plan: str
    """The saved-plan JSON text the approval is bound to."""
    runbook: str
    integrations: tuple[str, ...]
    incident: str
    cause: str
    requester: Identity
    requested_at: str
    approver: Identity | None = None
    approved_at: str = ""
    reason: str = ""
    """The approver's (co-signer's) reason."""
    void_reason: str = ""
    run_id: str = ""
    """The run that used the approval (a cosign: the break-glass run)."""
    request_reason: str = ""
    """Why the requester asked (a break-glass run: its ``--reason``)."""
    plan_run_id: str = ""
    """The run id written in the plan (the run the approved plan becomes)."""

    @property
    def what(self) -> str:
        """``runbook on a, b`` in a few words."""
        return f"{self.runbook} on {', '.join(self.integrations) or '-'}"

    def to_json(self) -> dict[str, Any]:
        """The approval as JSON for ``--json`` (without the plan text: see ``plan_hash``)."""
        def who(i: Identity | None) -> dict[str, str] | None:
            return None if i is None else {"operator": i.operator, "host": i.host,
                                           "os_user": i.os_user}
        return {"approval_id": self.id, "kind": self.kind, "status": self.status,
                "plan_hash": self.plan_hash, "plan_run_id": self.plan_run_id,
                "runbook": self.runbook, "integrations": list(self.integrations),
                "incident": self.incident, "cause": self.cause,
                "requester": who(self.requester), "requested_at": self.requested_at,
                "request_reason": self.request_reason, "approver": who(self.approver),
                "approved_at": self.approved_at, "reason": self.reason,
                "void_reason": self.void_reason, "run_id": self.run_id}


def self_approval_reason(requester: Identity, approver: Identity) -> str:
    """Why ``approver`` may not approve ``requester``'s request, or ``""`` if they may."""
    if requester.operator == approver.operator:
        return (f"the requester and the approver are the same operator "
                f"({approver.operator!r})")
    if requester.same_person(approver):
        return (f"the approver runs as the same OS user ({approver.os_user}) on the same "
                f"host ({approver.host}) as the requester ({requester.operator!r}), "
                f"whatever operator name is claimed")
    return ""


_COLUMNS = ("id", "kind", "status", "plan_hash", "plan", "runbook", "integrations", "incident",
            "cause", "requester_operator", "requester_host", "requester_os_user",
            "requested_at", "request_reason", "plan_run_id", "approver_operator",
            "approver_host", "approver_os_user", "approved_at", "reason", "void_reason",
            "run_id")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM approvals"
_SCHEMA = """CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    plan TEXT NOT NULL,
    runbook TEXT NOT NULL,
    integrations TEXT NOT NULL,
    incident TEXT NOT NULL,
    cause TEXT NOT NULL,
    requester_operator TEXT NOT NULL,
    requester_host TEXT NOT NULL,
    requester_os_user TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    request_reason TEXT NOT NULL DEFAULT '',
    plan_run_id TEXT NOT NULL DEFAULT '',
    approver_operator TEXT,
    approver_host TEXT,
    approver_os_user TEXT,
    approved_at TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    void_reason TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT ''
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status)"


def _row(row: Sequence[Any]) -> Approval:
    r = dict(zip(_COLUMNS, row, strict=True))
    approver = (Identity(r["approver_operator"], r["approver_host"] or "",
                         r["approver_os_user"] or "")
                if r["approver_operator"] is not None else None)
    try:
        integrations = tuple(str(i) for i in json.loads(r["integrations"] or "[]"))
    except (ValueError, TypeError):
        integrations = ()
    return Approval(
        id=r["id"], kind=r["kind"], status=r["status"], plan_hash=r["plan_hash"],
        plan=r["plan"], runbook=r["runbook"], integrations=integrations,
        incident=r["incident"], cause=r["cause"],
        requester=Identity(r["requester_operator"], r["requester_host"],
                           r["requester_os_user"]),
        requested_at=r["requested_at"], approver=approver, approved_at=r["approved_at"] or "",
        reason=r["reason"] or "", void_reason=r["void_reason"] or "", run_id=r["run_id"] or "",
        request_reason=r["request_reason"] or "", plan_run_id=r["plan_run_id"] or "")


def _clean(text: str) -> str:
    """A person's free text (a reason) with anything that looks like a secret scrubbed."""
    from console.scrub import scrub_text
    return str(scrub_text(text or ""))


def _now() -> str:
    from console.audit import utc_now
    return utc_now()


class Approvals:
    """The approvals API; :class:`SqliteApprovals` and :class:`PgApprovals` supply the SQL.

    Args:
        audit: Where the approval events go (a Session's ``audit``); None opens the trail
            of the same store on first use (the key from ``$KILLSWITCH_AUDIT_KEY``).
    """

    where = ""

    def __init__(self, audit: AuditSink | None = None) -> None:
        self._audit = audit
        self._owns_audit = False

    # -- the SQL each store supplies -------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (its own transaction); the number of rows it changed."""
        raise NotImplementedError

    def _open_audit(self) -> AuditSink:
        raise NotImplementedError

    def close(self) -> None:
        """Close the store's connection (and a trail this object opened)."""
        if self._owns_audit and self._audit is not None:
            close = getattr(self._audit, "close", None)
            if close is not None:
                close()
            self._audit, self._owns_audit = None, False

    def __enter__(self) -> Approvals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the trail ---------------------------------------------------------------------------
    def use_audit(self, audit: AuditSink) -> Approvals:
        """Write the approval events to ``audit`` (e.g. a Session's trail); returns self."""
        Approvals.close(self)  # a trail this object opened (the connection stays)
        self._audit, self._owns_audit = audit, False
        return self

    @property
    def audit(self) -> AuditSink:
        """The audit trail approval events are written to."""
        if self._audit is None:
            self._audit = self._open_audit()
            self._owns_audit = True
        return self._audit

    def _record(self, action: str, a: Approval, who: Identity, outcome: str,
                **detail: Any) -> None:
        event = {
            "run_id": detail.pop("run_id", None), "incident": a.incident or None,
            "operator": who.operator, "host": who.host, "mode": "live", "phase": PHASE,
            "action": action, "target": a.id,
            "integration": a.integrations[0] if len(a.integrations) == 1 else None,
            "outcome": outcome,
            "detail": {"approval_id": a.id, "kind": a.kind, "plan_hash": a.plan_hash,
                       "plan_run_id": a.plan_run_id, "runbook": a.runbook,
                       "integrations": list(a.integrations), "cause": a.cause,
                       "requester": a.requester.describe(), "os_user": who.os_user,
                       **{k: v for k, v in detail.items() if v not in (None, "")}},
        }
        self.audit.append_many([event])

    # -- reading -----------------------------------------------------------------------------
    def find(self, approval_id: str) -> Approval | None:
        """The approval with this id, or None."""
        rows = self._query(f"{_SELECT} WHERE id = ?", (approval_id,))
        return _row(rows[0]) if rows else None

    def get(self, approval_id: str) -> Approval:
        """The approval with this id.

        Raises:
            UsageError: No approval has this id (exit 2).
        """
        found = self.find(approval_id)
        if found is None:
            raise UsageError(f"no approval {approval_id!r}", where=self.where,
                             hint="`killswitch approvals --all` lists every approval")
        return found

    def pending(self) -> list[Approval]:
        """Pending approvals and co-signatures, oldest first."""
        return self.list()

    def list(self, all: bool = False) -> list[Approval]:  # "all": the CLI's --all
        """Pending approvals (``all``: every one, whatever its state), oldest first."""
        where = "" if all else " WHERE status = 'pending'"
        return [_row(r) for r in self._query(f"{_SELECT}{where} ORDER BY requested_at, id")]

    # -- changing ----------------------------------------------------------------------------
    def request(self, *, plan: str, plan_hash: str, runbook: str, integrations: Sequence[str],
                requester: Identity, incident: str = "", cause: str = "",
                kind: ApprovalKind = "approval", reason: str = "", plan_run_id: str = "",
                run_id: str = "") -> Approval:
        """Record a pending approval bound to ``plan`` (and ``approval.requested``).

        A ``cosign`` is a break-glass run's debt: ``run_id`` is that run, ``reason`` its
        ``--reason``; it is recorded as ``approval.break_glass``.

        Raises:
            AuditError: The store or the trail cannot be written (nothing is left pending).
        """
        reason = _clean(reason)
        a = Approval(id=f"apr-{secrets.token_hex(5)}", kind=kind, status="pending",
                     plan_hash=plan_hash, plan=plan, runbook=runbook,
                     integrations=tuple(integrations), incident=incident, cause=cause,
                     requester=requester, requested_at=_now(), request_reason=reason,
                     plan_run_id=plan_run_id, run_id=run_id)
        self._execute(
            f"INSERT INTO approvals ({', '.join(_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(_COLUMNS))})",
            (a.id, a.kind, a.status, a.plan_hash, a.plan, a.runbook,
             json.dumps(list(a.integrations)), a.incident, a.cause, requester.operator,
             requester.host, requester.os_user, a.requested_at, a.request_reason,
             a.plan_run_id, None, None, None, "", "", "", a.run_id))
        try:
            if kind == "cosign":
                self._record("approval.break_glass", a, requester, "break-glass",
                             run_id=run_id or None, reason=reason,
                             note="applied by one commander alone; needs a co-signature")
            else:
                self._record("approval.requested", a, requester, "requested", reason=reason)
        except ConsoleError:
            self._execute("DELETE FROM approvals WHERE id = ? AND status = 'pending'", (a.id,))
            raise
        return a

    def _refuse(self, a: Approval, who: Identity, why: str, hint: str = "",
                record: bool = True) -> Refused:
        if record:
            try:
                self._record("approval.refused", a, who, "rejected", refused=why)
            except ConsoleError:
                pass  # the refusal stands whether or not it could be recorded
        return Refused(f"approval {a.id} refused: {why}", hint=hint)

    def approve(self, approval_id: str, approver: Identity, reason: str) -> Approval:
        """Approve (or, for a ``cosign``, co-sign) a pending request.

        Raises:
            UsageError: No such approval, or no reason given.
            Refused: The approver may be the requester (:func:`self_approval_reason`), or
                the request is not pending (approved, used or void; or another approver
                won the race): exit 3. The refusal is recorded.
            AuditError: The trail cannot be written (the approval is undone).
        """
        if not reason.strip():
            raise UsageError("an approval needs a reason", where=approval_id,
                             hint='killswitch approve ID --reason "..."')
        reason = _clean(reason)
        a = self.get(approval_id)
        why = self_approval_reason(a.requester, approver)
        if why:
            raise self._refuse(
                a, approver, why,
                "another commander must approve it, under their own operator name and on "
                "their own account or machine (see the README: Two-person rule)")
        if a.status != "pending":
            raise self._refuse(a, approver, f"it is {self._state(a)}, not pending")
        at = _now()
        won = self._execute(
            "UPDATE approvals SET status = 'approved', approver_operator = ?, "
            "approver_host = ?, approver_os_user = ?, approved_at = ?, reason = ? "
            "WHERE id = ? AND status = 'pending'",
            (approver.operator, approver.host, approver.os_user, at, reason, a.id))
        if not won:
            now = self.get(a.id)
            raise self._refuse(now, approver, f"it is {self._state(now)}, not pending "
                                              "(another approver was first)")
        done = replace(a, status="approved", approver=approver, approved_at=at, reason=reason)
        try:
            if a.kind == "cosign":
                self._record("approval.cosigned", done, approver, "cosigned", reason=reason,
                             run_id=a.run_id or None)
            else:
                self._record("approval.approved", done, approver, "approved", reason=reason)
        except ConsoleError:
            self._execute(
                "UPDATE approvals SET status = 'pending', approver_operator = NULL, "
                "approver_host = NULL, approver_os_user = NULL, approved_at = '', reason = '' "
                "WHERE id = ? AND status = 'approved' AND approved_at = ?", (a.id, at))
            raise
        return done

    @staticmethod
    def _state(a: Approval) -> str:
        if a.status == "used":
            return f"already used by run {a.run_id}"
        if a.status == "void":
            return f"void ({a.void_reason})" if a.void_reason else "void"
        if a.status == "approved":
            by = a.approver.describe() if a.approver else "?"
            return f"already {'co-signed' if a.kind == 'cosign' else 'approved'} by {by}"
        return a.status

    def void(self, approval_id: str, reason: str, by: Identity | None = None) -> Approval:
        """Void a pending or approved (unused) approval, e.g. because the plan drifted.

        Raises:
            Refused: It is used or void already, or it is a ``cosign`` (a break-glass run's
                co-signature cannot be waived).
        """
        from console.identity import current
        who = by or current()
        reason = _clean(reason)
        a = self.get(approval_id)
        if a.kind == "cosign":
            raise Refused(f"approval {a.id} is a break-glass co-signature: it cannot be "
                          "voided", hint="another commander co-signs it with "
                          f"`killswitch approve {a.id} --reason ...`")
        if a.status not in ("pending", "approved"):
            raise Refused(f"approval {a.id} cannot be voided: it is {self._state(a)}")
        changed = self._execute(
            "UPDATE approvals SET status = 'void', void_reason = ? "
            "WHERE id = ? AND status = ?", (reason, a.id, a.status))
        if not changed:
            now = self.get(a.id)
            raise Refused(f"approval {a.id} cannot be voided: it is {self._state(now)}")
        done = replace(a, status="void", void_reason=reason)
        try:
            self._record("approval.void", done, who, "void", reason=reason,
                         was=a.status)
        except ConsoleError:
            self._execute("UPDATE approvals SET status = ?, void_reason = '' "
                          "WHERE id = ? AND status = 'void'", (a.status, a.id))
            raise
        return done

    def mark_used(self, approval_id: str, run_id: str, by: Identity | None = None) -> Approval:
        """Spend an approved approval on run ``run_id`` (once).

        Raises:
            Refused: It is not approved (pending, void, or used already: a second use).
        """
        from console.identity import current
        who = by or current()
        a = self.get(approval_id)
        if a.kind != "approval" or a.status != "approved":
            raise Refused(f"approval {a.id} cannot be used: it is "
                          f"{self._state(a) if a.status != 'pending' else 'not approved yet'}")
        changed = self._execute(
            "UPDATE approvals SET status = 'used', run_id = ? WHERE id = ? AND status = "
            "'approved'", (run_id, a.id))
        if not changed:
            now = self.get(a.id)
            raise Refused(f"approval {a.id} cannot be used: it is {self._state(now)}")
        done = replace(a, status="used", run_id=run_id)
        try:
            self._record("approval.used", done, who, "used", run_id=run_id,
                         approver=a.approver.describe() if a.approver else None)
        except ConsoleError:
            self._execute("UPDATE approvals SET status = 'approved', run_id = '' "
                          "WHERE id = ? AND status = 'used' AND run_id = ?", (a.id, run_id))
            raise
        return done


class SqliteApprovals(Approvals):
    """The ``approvals`` table of the audit database file (the embedded store).

    Args:
        path: The audit database (``settings.audit_db``).
        audit: See :class:`Approvals`.
    """

    def __init__(self, path: str | Path, audit: AuditSink | None = None) -> None:
        super().__init__(audit)
        self.path = Path(path).expanduser()
        self.where = str(self.path)
        self._ready = False

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self.path.exists():
                from console.privfile import make_private_dirs, open_private
                make_private_dirs(self.path.parent)
                import os
                os.close(open_private(self.path, os.O_RDWR | os.O_CREAT))
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"cannot open the approvals: {exc}", where=self.where) from exc
        try:
            if not self._ready:
                conn.execute(_SCHEMA)
                conn.execute(_INDEX)
                self._ready = True
            yield conn
        except sqlite3.Error as exc:
            raise AuditError(f"cannot use the approvals: {exc}", where=self.where) from exc
        finally:
            conn.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return list(conn.execute(sql, tuple(params)))

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._conn() as conn:
            return conn.execute(sql, tuple(params)).rowcount

    def _open_audit(self) -> AuditSink:
        from console.audit import AuditLog
        return AuditLog(self.path)


class PgApprovals(Approvals):
    """The ``approvals`` table in the current schema of the shared PostgreSQL store.

    One connection per object (autocommit; every state change a single conditional UPDATE),
    guarded by a lock so that threads may share the object.

    Args:
        url: The store's ``postgresql://`` URL.
        audit: See :class:`Approvals`.
    """

    def __init__(self, url: str, audit: AuditSink | None = None) -> None:
        super().__init__(audit)
        from console.store.pg import redact_url
        self.url = url
        self.where = redact_url(url)
        self._lock = threading.Lock()
        self._connection: Any = None

    def _connected(self) -> Any:
        import psycopg

        from console.store.pg import advisory_key, connect, store_error
        if self._connection is not None and not self._connection.closed:
            return self._connection
        conn = connect(self.url)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)",
                             (advisory_key(conn, "approvals.schema"),))
                conn.execute(_SCHEMA)
                conn.execute(_INDEX)
        except psycopg.Error as exc:
            conn.close()
            raise store_error(self.url, "create the approvals table", exc) from exc
        self._connection = conn
        return conn

    def _run(self, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        import psycopg

        from console.store.pg import store_error
        with self._lock:
            conn = self._connected()
            try:
                cur = conn.execute(sql.replace("?", "%s"), tuple(params))
                return cur.fetchall() if fetch else cur.rowcount
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    self._connection = None
                raise store_error(self.url, "use the approvals", exc) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return cast(list[tuple[Any, ...]], self._run(sql, params, True))

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._run(sql, params, False))

    def _open_audit(self) -> AuditSink:
        from console.store.pg_audit import PgAuditLog
        return cast(AuditSink, PgAuditLog(self.url))

    def close(self) -> None:
        """Close the connection (and a trail this object opened)."""
        super().close()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
