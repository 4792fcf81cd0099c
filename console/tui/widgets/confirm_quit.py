"""The one question every way out of the console asks while a run is in progress."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

__all__ = ["ConfirmQuitModal"]


class ConfirmQuitModal(ModalScreen[bool]):
    """Ask before quitting during a run: yes cancels the run, waits for it, then quits.

    | key       | action                                                   |
    |-----------|----------------------------------------------------------|
    | y         | cancel the run; quit once in-flight operations are recorded |
    | n, escape | keep running and stay                                    |
    """

    DEFAULT_CSS = """
    ConfirmQuitModal {
        align: center middle;
    }
    ConfirmQuitModal > #quit-dialog {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ConfirmQuitModal #quit-buttons {
        height: auto;
        align-horizontal: right;
    }
    ConfirmQuitModal Button {
        margin: 0 1;
    }
    """

    BINDING_GROUP_TITLE = "Quit during a run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Cancel run and quit", id="quit.yes",
                tooltip="No new operations start; quit once in-flight ones are recorded"),
        Binding("n,escape", "answer(False)", "Keep running", id="quit.no",
                tooltip="Close this question; the run continues and the console stays"),
    ]

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        with Vertical(id="quit-dialog"):
            yield Static("A run is in progress. Quit anyway?\nThe run is cancelled first: "
                         "no new operations start, in-flight ones finish and are recorded, "
                         "then the console closes. `killswitch` offers to resume it next "
                         "time.")
            with Horizontal(id="quit-buttons"):
                yield Button("Keep running (n)", id="quit-no")
                yield Button("Cancel run and quit (y)", variant="error", id="quit-yes")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")

    def action_answer(self, yes: bool) -> None:
        """Answer the question."""
        self.dismiss(yes)
