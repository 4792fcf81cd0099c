"""Typed confirmation before the console starts changing real systems."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

__all__ = ["ConfirmModeModal"]


class ConfirmModeModal(ModalScreen[bool]):
    """Ask the operator to type the mode's name (``LIVE`` or ``EXERCISE``) to switch to it.

    Dismisses with True only for the exact word; anything else keeps the current mode and
    says so. Escape cancels (False).

    | key    | action                         |
    |--------|--------------------------------|
    | enter  | confirm (if the word is right) |
    | escape | cancel: stay in DRY-RUN        |

    Args:
        target: ``live`` or ``exercise``.
    """

    BINDING_GROUP_TITLE = "Switch mode"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="mode.cancel",
                tooltip="Stay in DRY-RUN: nothing will be changed"),
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

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.word = target.upper()

    def compose(self) -> ComposeResult:
        """Title, what it means, the input, an error line."""
        with Vertical(id="confirm-mode-box"):
            yield Label(f"Switch to {self.word}?", id="confirm-mode-title")
            yield Static(
                f"In {self.word} mode confirmed runs change real systems: keys are disabled, "
                f"flags switched off. Type [b]{self.word}[/b] and press Enter. "
                "Escape keeps DRY-RUN.", id="confirm-mode-text")
            yield Input(placeholder=f"type {self.word}", id="confirm-mode-input")
            yield Label("", id="confirm-mode-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Switch only for the exact word."""
        event.stop()
        if event.value.strip() == self.word:
            self.dismiss(True)
            return
        error = self.query_one("#confirm-mode-error", Label)
        error.update(f"That is not {self.word}: still DRY-RUN. Type {self.word} or press "
                     "Escape.")
        error.add_class("-shown")
        event.input.clear()

    def action_cancel(self) -> None:
        """Stay where we are."""
        self.dismiss(False)
