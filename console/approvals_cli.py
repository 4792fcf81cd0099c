"""The two-person rule on the command line (``[settings] two_person``).

::

    killswitch run RUNBOOK SELECTOR... --yes --reason ...   # covered by the rule: exit 3,
                                                            # an approval requested (its id)
    killswitch approvals [--all] [--json]                   # pending requests and co-signs
    killswitch approve APPROVAL_ID --reason ...             # a second operator approves
    killswitch run --approval APPROVAL_ID --yes --reason .. # applies exactly that plan, once
    killswitch run ... --break-glass --reason ...           # one commander alone: recorded,
                                                            # co-signed afterwards

A request is bound to the plan: the approval stores the plan's saved text and hash, and
``run --approval`` loads that text, checks it against the hash the trail recorded when it was
requested and approved, re-derives it against live state as a saved plan is
(:meth:`Session.rederive <console.engine.service.Session.rederive>`), and applies it only
if nothing drifted; any drift or edit voids the approval (recorded) and refuses, exit 3. The
approval is spent under the run's locks just before the run starts, so it is used once.

Which runs are covered: :func:`console.engine.twoperson.needs_approval`. A ``restore`` is a
live run like any other and is covered the same way; ``resume`` is not (the run's start
passed the rule already).

The commands register themselves on the main ``cli`` group (``console.cli`` imports this
module at its end); only click and ``console.cli`` are imported at load time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from console.cli import _config, _confirm, _finish, _json, _out, _run_live, _session, cli, common
from console.engine.twoperson import plan_of, verified_plan
from console.engine.twoperson import void_quietly as _void
from console.errors import (
    EXIT_REFUSED,
    EXIT_VERIFY,
    PlanStaleError,
    PlanUntrusted,
    Refused,
    UsageError,
)

if TYPE_CHECKING:
    from console.engine.model import Plan
    from console.engine.service import Session
    from console.store.approvals import Approval

__all__ = ["TwoPerson", "apply_approved", "approvals", "approve", "plan_of", "verified_plan"]


# -- the gate of a live run ------------------------------------------------------------------
BANNER_WIDTH = 72


def _banner(lines: list[str]) -> str:
    import textwrap

    bar = "!" * BANNER_WIDTH
    body = [f"!! {part:<{BANNER_WIDTH - 6}} !!" for line in lines
            for part in textwrap.wrap(line, BANNER_WIDTH - 6)]
    return "\n".join([bar, *body, bar])


class TwoPerson:
    """The two-person rule for one live run of ``run`` or ``restore``.

    :meth:`check` (before the confirmation) requests an approval and exits 3 when the rule
    covers the run and no break-glass was asked for; :meth:`authorise` is the pass handed
    to :meth:`Session.apply <console.engine.service.Session.apply>`; :meth:`extra` what the
    run's output adds.
    """

    def __init__(self, session: Session, plan: Plan, why: str | None,
                 break_glass: bool) -> None:
        self.session = session
        self.plan = plan
        self.why = why
        self.break_glass = bool(why) and break_glass
        self.cosign: Approval | None = None

    @classmethod
    def check(cls, session: Session, plan: Plan, *, reason: str | None, break_glass: bool,
              consent_now: str = "") -> TwoPerson:
        """Decide before the confirmation; exits 3 after requesting an approval.

        Args:
            consent_now: The flag of a consent that cannot wait for an approval
                (``--reenable-leaked``): the rule then needs --break-glass.

        Raises:
            UsageError: --break-glass without --reason.
            Refused: ``consent_now`` under the rule without --break-glass.
        """
        from console.engine.twoperson import needs_approval, request_approval

        if break_glass and not (reason or "").strip():
            raise UsageError("--break-glass needs --reason", hint="add --reason '...': it is "
                             "recorded loudly and shown to whoever co-signs")
        why = needs_approval(plan, session.config, session.mode)
        if break_glass and not why:
            click.echo("note: --break-glass is not needed: the two-person rule "
                       f"(two_person = {session.config.settings.two_person!r}) does not cover "
                       "this run; it runs as usual", err=True)
        if why and not break_glass:
            if consent_now:
                raise Refused(f"{consent_now} is consent given when the run happens, so it "
                              f"cannot wait for an approval, and the two-person rule covers "
                              f"this run ({why})",
                              hint="run it with --break-glass --reason '...' (recorded, "
                                   "co-signed later), or restore without it (those keys stay "
                                   "disabled) under an approval")
            approval = request_approval(session, plan, why, reason or "")
            _requested(approval, why)
        self = cls(session, plan, why, break_glass)
        if self.break_glass:
            from console.identity import current

            who = current(session.config).describe()
            click.echo(_banner([
                "BREAK-GLASS: the two-person rule is set aside for this run.",
                f"{who} applies it ALONE.",
                f"Rule: {why}.",
                "Recorded in the audit trail (approval.break_glass); another",
                "commander must co-sign it afterwards (killswitch approve ID).",
            ]), err=True)
        return self

    def authorise(self, reason: str) -> Callable[[], object] | None:
        """The pass for :meth:`Session.apply`: None when the rule does not cover the run
        (apply checks again), else a call that records the break-glass and its pending
        co-signature just before the run starts."""
        if not self.break_glass:
            return None

        def record() -> None:
            from console.engine.twoperson import approvals_of, saved_text
            from console.identity import current

            with approvals_of(self.session) as store:
                self.cosign = store.request(
                    plan=saved_text(self.plan), plan_hash=self.plan.hash,
                    runbook=self.plan.runbook, integrations=self.plan.integrations,
                    requester=current(self.session.config), incident=self.session.incident,
                    cause=self.plan.cause, kind="cosign", reason=f"{reason} (rule: {self.why})",
                    plan_run_id=self.plan.run_id, run_id=self.plan.run_id)
        return record

    def extra(self) -> dict[str, Any] | None:
        """What the run's output adds: the pending co-signature of a break-glass run."""
        if self.cosign is None:
            return None
        cmd = f"killswitch approve {self.cosign.id} --reason '...'"
        return {"break_glass": True, "cosign_id": self.cosign.id,
                "cosign_status": self.cosign.status,
                "note": f"BREAK-GLASS: this run was applied by one commander alone; its "
                        f"co-signature {self.cosign.id} is pending until another commander "
                        f"gives it: `{cmd}`"}


