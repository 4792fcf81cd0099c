"""The mode banner: always visible, impossible to misread."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static


class ModeBanner(Widget):
    """Mode (LIVE in red / DRY-RUN / EXERCISE), target environments, incident, operator."""

    def compose(self) -> ComposeResult:
        """A single line of text (refined by the banner owner)."""
        yield Static(id="banner-text")

    def on_mount(self) -> None:
        """Follow the app's mode, marks and incident."""
        self.watch(self.app, "mode", self._refresh_text)
        self.watch(self.app, "marked", self._refresh_text)
        self.watch(self.app, "incident", self._refresh_text)

    def _refresh_text(self, _value: object = None) -> None:
        app = self.app
        mode = str(getattr(app, "mode", "dry-run")).upper()
        self.query_one("#banner-text", Static).update(
            f" {mode} | incident {getattr(app, 'incident', '') or '-'} | "
            f"operator {getattr(app, 'operator', '')}")
        for m in ("live", "dry-run", "exercise"):
            self.set_class(getattr(app, "mode", "") == m, f"-{m}")
