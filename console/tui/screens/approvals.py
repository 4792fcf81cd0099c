"""Pending approvals (two-person rule) and break-glass co-signatures, and approving one.

:class:`ApprovalsScreen` lists what waits in the store (live: it follows
:mod:`console.tui.live`); ``enter`` opens :class:`ApprovalReviewScreen`, the plan review
(:class:`~console.tui.screens.plan.PlanScreen`, the same table and pane) of exactly the
plan the approval is bound to, with who asked and why, a reason field and Approve. The
plan is checked against the approval's hash before it is shown (an edited one is refused
on screen, not approvable). Approving goes through the store as ``killswitch approve``
does: the requester's own approval is refused (and the refusal recorded); the message says
why on the screen.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from console.tui.layout import (
    clip,
    explain_disabled,
    fit_widths,
    highlighted_key,
    laid_out_for,
    shorten,
    table_width,
)
from console.tui.messages import describe_error, error_text
from console.tui.screens.plan import PlanScreen
from console.tui.widgets.banner import ModeBanner

if TYPE_CHECKING:
    from console.engine.model import Plan
    from console.identity import Identity
    from console.store.approvals import Approval
    from console.tui.app import KillswitchApp
    from console.tui.live import LiveChanged

__all__ = ["ApprovalReviewScreen", "ApprovalsScreen", "approve_in_store", "me"]

NONE = "none"
"""Row key of the placeholder row of an empty table."""


def me(app: KillswitchApp) -> Identity:
    """Who approves from this console: its operator, this host, this OS user."""
    from console.identity import Identity, host_name, os_user

    return Identity(app.operator, host_name(), os_user())


def _kind(a: Approval) -> str:
    return "co-sign" if a.kind == "cosign" else "approval"


def approve_in_store(app: KillswitchApp, approval_id: str, reason: str) -> Approval:
    """Approve (or co-sign) as ``killswitch approve`` does (blocking: a thread).

    Raises:
        Refused: The requester's own request (recorded), not pending any more, or the
            stored plan does not match what the trail recorded (the approval is voided).
        UsageError: No reason, or no such approval.
        AuditError: The store cannot be written.
    """
    from console.engine.twoperson import approvals_of, verified_plan
    from console.store.approvals import self_approval_reason

    session = app.session()
    store = approvals_of(session)
    try:
        a = store.get(approval_id)
        who = me(app)
        if self_approval_reason(a.requester, who) or a.status != "pending":
            store.approve(a.id, who, reason)  # refused, and the refusal recorded
        verified_plan(session, store, a)
        return store.approve(a.id, who, reason)
    finally:
        store.close()
        trail = getattr(session, "_audit", None)  # this session's own connection
        if trail is not None:
            trail.close()


class ApprovalsScreen(Screen[None]):
    """Pending approvals and co-signatures, live.

    | key        | action                                                   |
    |------------|----------------------------------------------------------|
    | up / down  | highlight one: the pane says who asked, for what, why   |
    | enter      | review its plan, then approve it (or co-sign)           |
    | escape     | back                                                     |
    """

    BINDING_GROUP_TITLE = "Approvals"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "review", "Review", id="approvals.review",
                tooltip="The plan it is bound to, a reason, and approve"),
        Binding("escape", "back", "Back", id="approvals.back", tooltip="Back where you were"),
    ]

    app: KillswitchApp

    def __init__(self) -> None:
        super().__init__(id="approvals")
        self._built: tuple[bool, int] | None = None
        self._shown: list[Approval] = []

    def compose(self) -> ComposeResult:
        """Banner, what waits, the table, the highlighted approval, footer."""
        yield ModeBanner()
        yield Static("", id="approvals-status")
        yield DataTable(id="approvals-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="approvals-detail"):
            yield Static(id="approvals-detail-text")
        yield Footer()

    def on_mount(self) -> None:
        """Show what the live view holds and follow it."""
        self.app.live_view.changed.subscribe(self, self._live_changed)
        self._build(self.app.size.width)
        self.query_one("#approvals-table", DataTable).focus()

    def on_screen_resume(self) -> None:
        """Back from a review: what waits now."""
        if self.is_mounted:
            self.app.live_view.changed.unsubscribe(self)  # once, whether or not dropped
            self.app.live_view.changed.subscribe(self, self._live_changed)
            self._fill()

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide columns."""
        self._build(event.size.width)

    def _live_changed(self, change: LiveChanged) -> None:
        if self.is_mounted and (change.approvals or change.state):
            self._fill()

    def _build(self, width: int) -> None:
        if laid_out_for(self, width):
            return
        self._fill()

    def rows(self) -> list[dict[str, str]]:
        """The approvals as the table shows them (tests read these)."""
        mine = me(self.app)
        out = []
        for a in self._shown:
            yours = a.requester.same_person(mine)
            out.append({"id": a.id, "you": "you" if yours else "", "kind": _kind(a),
                        "by": f"{a.requester.operator}@{a.requester.host}", "what": a.what,
                        "at": a.requested_at[11:16] if len(a.requested_at) >= 16 else "-"})
        return out

    def _fill(self) -> None:
        if self._built is None:
            return
        narrow, width = self._built
        live = self.app.live_view
        self._shown = list(live.approvals)
        rows = self.rows()
        keys: tuple[str, ...] = (("you", "kind", "by", "what", "at") if narrow else
                                 ("you", "id", "kind", "by", "what", "at"))
        labels = {"you": "", "id": "id", "kind": "kind", "by": "requested by",
                  "what": "runbook on", "at": "at"}
        minimum = {"you": 3, "id": 10, "kind": 8, "by": 10, "what": 12, "at": 5}
        widths = fit_widths(table_width(width), [
            (max([len(labels[k]), *(len(r[k]) for r in rows)]), minimum[k]) for k in keys])
        table = self.query_one("#approvals-table", DataTable)
        keep = highlighted_key(table)
        table.clear(columns=True)
        for key, w in zip(keys, widths, strict=True):
            table.add_column(labels[key], key=key, width=w)
        for row in rows:
            table.add_row(*(Text(row[k], style="bold") if k == "you" else
                            shorten(row[k], w) if k in ("by", "what") else clip(row[k], w)
                            for k, w in zip(keys, widths, strict=True)), key=row["id"])
        if not rows:
            table.add_row(*([""] * len(keys)), key=NONE)
        index = next((n for n, r in enumerate(rows) if r["id"] == keep), 0)
        table.move_cursor(row=index)
        count = len(rows)
        status = self.query_one("#approvals-status", Static)
        status.update(f"{count} pending approval(s) and co-signature(s) | "
                      + live.state_text())
        status.set_class(live.state in ("reconnecting", "off"), "-failed")
        self._show_detail()
        self.refresh_bindings()

    @property
    def selected(self) -> Approval | None:
        """The highlighted approval."""
        key = highlighted_key(self.query_one("#approvals-table", DataTable))
        return next((a for a in self._shown if a.id == key), None)

    @on(DataTable.RowHighlighted, "#approvals-table")
    def _highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#approvals-table")
    def _selected(self) -> None:
        """Enter (or a click) on a row: review it."""
        self.action_review()

    def _show_detail(self) -> None:
        pane = self.query_one("#approvals-detail-text", Static)
        a = self.selected
        if a is None:
            pane.update("Nothing waits for a second commander. Requests appear here as "
                        "they are made (settings.two_person), with break-glass runs to "
                        "co-sign.")
            return
        out = Text()
        out.append(f"{a.id}", style="bold")
        out.append(f" · {_kind(a)} · {a.what}")
        out.append(f"\nrequested by {a.requester.describe()} at {a.requested_at}")
        if a.request_reason:
            out.append(f"\nwhy: {a.request_reason}")
        if a.kind == "cosign":
            out.append(f"\nbreak-glass run {a.run_id or '-'} applied alone: it needs a "
                       "co-signature")
        out.append(f"\nplan {a.plan_hash[:12]} · incident {a.incident or '-'}")
        if a.requester.same_person(me(self.app)):
            out.append("\nyours: another commander must approve it", style="bold")
        else:
            out.append("\nenter: review the plan, then approve")
        pane.update(out)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Review needs an approval highlighted."""
        if action == "review" and self.selected is None:
            return None
        return True

    def on_key(self, event: events.Key) -> None:
        """A key whose action is disabled says why."""
        explain_disabled(self, event, lambda action: "Nothing pending to review."
                         if action == "review" else "")

    def action_review(self) -> None:
        """The highlighted approval's plan, a reason, and approve."""
        a = self.selected
        if a is not None:
            self.app.push_screen(ApprovalReviewScreen(a))

    def action_back(self) -> None:
        """Back."""
        self.dismiss()