def _requested(approval: Approval, why: str) -> None:
    """Say an approval was requested (stdout JSON with --json), and exit 3."""
    approve_cmd = f"killswitch approve {approval.id} --reason '...'"
    apply_cmd = f"killswitch run --approval {approval.id} --yes --reason '...'"
    if _json():
        _out(json.dumps({**approval.to_json(), "run_id": approval.plan_run_id,
                         "exit_code": EXIT_REFUSED, "needs_approval": why,
                         "approve": approve_cmd, "apply": apply_cmd}, indent=2))
    click.echo(f"refused: this live run needs a second operator's approval ({why}); "
               f"nothing was applied.\n"
               f"approval {approval.id} requested for plan {approval.plan_hash[:12]} "
               f"(run {approval.plan_run_id}) by {approval.requester.describe()}\n"
               f"  another commander reviews and approves it:  {approve_cmd}\n"
               f"  then either of you applies exactly that plan:  {apply_cmd}", err=True)
    sys.exit(EXIT_REFUSED)


# -- run --approval --------------------------------------------------------------------------
def apply_approved(approval_id: str, *, yes: bool, reason: str | None, incident: str | None,
                   allow_irreversible: bool, max_targets: int | None,
                   new_key_from: str | None) -> None:
    """``run --approval ID``: apply exactly the approved plan, once (see the module doc).

    Raises:
        Refused: Not an approved, unused approval; the stored plan was edited; or the plan
            drifted (the approval is voided, recorded). Exit 3, nothing applied.
    """
    from console.cli import _paste_keys, _refuse_held
    from console.engine.service import held_back
    from console.engine.twoperson import approvals_of
    from console.identity import current
    from console.render import render_plan

    session = _session(incident, mode="live")
    store = approvals_of(session)
    a = store.get(approval_id)
    if a.kind != "approval":
        raise UsageError(f"{a.id} is the co-signature of break-glass run {a.run_id}, not an "
                         "approval to run", hint=f"co-sign it with `killswitch approve {a.id} "
                         "--reason '...'`")
    if a.status == "pending":
        raise Refused(f"approval {a.id} is not approved yet: nothing was applied",
                      hint=f"another commander (not {a.requester.operator}) approves it with "
                           f"`killswitch approve {a.id} --reason '...'`")
    if a.status != "approved":
        raise Refused(f"approval {a.id} cannot be used: it is "
                      + (f"already used by run {a.run_id}" if a.status == "used" else
                         f"void ({a.void_reason})" if a.void_reason else a.status),
                      hint="plan again and ask for a new approval")
    session.incident = session.incident or a.incident
    saved = verified_plan(session, store, a)
    try:
        the_plan = session.sync(session.rederive(saved))
    except (PlanUntrusted, PlanStaleError) as exc:
        _void(store, a, f"the plan drifted since it was approved: {exc.msg}")
        raise Refused(f"approval {a.id} is void: the approved plan is not what would be "
                      f"applied now; nothing was applied. {exc.msg}",
                      hint="plan again (`killswitch run ...`) and ask for a new approval") \
            from exc
    fresh = _hash_as_approved(the_plan, saved)
    if fresh != a.plan_hash:
        _void(store, a, f"the re-derived plan has hash {fresh[:12]}, not the approved "
                        f"{a.plan_hash[:12]}")
        raise Refused(f"approval {a.id} is void: re-derived against live state, the plan "
                      f"has hash {fresh[:12]}, not the approved {a.plan_hash[:12]}; nothing "
                      "was applied", hint="plan again and ask for a new approval")
    session.check_guards(the_plan, allow_irreversible=allow_irreversible,
                         max_targets=max_targets)
    if not _json():
        who = a.approver.describe() if a.approver else "?"
        click.echo(f"APPROVED by {who} ({a.reason}); requested by "
                   f"{a.requester.describe()}\n{render_plan(the_plan, plan_hash=a.plan_hash)}",
                   err=True)
    _paste_keys(session, the_plan, new_key_from)
    the_reason = _confirm(the_plan, yes, reason or a.request_reason or None)
    me = current(session.config)

    def spend() -> None:
        store.mark_used(a.id, the_plan.run_id, by=me)

    try:
        result = _run_live(session, the_plan, the_reason, allow_irreversible, max_targets,
                           saved=True, authorise=spend)
    except PlanStaleError as exc:  # drifted between the re-derivation and the locks
        _void(store, store.get(a.id), f"the plan drifted since it was approved: {exc.msg}")
        raise
    held = held_back(the_plan.changes) if the_plan.restore_of else []
    extra = {"approval_id": a.id}
    if held and not result.failed and result.exit_code() != EXIT_VERIFY:
        from console.render import render_result, result_json

        _out(json.dumps({**json.loads(result_json(result)), **extra}, indent=2)
             if _json() else render_result(result))
        _refuse_held(held)
    _finish(result, extra)


