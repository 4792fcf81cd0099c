"""The one question every way out of the console asks while a run is in progress."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from console.tui.widgets.question import YesNoModal

__all__ = ["ConfirmQuitModal"]


class ConfirmQuitModal(YesNoModal):
    """Ask before quitting during a run: yes cancels the run, waits for it, then quits.

    | key       | action                                                   |
    |-----------|----------------------------------------------------------|
    | y         | cancel the run; quit once in-flight operations are recorded |
    | n, escape | keep running and stay                                    |
    """

    DEFAULT_CSS = """
    ConfirmQuitModal > #question-dialog {
        border: thick $error;
    }
    """
    QUESTION = ("A run is in progress. Quit anyway?\nThe run is cancelled first: no new "
                "operations start, in-flight ones finish and are recorded, then the console "
                "closes. `killswitch` offers to resume it next time.")
    NO_LABEL = "Keep running (n)"
    YES_LABEL = "Cancel run and quit (y)"
    YES_VARIANT = "error"

    BINDING_GROUP_TITLE = "Quit during a run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Cancel run and quit", id="quit.yes",
                tooltip="No new operations start; quit once in-flight ones are recorded"),
        Binding("n,escape", "answer(False)", "Keep running", id="quit.no",
                tooltip="Close this question; the run continues and the console stays"),
    ]
