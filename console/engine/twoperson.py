"""The two-person rule's policy: which live runs need a second operator's approval.

``[settings] two_person``:

- ``off`` (the default): none.
- ``irreversible``: a run with any change that cannot be undone.
- ``prod``: a run touching any integration whose ``environment`` is ``prod``.
- ``all``: every live run.

Only *live* runs are concerned: a plan, a dry-run, a rehearsal or a tabletop exercise
(sandbox backends) changes nothing real and never needs an approval. A plan in which nothing
would be applied (every row a no-op or unsupported) needs none either. Resuming a run that
already started is not a new decision: its start passed the rule (an approval used, or a
break-glass recorded), so :func:`needs_approval` is not asked again (see
:mod:`console.approvals_cli`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from console.errors import PlanUntrusted, Refused, UsageError

if TYPE_CHECKING:
    from console.config import Config
    from console.engine.model import Plan
    from console.engine.service import Session
    from console.store.approvals import Approval, Approvals

__all__ = ["LIVE_MODES", "ApprovalRequired", "approvals_of", "gate", "needs_approval",
           "plan_of", "request_approval", "saved_text", "verified_plan", "void_quietly"]

LIVE_MODES = frozenset({"live"})
"""Session modes whose runs the rule covers (not dry-run, plan, rehearsal, exercise)."""


def needs_approval(plan: Plan, config: Config, mode: str = "live") -> str | None:
    """Why applying ``plan`` needs a second operator's approval, or None when it does not.

    Args:
        plan: The plan about to be applied.
        config: The config (``settings.two_person``, the integrations' environments).
        mode: The run's mode: only ``live`` runs are covered.

    Returns:
        A sentence naming the setting and what in the plan falls under it, or None.
    """
    rule = config.settings.two_person
    if rule == "off" or mode not in LIVE_MODES:
        return None
    if not any(c.actionable for c in plan.changes):
        return None
    if rule == "all":
        return 'settings.two_person is "all": every live run needs a second operator'
    if rule == "irreversible":
        one_way = plan.irreversible
        if not one_way:
            return None
        names = ", ".join(f"{c.action} {c.target}" for c in one_way[:3])
        more = f" and {len(one_way) - 3} more" if len(one_way) > 3 else ""
        return (f'settings.two_person is "irreversible" and {len(one_way)} change(s) cannot '
                f"be undone: {names}{more}")
    if rule == "prod":
        env = {i.id: str(i.environment) for i in config.integrations}
        prod = [i for i in plan.integrations if env.get(i) == "prod"]
        if not prod:
            return None
        return (f'settings.two_person is "prod" and the run touches production: '
                f"{', '.join(prod)}")
    return None


class ApprovalRequired(Refused):
    """A live run the two-person rule covers was not applied: an approval was requested.

    Attributes:
        approval: The pending request (its ``id`` is what a second operator approves).
        why: Why the rule covers the run (:func:`needs_approval`).
    """

    def __init__(self, approval: Approval, why: str) -> None:
        super().__init__(
            f"this live run needs a second operator's approval ({why}); nothing was "
            f"applied. Approval {approval.id} was requested for plan "
            f"{approval.plan_hash[:12]} (run {approval.plan_run_id})",
            title="Approval needed",
            hint=f"another commander reviews and approves it with `killswitch approve "
                 f"{approval.id} --reason '...'`; then `killswitch run --approval "
                 f"{approval.id}` applies exactly that plan (or, in an emergency, run again "
                 "with --break-glass --reason '...': recorded, and co-signed afterwards)")
        self.approval = approval
        self.why = why


def approvals_of(session: Session) -> Approvals:
    """The approvals of the session's store, writing their events to the session's trail."""
    from console.store import open_approvals

    store: Approvals = open_approvals(session.config)
    return store.use_audit(session.audit)


def saved_text(plan: Plan, digest: str | None = None) -> str:
    """The plan as ``killswitch plan --out`` saves it (signed when an audit key is set)."""
    from console.audit import KEY_ENV

    key = os.environ.get(KEY_ENV, "")
    return plan.to_json(key.encode("utf-8") if key else None, digest)


def request_approval(session: Session, plan: Plan, why: str, reason: str = "") -> Approval:
    """Record a pending approval bound to ``plan`` (its saved text and hash).

    The request's event in the trail names the plan's hash (a plan made in this session was
    recorded in full by :meth:`Session.plan <console.engine.service.Session.plan>`).
    """
    from console.identity import current

    digest = session.recorded_hashes.get(plan.run_id) or plan.hash
    with approvals_of(session) as store:
        return store.request(plan=saved_text(plan, digest), plan_hash=digest,
                             runbook=plan.runbook, integrations=plan.integrations,
                             requester=current(session.config), incident=session.incident,
                             cause=plan.cause, reason=reason or "", plan_run_id=plan.run_id)


def gate(session: Session, plan: Plan, reason: str = "") -> None:
    """Refuse to apply a plan the rule covers: request an approval and raise.

    What :meth:`Session.apply <console.engine.service.Session.apply>` does when it is not
    given the rule's pass (an approval being used, or a break-glass): every front end is
    covered, the console's included.

    Raises:
        ApprovalRequired: The rule covers the run (the approval id is in the error).
    """
    why = needs_approval(plan, session.config, session.mode)
    if why:
        raise ApprovalRequired(request_approval(session, plan, why, reason), why)


def plan_of(approval: Approval, key: bytes | None = None) -> Plan:
    """The plan an approval is bound to, parsed and checked against its hashes.

    Checks that the stored text is a plan (:func:`console.engine.planfile.validate_plan_data`),
    that it matches its own hash and the approval's ``plan_hash``, and, with an audit key,
    its signature (``key``: default ``$KILLSWITCH_AUDIT_KEY``). What the console shows a
    second commander before they approve.

    Raises:
        PlanUntrusted: The stored plan is not a plan, or does not match (edited).
    """
    from console.engine.model import Plan as PlanModel
    from console.engine.planfile import validate_plan_data

    if key is None:
        from console.audit import KEY_ENV

        key = os.environ.get(KEY_ENV, "").encode("utf-8") or None
    where = f"approval {approval.id}"

    def untrusted(why: str) -> PlanUntrusted:
        return PlanUntrusted(f"the plan stored with approval {approval.id} {why}: refused",
                             where=where, hint="plan again and ask for a new approval")
    try:
        data = validate_plan_data(json.loads(approval.plan), where)
        plan = PlanModel.from_dict(data)
    except UsageError as exc:
        raise untrusted(f"is not a valid plan ({exc.msg})") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise untrusted(f"is not a valid plan ({type(exc).__name__})") from exc
    body = plan.body()
    digest = PlanModel.hash_of(body)
    if data.get("hash") != digest:
        raise untrusted("does not match its own hash: it was edited after it was requested")
    if digest != approval.plan_hash:
        raise untrusted(f"has hash {digest[:12]}, not the requested {approval.plan_hash[:12]}: "
                        "it was edited after it was requested")
    if key:
        import hmac

        sig = data.get("signature")
        if not isinstance(sig, str) or not hmac.compare_digest(
                sig, PlanModel.signature_of(body, key)):
            raise untrusted("is not signed with this trail's audit key")
    return plan


def _trail_hashes(session: Session, approval: Approval) -> tuple[set[str], set[str]]:
    """Plan hashes the trail recorded for this approval: (when requested, when approved)."""
    def hashes(*outcomes: str) -> set[str]:
        found: set[str] = set()
        for outcome in outcomes:
            for e in session.audit.events(outcome=outcome):
                d = e.get("detail") or {}
                if e.get("phase") == "approval" and d.get("approval_id") == approval.id:
                    found.add(str(d.get("plan_hash") or ""))
        return found
    return hashes("requested", "break-glass"), hashes("approved", "cosigned")


def verified_plan(session: Session, store: Approvals, approval: Approval) -> Plan:
    """:func:`plan_of`, and the hash must be the one the trail recorded for the request
    (and the approval, once given): a row edited in the store, plan and hash together, is
    caught by the hash-chained trail. A mismatch voids the approval (recorded).

    Raises:
        PlanUntrusted: The stored plan does not match.
    """
    try:
        plan = plan_of(approval)
        requested, approved = _trail_hashes(session, approval)
        if requested != {approval.plan_hash} or (approval.approver is not None
                                                and approved != {approval.plan_hash}):
            raise PlanUntrusted(
                f"approval {approval.id}: its plan hash {approval.plan_hash[:12]} is not the "
                "one the audit trail recorded when it was requested"
                + (" and approved" if approval.approver is not None else "")
                + ": the stored approval was edited; refused",
                where=f"approval {approval.id}", hint="plan again and ask for a new approval")
    except PlanUntrusted as exc:
        void_quietly(store, approval, f"the stored plan does not match: {exc.msg}")
        raise
    return plan


def void_quietly(store: Approvals, approval: Approval, why: str) -> None:
    """Void an approval (if it still can be), recording why."""
    if approval.kind == "approval" and approval.status in ("pending", "approved"):
        try:
            store.void(approval.id, why[:500])
        except Refused:
            pass  # voided or used meanwhile: either way it cannot be used for this plan
