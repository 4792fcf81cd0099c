"""The new key, pasted by the operator, for a rotation whose provider cannot issue keys by API.

Anthropic's Admin API cannot create keys: a ``rotate`` of such an integration waits for the
operator to create the key in the provider's console and paste it here. The field is a
password field (the value is never drawn), the value goes straight into the run's in-memory
keyring (:func:`console.engine.rotation.put_pasted_key`, which refuses the old key) and the
console only ever shows its fingerprint.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from console.tui.widgets.banner import ModeBanner

__all__ = ["PasteKeyModal"]


class PasteKeyModal(ModalScreen[str | None]):
    """Ask for the new key of one integration; dismiss with it, or None on Escape.

    | key    | action                                 |
    |--------|----------------------------------------|
    | enter  | use the pasted key                     |
    | escape | cancel: nothing runs                   |

    Args:
        integration: The integration being rotated.
        provider: Its provider, named in the text.
        problem: Why the previous paste was refused, shown as an error line.
    """

    DEFAULT_CSS = """
    PasteKeyModal {
        align: center middle;
        background: $background 70%;
    }
    PasteKeyModal > #paste-box {
        width: 68;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    PasteKeyModal #paste-title {
        width: 100%;
        text-style: bold;
        background: $warning;
        color: $text;
        content-align: center middle;
    }
    PasteKeyModal #paste-error {
        color: $error;
        text-style: bold;
    }
    """

    BINDING_GROUP_TITLE = "New key"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="paste.cancel",
                tooltip="Nothing runs; the rotation needs the new key"),
        Binding("enter", "submit", "Use this key", id="paste.submit", priority=True,
                tooltip="Hold the key in memory for this run (only its fingerprint is shown)"),
    ]

    def __init__(self, integration: str, provider: str = "", problem: str = "") -> None:
        super().__init__()
        self.integration = integration
        self.provider = provider
        self.problem = problem

    def compose(self) -> ComposeResult:
        """Banner, title, what to do, the hidden field, an error line, the keys."""
        yield ModeBanner()
        with Vertical(id="paste-box"):
            yield Label(f"New key for {self.integration}", id="paste-title")
            who = self.provider or "the provider"
            yield Static(
                f"{who} cannot issue keys by API. Create the new key in its console, then "
                "paste it here. It is held in memory for this run only and written to every "
                "listed copy; the console shows its fingerprint, never the key. Escape: "
                "nothing runs.", id="paste-text")
            yield Input(password=True, placeholder="paste the new key", id="paste-input")
            yield Label(self.problem, id="paste-error")
        yield Footer()

    def on_mount(self) -> None:
        """The cursor starts in the field."""
        self.query_one("#paste-input", Input).focus()

    def action_submit(self) -> None:
        """Use the pasted key (empty: say so)."""
        value = self.query_one("#paste-input", Input).value.strip()
        if not value:
            self.query_one("#paste-error", Label).update("Paste the new key, or Escape.")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        """Nothing runs."""
        self.dismiss(None)