class ApprovalReviewScreen(PlanScreen):
    """Exactly the plan an approval is bound to, who asked and why; a reason; approve.

    | key        | action                                                    |
    |------------|-----------------------------------------------------------|
    | a          | approve (co-sign): the reason field first, then enter     |
    | enter      | (in the reason field) approve with this reason            |
    | up / down  | highlight a row: the pane shows it in full                |
    | escape     | back without approving                                    |

    Args:
        approval: The pending approval (its plan is checked against its hash here).
    """

    BINDING_GROUP_TITLE = "Approve"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approval.approve",
                tooltip="Approve exactly this plan (a reason is asked for and recorded)"),
        Binding("enter", "approve", "Approve", id="approval.approve-enter", show=False,
                tooltip="Same as a"),
        Binding("escape", "back", "Back", id="approval.back", tooltip="Back without approving"),
    ]

    class Approved(Message):
        """The store recorded the approval."""

        bubble = False

        def __init__(self, approval: Approval) -> None:
            super().__init__()
            self.approval = approval
            """The approval, approved."""

    app: KillswitchApp

    def __init__(self, approval: Approval) -> None:
        plan, problem = self._plan_of(approval)
        super().__init__(plan)
        self.approval = approval
        self.problem = problem
        """Why the stored plan cannot be approved ("" when it can)."""
        self.refusal = ""
        """The store's refusal of the last attempt ("" when none)."""

    @staticmethod
    def _plan_of(approval: Approval) -> tuple[Plan, str]:
        """The approval's plan checked against its hash; else an empty plan and why."""
        from console.engine.model import Plan

        try:
            import os

            from console.audit import KEY_ENV
            from console.engine.twoperson import plan_of

            key = os.environ.get(KEY_ENV, "")
            return plan_of(approval, key.encode("utf-8") if key else None), ""
        except Exception as exc:  # noqa: BLE001 - shown on screen, never approvable
            empty = Plan(run_id=approval.plan_run_id or "-", runbook=approval.runbook,
                         selectors=[], integrations=list(approval.integrations), steps=[],
                         changes=[])
            return empty, describe_error(exc)[1]

    def compose(self) -> ComposeResult:
        """The plan review, then the reason field and the store's answer, then the footer."""
        for widget in super().compose():
            if isinstance(widget, Footer):
                yield Input(placeholder="reason (recorded with your name), then enter",
                            id="approval-reason")
                yield Static("", id="approval-message")
            yield widget

    def _mode_changed(self, _value: object = None) -> None:
        """The header says what is being approved, whatever the console's mode."""
        a = self.approval
        if a.kind == "cosign":
            head = (f"CO-SIGN break-glass run {a.run_id or '-'} ({a.what}), applied alone by "
                    f"{a.requester.describe()} at {a.requested_at[:19]}")
        else:
            head = (f"APPROVE {a.id}: {a.what}, requested by {a.requester.describe()} at "
                    f"{a.requested_at[:19]}")
        if a.request_reason:
            head += f" ({a.request_reason})"
        head += f". Plan {a.plan_hash[:12]}; exactly this plan, once, if nothing drifts."
        if self.problem:
            head += f" REFUSED: {self.problem}"
        header = self.query_one("#plan-header", Static)
        header.update(head)
        header.set_class(True, "-live")
        header.set_class(False, "-dry-run")
        self.refresh_bindings()

    def on_mount(self) -> None:
        """The plan review; a plan that cannot be trusted says so where the reason goes."""
        super().on_mount()
        if self.problem:
            self._say(f"Cannot be approved: {self.problem}", failed=True)
        elif self.approval.requester.same_person(me(self.app)):
            self._say("This is your own request: another commander must approve it.",
                      failed=False)

    def _say(self, text: str, *, failed: bool) -> None:
        message = self.query_one("#approval-message", Static)
        message.update(text)
        message.set_class(failed, "-failed")
        message.set_class(bool(text), "-shown")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Approve is disabled for a plan that does not match its hash, and while one
        attempt is under way."""
        if action == "approve" and self.disabled_reason(action):
            return None
        return True

    def disabled_reason(self, action: str) -> str:
        """Why ``action`` cannot run now (``""`` when it can)."""
        if action != "approve":
            return ""
        if self.problem:
            return f"Cannot be approved: {self.problem}"
        if any(w.group == "approve" and not w.is_finished for w in self.workers):
            return "Approving: wait for the store's answer."
        return ""

    def on_key(self, event: events.Key) -> None:
        """A key whose action is disabled says why."""
        explain_disabled(self, event, self.disabled_reason)

    def action_approve(self) -> None:
        """Approve with the reason typed; without one, go to the reason field first."""
        box = self.query_one("#approval-reason", Input)
        if not box.value.strip():
            box.focus()
            self._say("Type why you approve (recorded with your name), then enter.",
                      failed=False)
            return
        self._approve(box.value.strip())

    @on(Input.Submitted, "#approval-reason")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_approve()

    @work(exclusive=True, group="approve", exit_on_error=False)
    async def _approve(self, reason: str) -> None:
        self._say(f"Approving {self.approval.id}…", failed=False)
        self.refresh_bindings()
        done = await asyncio.to_thread(approve_in_store, self.app, self.approval.id, reason)
        self.post_message(self.Approved(done))

    def on_approval_review_screen_approved(self, message: Approved) -> None:
        """Say so and go back to the list (the requester's console sees it, too)."""
        a = message.approval
        if a.kind == "cosign":
            text = f"Co-signed {a.id}: break-glass run {a.run_id} by {a.requester.operator}."
        else:
            text = (f"Approved {a.id}: {a.requester.operator} may now apply exactly this plan "
                    f"(killswitch run --approval {a.id}).")
        self.notify(text, title="Approved", timeout=10)
        self.dismiss()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A refusal (self-approval, no longer pending, drift) is shown here, with why."""
        if event.worker.group != "approve":
            return
        self.refresh_bindings()
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        error = event.worker.error
        self.refusal = error_text(error)
        self._say(self.refusal, failed=True)
        self.notify(self.refusal, title=describe_error(error)[0] or "Not approved",
                    severity="error", timeout=15)

    def action_back(self) -> None:
        """Back without approving."""
        self.dismiss()

    # the plan review's apply does not exist here
    def action_apply_plan(self) -> None:
        """Approving is not applying: see :meth:`action_approve`."""
        self.action_approve()

