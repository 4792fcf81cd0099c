"""Typed confirmation of every mode switch: the operator types the new mode's name."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from console.tui.widgets.banner import ModeBanner
from console.vocab import mode_sentence

__all__ = ["ConfirmModeModal"]


class ConfirmModeModal(ModalScreen[bool]):
    """Ask the operator to type the new mode's name (``DRY-RUN``, ``EXERCISE`` or ``LIVE``).

    Every switch goes through here, back to DRY-RUN included. Dismisses with True only for
    the exact word; anything else keeps the current mode and says so. Escape cancels (False).
    The mode banner stays on top while it is open. Switching to LIVE / EXERCISE while the
    console has no incident id asks for it once the word is right
    (:class:`~console.tui.widgets.incident_prompt.IncidentPromptModal`); the switch happens
    only with an id (Escape there keeps the current mode and says so).

    | key    | action                         |
    |--------|--------------------------------|
    | enter  | confirm (if the word is right) |
    | escape | cancel: keep the current mode  |

    Args:
        target: The mode to switch to: ``dry-run``, ``exercise`` or ``live``.
        current: The mode the console is in.
    """

    BINDING_GROUP_TITLE = "Switch mode"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="mode.cancel",
                tooltip="Keep the current mode"),
    ]

    DEFAULT_CSS = """
    ConfirmModeModal {
        align: center middle;
        background: $background 70%;
    }
    ConfirmModeModal > #confirm-mode-box {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ConfirmModeModal #confirm-mode-title {
        width: 100%;
        text-style: bold;
        background: $error;
        color: $text;
        content-align: center middle;
    }
    ConfirmModeModal #confirm-mode-error {
        color: $error;
        text-style: bold;
        display: none;
    }
    ConfirmModeModal #confirm-mode-error.-shown {
        display: block;
    }
    """

    def __init__(self, target: str, current: str = "dry-run") -> None:
        super().__init__()
        self.target = target
        self.word = target.upper()
        self.current = current.upper()

    def compose(self) -> ComposeResult:
        """Title, what it means, the input, an error line."""
        yield ModeBanner()
        with Vertical(id="confirm-mode-box"):
            yield Label(f"Switch to {self.word}?", id="confirm-mode-title")
            yield Static(
                f"{mode_sentence(self.target)}. Type [b]{self.word}[/b] and press Enter. "
                f"Escape keeps {self.current}.", id="confirm-mode-text", markup=True)
            yield Input(placeholder=f"type {self.word}", id="confirm-mode-input")
            yield Label("", id="confirm-mode-error")
            app: Any = self.app
            if self.target != "dry-run" and not getattr(app, "incident", ""):
                yield Static("Next: the incident id. It is shown in the banner and recorded "
                             "with every run.", id="confirm-mode-incident")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Switch only for the exact word (and, to LIVE / EXERCISE, with an incident id)."""
        event.stop()
        if event.value.strip() != self.word:
            self._error(f"That is not {self.word}: still {self.current}. Type {self.word} or "
                        "press Escape.")
            event.input.clear()
            return
        app: Any = self.app
        if self.target == "dry-run" or str(getattr(app, "incident", "") or ""):
            self.dismiss(True)
            return
        from console.tui.widgets.incident_prompt import IncidentPromptModal

        def answered(incident: str | None) -> None:
            if not incident:
                self._error(f"No incident id: still {self.current}. Enter asks again; Escape "
                            "keeps the mode.")
                return
            app.incident = incident
            self.dismiss(True)

        app.push_screen(IncidentPromptModal(
            self.target, action=f"switch to {self.word}",
            cancelled=f"the console stays in {self.current}"), answered)

    def _error(self, text: str) -> None:
        error = self.query_one("#confirm-mode-error", Label)
        error.update(text)
        error.add_class("-shown")

    def action_cancel(self) -> None:
        """Stay where we are."""
        self.dismiss(False)
