"""The incident id, asked for at the first action that applies (LIVE or EXERCISE).

A console opened without ``--incident`` and without ``settings.incident`` has none. The
first time the operator switches to LIVE / EXERCISE, or confirms a run in one of them, this
dialog asks for it, and why the runs happen (the cause: leak, cost, data, abuse, exercise,
other); the app keeps both (:attr:`KillswitchApp.incident`, ``cause``), the banner shows them,
and every run records them (after a ``leak``, ``restore`` keeps the leaked key dead). There
is no "none": the id is what finds a run again in the postmortem
(``killswitch report --incident ID``), and a provisional one (the page or alert id) can
always be typed.
"""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, RadioButton, RadioSet, Static

from console.tui.widgets.banner import ModeBanner

__all__ = ["CAUSE_LABELS", "MAX_INCIDENT_LENGTH", "NOT_AN_INCIDENT", "IncidentPromptModal",
           "incident_problem"]

CAUSE_LABELS: dict[str, str] = {
    "leak": "leak: a key or secret is exposed",
    "cost": "cost: spend or usage out of bounds",
    "data": "data: data sent where it must not go",
    "abuse": "abuse: misuse of the integration",
    "exercise": "exercise: a drill",
    "other": "other",
}
"""The causes (``console.vocab.CAUSES``) as the dialog lists them."""

MAX_INCIDENT_LENGTH = 64
"""Longest incident id accepted."""

NOT_AN_INCIDENT = frozenset({"-", "none", "n/a", "na", "null", "tbd"})
"""Words that say "no incident" (the audit screen shows ``-`` for a run without one)."""


def incident_problem(text: str) -> str:
    """Why ``text`` cannot be an incident id, or ``""`` when it can.

    An id is one word (no spaces) of at most :data:`MAX_INCIDENT_LENGTH` printable
    characters, and not a word meaning "none".

    Args:
        text: What the operator typed, already stripped.
    """
    if not text:
        return "An incident id is required."
    if any(ch.isspace() for ch in text):
        return "An incident id is one word, without spaces (e.g. INC-4711)."
    if len(text) > MAX_INCIDENT_LENGTH:
        return f"An incident id has at most {MAX_INCIDENT_LENGTH} characters."
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        return "An incident id has printable characters only."
    if text.lower() in NOT_AN_INCIDENT:
        return (f"{text!r} says there is no incident. Type the incident's id, or a "
                "provisional one (the page or alert id) to link later.")
    return ""


class IncidentPromptModal(ModalScreen[str | None]):
    """Ask for the incident id; dismiss with it, or with None on Escape.

    | key        | action                                         |
    |------------|------------------------------------------------|
    | enter      | use the typed id and the chosen cause          |
    | tab        | to the causes; up/down and space choose one    |
    | escape     | cancel: the action that asked is dropped       |

    The cause starts at the app's current one (``other`` by default); Enter stores it in
    ``app.cause`` with the id.

    Args:
        mode: The applying mode the action is in: ``live`` or ``exercise``.
        action: What happens once the id is given, e.g. ``switch to EXERCISE``.
        cancelled: What Escape leaves, e.g. ``the console stays in DRY-RUN``.
    """

    DEFAULT_CSS = """
    IncidentPromptModal {
        align: center middle;
        background: $background 70%;
    }
    IncidentPromptModal > #incident-box {
        width: 68;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    IncidentPromptModal #incident-title {
        width: 100%;
        text-style: bold;
        background: $warning;
        color: $text;
        content-align: center middle;
    }
    IncidentPromptModal #incident-error {
        color: $error;
        text-style: bold;
        display: none;
    }
    IncidentPromptModal #incident-error.-shown {
        display: block;
    }
    IncidentPromptModal #incident-cause {
        height: auto;
        border: none;
        padding: 0;
        width: 100%;
    }
    """

    BINDING_GROUP_TITLE = "Incident id"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="incident.cancel",
                tooltip="Drop the action that asked for the incident id"),
        Binding("enter", "submit", "Use this id", id="incident.submit", priority=True,
                tooltip="Record this incident id with every run from now on"),
    ]

    def __init__(self, mode: str, *, action: str, cancelled: str) -> None:
        super().__init__()
        self.mode = mode
        self.action = action
        self.cancelled = cancelled

    def compose(self) -> ComposeResult:
        """Banner, title, what the id is for, the input, an error line, the keys."""
        yield ModeBanner()
        with Vertical(id="incident-box"):
            yield Label(f"Incident id for {self.mode.upper()}", id="incident-title")
            yield Static(
                f"Before you {self.action}: which incident is this? The id is shown in the "
                "banner and recorded with every run. Enter uses it; Escape cancels "
                f"({self.cancelled}).", id="incident-text")
            yield Input(placeholder="e.g. INC-4711", id="incident-input",
                        max_length=MAX_INCIDENT_LENGTH)
            yield Label("Cause (Tab, then up/down and space):", id="incident-cause-label")
            current = str(getattr(self.app, "cause", "") or "other")
            with RadioSet(id="incident-cause"):
                for cause, label in CAUSE_LABELS.items():
                    yield RadioButton(label, value=cause == current, name=cause)
            yield Label("", id="incident-error")
        yield Footer()

    def on_mount(self) -> None:
        """The cursor starts in the field."""
        self.query_one("#incident-input", Input).focus()

    def action_submit(self) -> None:
        """Use the typed id, or say why it is not one."""
        value = self.query_one("#incident-input", Input).value.strip()
        problem = incident_problem(value)
        if not problem:
            pressed = self.query_one("#incident-cause", RadioSet).pressed_button
            if pressed is not None and pressed.name:
                app: Any = self.app
                app.cause = pressed.name
            self.dismiss(value)
            return
        error = self.query_one("#incident-error", Label)
        error.update(f"{problem} Escape cancels ({self.cancelled}).")
        error.add_class("-shown")

    def action_cancel(self) -> None:
        """Drop the action that asked."""
        self.dismiss(None)
