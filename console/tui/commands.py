"""Command palette (ctrl+p): "group: verb" commands that follow the console's state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.vocab import mode_sentence

if TYPE_CHECKING:
    from console.tui.app import KillswitchApp
    from console.tui.screens.inventory import InventoryScreen

__all__ = ["KillswitchCommands", "commands"]

Command = tuple[str, str, Callable[[], object]]
"""(name, help, callback)."""


def _filter(app: KillswitchApp, inv: InventoryScreen) -> None:
    """Go to the inventory and put the cursor in its filter."""
    app.action_inventory()
    inv.action_focus_filter()


def _inventory(app: KillswitchApp) -> InventoryScreen | None:
    from console.tui.screens.inventory import InventoryScreen

    return next((s for s in app.screen_stack if isinstance(s, InventoryScreen)), None)


def commands(app: KillswitchApp) -> Iterator[Command]:
    """The commands that can run now, in palette order."""
    inv = _inventory(app)
    if inv is not None:
        yield ("inventory: filter", "Type a filter: env=prod provider=openai or free text",
               lambda: _filter(app, inv))
        yield ("inventory: mark all", "Mark every visible integration", inv.action_mark_all)
        if app.marked:
            yield ("inventory: clear marks", f"Unmark {len(app.marked)} integration(s)",
                   inv.action_clear_marks)
        for column in ("id", "env", "status", "provider", "keys", "flags"):
            yield (f"inventory: sort by {column}", f"Sort the inventory by {column}",
                   partial(inv.sort_by, column))
        targets = inv.runbook_targets()
        if targets:
            yield ("runbook: pick", f"Runbooks for {', '.join(targets[:3])}"
                   + ("..." if len(targets) > 3 else ""), partial(app.open_runbooks, targets))
        yield ("inventory: refresh states", "Observe every kill point again (read-only)",
               inv.action_refresh_states)
    target = app.applying_mode if app.mode == "dry-run" else "dry-run"
    yield (f"mode: switch to {target}", f"{mode_sentence(target)} (type {target.upper()})",
           app.action_toggle_live)
    yield ("audit: open", "The audit trail, its chain status and reports", app.action_audit)
    yield ("help: keys", "Every key of every screen", app.action_help)
    yield ("app: quit", "Leave the console (asks first while a run is in progress)",
           app.action_quit)


class KillswitchCommands(Provider):
    """The console's commands, plus "detail: open ID" for every integration when searching."""

    @property
    def console(self) -> KillswitchApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    async def discover(self) -> Hits:
        """Commands shown before anything is typed."""
        for name, help_text, callback in commands(self.console):
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Commands matching ``query`` (fuzzy)."""
        matcher = self.matcher(query)
        app = self.console
        for name, help_text, callback in commands(app):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
        words = query.lower().split()
        needle = words[-1] if words else ""
        shown = 0
        for integ in app.config.integrations:
            if shown >= 50:
                break
            if needle not in integ.id and needle not in "detail: open":
                continue
            name = f"detail: open {integ.id}"
            score = matcher.match(name)
            if score > 0:
                shown += 1
                yield Hit(score * 0.9, matcher.highlight(name),
                          partial(app.open_detail, integ.id), help=integ.name)
