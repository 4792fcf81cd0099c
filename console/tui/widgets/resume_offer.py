"""Shown first at start-up when a console died during a run: what it left, and resume."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.vocab import Outcome

if TYPE_CHECKING:
    from console.engine.model import OpResult, Plan

__all__ = ["ResumeOfferModal"]


class ResumeOfferModal(ModalScreen[bool]):
    """An unfinished run whose console is gone: resume it (``u``) or leave it for now.

    Resuming finishes the operations that did not end, without repeating completed ones,
    through the run screen's resume path. It changes real systems, so the console must be in
    LIVE or EXERCISE (ctrl+l) first.

    | key       | action                                          |
    |-----------|-------------------------------------------------|
    | u         | resume the run on the run screen                |
    | escape    | not now (`killswitch resume RUN_ID` stays)      |

    Args:
        plan: The run's plan.
        events: The run's events in the trail.
        previous: The last recorded outcome of each operation.
        others: Older unfinished runs, named for the CLI.
    """

    DEFAULT_CSS = """
    ResumeOfferModal {
        align: center middle;
    }
    ResumeOfferModal > #resume-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    ResumeOfferModal #resume-title {
        width: 100%;
        text-style: bold;
        background: $warning;
        color: $text;
        content-align: center middle;
    }
    ResumeOfferModal #resume-error {
        color: $error;
        text-style: bold;
        height: auto;
    }
    """

    BINDING_GROUP_TITLE = "Unfinished run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "resume", "Resume", id="resume-offer.resume",
                tooltip="Finish the operations that did not end (LIVE or EXERCISE only)"),
        Binding("escape", "later", "Not now", id="resume-offer.later",
                tooltip="Close; `killswitch resume RUN_ID` finishes it later"),
    ]

    def __init__(self, plan: Plan, events: list[dict[str, Any]],
                 previous: dict[str, OpResult], *, others: list[str] | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.events = events
        self.previous = previous
        self.others = others or []

    def compose(self) -> ComposeResult:
        """What the run is, how far it got, and the two answers."""
        plan, first = self.plan, self.events[0] if self.events else {}
        ended = sum(1 for r in self.previous.values()
                    if r.outcome not in (Outcome.PENDING, Outcome.SKIPPED))
        interrupted = sum(1 for r in self.previous.values() if r.outcome == Outcome.PENDING)
        not_started = len(plan.changes) - ended - interrupted
        what = (f"restore of run {plan.restore_of}" if plan.restore_of
                else f"runbook {plan.runbook}")
        lines = [
            f"Run {plan.run_id} — {what} on {', '.join(plan.integrations)}",
            f"started {first.get('ts', '?')} by {first.get('operator') or '?'}"
            + (f" for {first['incident']}" if first.get("incident") else ""),
            f"{ended} operation(s) ended, {interrupted} interrupted (started, no end "
            f"recorded), {not_started} not started.",
            "Its console is gone. u resumes it: operations that ended are not repeated.",
        ]
        if self.others:
            lines.append("Also unfinished: " + ", ".join(self.others)
                         + " (`killswitch resume RUN_ID`).")
        with Vertical(id="resume-dialog"):
            yield Static("UNFINISHED RUN", id="resume-title")
            yield Static("\n".join(lines), id="resume-summary")
            yield Static("u resume · escape not now", id="resume-keys")
            yield Static(id="resume-error")

    def action_resume(self) -> None:
        """Resume, if the console may change things."""
        app: Any = self.app
        if not app.live:
            self.query_one("#resume-error", Static).update(
                "The console is in DRY-RUN: switch mode first (ctrl+l), then press u.")
            return
        self.dismiss(True)

    def action_later(self) -> None:
        """Close; the run stays unfinished."""
        self.dismiss(False)
