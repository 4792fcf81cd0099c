"""A yes/no question over the current screen: ``y`` says yes, ``n`` or Escape says no."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

__all__ = ["YesNoModal"]


class YesNoModal(ModalScreen[bool]):
    """Ask one question; dismiss with True (yes) or False (no).

    Subclasses set :attr:`QUESTION`, the two button labels, the yes button's variant and
    their ``BINDINGS`` (``answer(True)`` / ``answer(False)``); the border colour is theirs too.
    """

    DEFAULT_CSS = """
    YesNoModal {
        align: center middle;
    }
    YesNoModal > #question-dialog {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    YesNoModal #question-buttons {
        height: auto;
        align-horizontal: right;
    }
    YesNoModal Button {
        margin: 0 1;
    }
    """

    QUESTION: ClassVar[str] = ""
    """The question and what each answer does."""
    NO_LABEL: ClassVar[str] = "No (n)"
    YES_LABEL: ClassVar[str] = "Yes (y)"
    YES_VARIANT: ClassVar[str] = "warning"

    def compose_banner(self) -> ComposeResult:
        """What stands above the question (nothing; a subclass may add the mode banner)."""
        yield from ()

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        yield from self.compose_banner()
        with Vertical(id="question-dialog"):
            yield Static(self.QUESTION)
            with Horizontal(id="question-buttons"):
                yield Button(self.NO_LABEL, id="answer-no")
                yield Button(self.YES_LABEL, variant=self.YES_VARIANT,  # type: ignore[arg-type]
                             id="answer-yes")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "answer-yes")

    def action_answer(self, yes: bool) -> None:
        """Answer the question."""
        self.dismiss(yes)
