"""Typed confirmation of a live run, and the yes/no confirmation of cancelling one.

Opening the confirmation does no engine work, file or audit I/O: the plan is already in
memory, the blast-radius guard is arithmetic on it, and the incident id is asked for only
when the run is confirmed (:mod:`console.tui.widgets.incident_prompt`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from console.engine.model import plan_counts
from console.tui.messages import error_text
from console.tui.widgets.banner import ModeBanner
from console.tui.widgets.question import YesNoModal
from console.vocab import mode_sentence

if TYPE_CHECKING:
    from console.engine.model import Plan

__all__ = ["ConfirmCancelModal", "ConfirmRunModal", "consent_text", "expected_confirmation"]


def expected_confirmation(plan: Plan) -> str:
    """What the operator must type: the integration id, or the number of integrations."""
    if len(plan.integrations) == 1:
        return plan.integrations[0]
    return str(len(plan.integrations))


def consent_text(irreversible: int, given: bool) -> str:
    """The irreversible-consent state in words (never only a colour).

    Args:
        irreversible: How many changes of the plan cannot be undone.
        given: Whether the operator consented.
    """
    if not irreversible:
        return "IRREVERSIBLE changes: none (every change can be undone); no consent needed"
    if given:
        return (f"IRREVERSIBLE changes: {irreversible} — consent: GIVEN "
                "(ctrl+t withdraws it)")
    return (f"IRREVERSIBLE changes: {irreversible} — consent: NOT GIVEN "
            "(press ctrl+t, or tick the box, to consent)")


class ConfirmRunModal(ModalScreen[tuple[str, bool] | None]):
    """Confirm a LIVE / EXERCISE run by typing the target and a reason.

    Returns ``(reason, allow_irreversible)``, or None when cancelled. A wrong id is refused
    with a message and nothing runs. Irreversible changes need explicit consent, shown in
    words (``consent: NOT GIVEN`` / ``GIVEN``); a blast-radius guard that fails is shown with
    its hint and the run cannot be confirmed. Without an incident id (none given at start or
    on the way to this mode), confirming asks for one first; Escape there runs nothing.
    Its keys are in its own footer.

    | key          | action                                  |
    |--------------|-----------------------------------------|
    | tab          | next field                              |
    | enter        | confirm (in the reason field)           |
    | ctrl+r       | confirm from anywhere                   |
    | ctrl+t       | give / withdraw irreversible consent    |
    | escape       | cancel: nothing runs                    |

    Args:
        plan: The plan to run.
        mode: ``live`` or ``exercise`` (shown in the title).
    """

    DEFAULT_CSS = """
    ConfirmRunModal {
        align: center middle;
    }
    ConfirmRunModal > #confirm-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ConfirmRunModal #confirm-title {
        text-style: bold;
        color: $text;
        background: $error;
        width: 100%;
        content-align: center middle;
    }
    ConfirmRunModal #confirm-consent {
        color: $error;
        text-style: bold;
    }
    ConfirmRunModal #confirm-consent.-given {
        color: $warning;
    }
    ConfirmRunModal #confirm-consent.-none {
        color: $text-muted;
        text-style: none;
    }
    ConfirmRunModal #confirm-error {
        color: $error;
        text-style: bold;
        height: auto;
    }
    ConfirmRunModal #confirm-error:disabled, ConfirmRunModal .-hidden {
        display: none;
    }
    ConfirmRunModal Input {
        margin: 0 0 1 0;
    }
    ConfirmRunModal #confirm-buttons {
        height: auto;
        align-horizontal: right;
    }
    ConfirmRunModal Button {
        margin: 0 1;
    }
    """

    BINDING_GROUP_TITLE = "Confirm run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm.cancel",
                tooltip="Close without running anything"),
        Binding("tab", "app.focus_next", "Next field", id="confirm.next",
                tooltip="The typed id, the reason, the consent box, the buttons"),
        Binding("ctrl+r", "confirm", "Run", id="confirm.run",
                tooltip="Run, if the typed id, the reason and any consent are given"),
        Binding("ctrl+t", "toggle_consent", "Consent", id="confirm.consent",
                tooltip="Give or withdraw consent to the changes that cannot be undone"),
    ]

    def __init__(self, plan: Plan, *, mode: str = "live") -> None:
        super().__init__()
        self.plan = plan
        self.mode = mode
        self.expected = expected_confirmation(plan)
        self.counts = plan_counts(plan)
        self.guard_error = ""
        self._consent_missing = False

    def compose(self) -> ComposeResult:
        """Summary, incident, typed id, reason, irreversible consent, errors, buttons, keys."""
        plan = self.plan
        counts = self.counts
        several = len(plan.integrations) > 1
        what = (f"restore of run {plan.restore_of}" if plan.restore_of
                else f"runbook {plan.runbook}")
        app: Any = self.app
        incident = str(getattr(app, "incident", "") or "")
        yield ModeBanner()
        with Vertical(id="confirm-dialog"):
            yield Static(f"Confirm {self.mode.upper()} run: {mode_sentence(self.mode)}",
                         id="confirm-title")
            extras = [f"{v} {k}" for k, v in counts.items()
                      if k not in ("targets", "changes", "irreversible")]
            yield Static(
                f"{what}: {counts['changes']} change(s) on {counts['targets']} "
                f"integration(s): {', '.join(plan.integrations)}"
                + (f"; not applied: {', '.join(extras)}" if extras else ""),
                id="confirm-summary")
            yield Static(f"Incident: {incident}" if incident else
                         "Incident: none yet (asked for when you confirm)",
                         id="confirm-incident")
            prompt = (f"Type the number of integrations ({self.expected}) to confirm:"
                      if several else f"Type the integration id ({self.expected}) to confirm:")
            yield Label(prompt)
            yield Input(placeholder=self.expected, id="confirm-id", compact=True)
            yield Label("Reason (recorded in the audit trail):")
            yield Input(placeholder="why this run, now", id="confirm-reason", compact=True)
            n = counts["irreversible"]
            consent = Static(consent_text(n, False), id="confirm-consent")
            consent.set_class(not n, "-none")
            yield consent
            if n:
                yield Checkbox(f"I understand {n} change(s) cannot be undone",
                               id="confirm-irreversible", compact=True)
            yield Static(id="confirm-error")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="confirm-cancel-button", compact=True)
                yield Button(f"Run {self.mode.upper()}", variant="error",
                             id="confirm-run-button", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        """Check the blast-radius guard (arithmetic on the plan) before anything is typed."""
        from console.errors import ConsoleError

        app: Any = self.app
        try:
            app.session().check_guards(self.plan, allow_irreversible=True, max_targets=None)
        except ConsoleError as exc:
            self.guard_error = "Refused by a guard: " + error_text(exc)
            self.query_one("#confirm-run-button", Button).disabled = True
        self._error(self.guard_error)
        self.query_one("#confirm-id", Input).focus()

    def _error(self, text: str, *, consent: bool = False) -> None:
        self._consent_missing = consent
        err = self.query_one("#confirm-error", Static)
        err.update(text)
        err.set_class(not text, "-hidden")

    @property
    def consent(self) -> bool:
        """True when the plan has irreversible changes and the operator consented."""
        boxes = self.query("#confirm-irreversible").results(Checkbox)
        return any(box.value for box in boxes)

    @on(Checkbox.Changed, "#confirm-irreversible")
    def _consent_changed(self, event: Checkbox.Changed) -> None:
        line = self.query_one("#confirm-consent", Static)
        line.update(consent_text(self.counts["irreversible"], event.value))
        line.set_class(event.value, "-given")
        if event.value and self._consent_missing:
            self._error("")

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Consent is offered (and in the footer) only when something cannot be undone."""
        if action == "toggle_consent":
            return bool(self.counts["irreversible"])
        return True

    def action_toggle_consent(self) -> None:
        """Give or withdraw consent to the irreversible changes."""
        for box in self.query("#confirm-irreversible").results(Checkbox):
            box.toggle()

    @on(Input.Submitted, "#confirm-id")
    def _next_field(self) -> None:
        self.query_one("#confirm-reason", Input).focus()

    @on(Input.Submitted, "#confirm-reason")
    @on(Button.Pressed, "#confirm-run-button")
    def _submit(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#confirm-cancel-button")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        """Close; nothing runs."""
        self.dismiss(None)

    def action_confirm(self) -> None:
        """Check what was typed; run only when everything required is there."""
        if self.guard_error:
            self._error(self.guard_error)
            return
        typed = self.query_one("#confirm-id", Input).value.strip()
        reason = self.query_one("#confirm-reason", Input).value.strip()
        if typed != self.expected:
            shown = repr(typed) if typed else "nothing"
            self._error(f"Refused: you typed {shown}, expected {self.expected!r}. "
                        "Nothing was run.")
            self.query_one("#confirm-id", Input).focus()
            return
        if not reason:
            self._error("A reason is required: it is recorded with the run.")
            self.query_one("#confirm-reason", Input).focus()
            return
        allow = False
        if self.plan.irreversible:
            allow = self.consent
            if not allow:
                self._error(f"{len(self.plan.irreversible)} change(s) cannot be undone and "
                            "consent is NOT GIVEN: tick the box (or ctrl+t), or cancel.",
                            consent=True)
                self.query_one("#confirm-irreversible", Checkbox).focus()
                return
        app: Any = self.app
        if getattr(app, "incident", ""):
            self.dismiss((reason, allow))
            return
        self._ask_incident(reason, allow)

    def _ask_incident(self, reason: str, allow: bool) -> None:
        """No incident id yet: ask for it; the run starts only once there is one."""
        from console.tui.widgets.incident_prompt import IncidentPromptModal

        def answered(incident: str | None) -> None:
            if not incident:
                self._error("No incident id: nothing was run. Confirm again to give one, "
                            "or Escape to leave.")
                return
            app: Any = self.app
            app.incident = incident
            self.dismiss((reason, allow))

        self.app.push_screen(IncidentPromptModal(
            self.mode, action=f"start this {self.mode.upper()} run",
            cancelled="nothing runs"), answered)


class ConfirmCancelModal(YesNoModal):
    """Ask before cancelling a run: in-flight operations finish, the rest are skipped.

    | key       | action          |
    |-----------|-----------------|
    | y         | cancel the run  |
    | n, escape | keep running    |
    """

    QUESTION = ("Cancel this run?\nOperations in flight finish and are recorded; the "
                "others are skipped. You can resume later (u).")
    NO_LABEL = "Keep running (n)"
    YES_LABEL = "Cancel run (y)"

    BINDING_GROUP_TITLE = "Cancel run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Cancel the run", id="cancel.yes",
                tooltip="Stop starting operations; in-flight ones finish and are recorded"),
        Binding("n,escape", "answer(False)", "Keep running", id="cancel.no",
                tooltip="Close this question; the run continues"),
    ]

    def compose_banner(self) -> ComposeResult:
        """The mode banner: cancelling a LIVE run is not cancelling a rehearsal."""
        yield ModeBanner()