def _hash_as_approved(fresh: Plan, saved: Plan) -> str:
    """The re-derived plan's hash, with what names the applying machine rather than the
    plan (the config file's path) taken from the approved plan."""
    from dataclasses import replace

    return replace(fresh, config=saved.config).hash


# -- approve / approvals ---------------------------------------------------------------------
@cli.command()
@common
@click.argument("approval_id")
@click.option("--reason", required=True,
              help="Why you approve (recorded with your identity). Required.")
@click.option("--yes", is_flag=True, help="Do not ask at a terminal (the plan is still shown).")
def approve(approval_id: str, reason: str, yes: bool) -> None:
    """Approve APPROVAL_ID as the second operator, or co-sign a break-glass run.

    Shows the plan the approval is bound to (as `killswitch plan` does), then records your
    approval. The requester cannot approve their own request, whatever operator name they
    claim on the same host under the same OS user (exit 3).
    """
    from console.engine.service import Session
    from console.engine.twoperson import approvals_of
    from console.identity import current
    from console.render import render_plan
    from console.store.approvals import self_approval_reason

    config = _config()
    from console.store import has_trail

    if not has_trail(config):  # looking creates no store
        raise UsageError(f"no approval {approval_id!r}: this store has no trail yet",
                         hint="check --config and settings.store (or $KILLSWITCH_STORE)")
    session = Session(config)
    store = approvals_of(session)
    a = store.get(approval_id)
    me = current(config)
    why = self_approval_reason(a.requester, me)
    if why or a.status != "pending":
        store.approve(a.id, me, reason)  # refused, and the refusal recorded
    plan = verified_plan(session, store, a)
    if not _json():
        head = (f"CO-SIGN break-glass run {a.run_id}: applied alone by "
                f"{a.requester.describe()} at {a.requested_at} ({a.request_reason})"
                if a.kind == "cosign" else
                f"APPROVE approval {a.id}: requested by {a.requester.describe()} at "
                f"{a.requested_at}" + (f" ({a.request_reason})" if a.request_reason else ""))
        _out(f"{head}\n{render_plan(plan, plan_hash=a.plan_hash)}\n")
        if sys.stdin.isatty() and not yes and not click.confirm(
                "Co-sign this run?" if a.kind == "cosign" else "Approve exactly this plan?"):
            raise click.exceptions.Abort()
    done = store.approve(a.id, me, reason)
    if _json():
        _out(json.dumps({**done.to_json(), "apply": None if done.kind == "cosign" else
                         f"killswitch run --approval {done.id} --yes --reason '...'"},
                        indent=2))
        return
    if done.kind == "cosign":
        _out(f"co-signed {done.id}: break-glass run {done.run_id} by "
             f"{done.requester.describe()}, co-signed by {me.describe()}")
    else:
        _out(f"approved {done.id} by {me.describe()}: `killswitch run --approval {done.id} "
             f"--yes --reason '...'` applies exactly this plan (once; refused if anything "
             "drifted)")


@cli.command()
@common
@click.option("--all", "show_all", is_flag=True, help="Every approval, whatever its state.")
def approvals(show_all: bool) -> None:
    """List pending approvals and break-glass co-signatures (--all: every one)."""
    from console.render import table
    from console.store import has_trail, open_approvals

    config = _config()
    rows: list[Approval] = []
    if has_trail(config):  # listing creates no store
        store = open_approvals(config)
        try:
            rows = store.list(all=show_all)
        finally:
            store.close()
    if _json():
        _out(json.dumps([a.to_json() for a in rows], indent=2))
        return
    if not rows:
        _out("no approvals" if show_all else "no pending approvals")
        return
    _out(table(["id", "kind", "status", "what", "requested by", "at", "approved by", "run"],
               [[a.id, a.kind, a.status, a.what, a.requester.describe(), a.requested_at,
                 a.approver.describe() if a.approver else "-",
                 a.run_id or a.plan_run_id or "-"] for a in rows]))

