"""Every key of every screen, read from the screens' own BINDINGS so it never goes stale."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from console.tui.layout import fit_widths, is_narrow, table_width
from console.tui.widgets.banner import ModeBanner
from console.vocab import MODE_MEANING, mode_sentence

if TYPE_CHECKING:
    from textual.dom import DOMNode

__all__ = ["HelpScreen", "SCREENS", "key_rows"]

SCREENS: tuple[tuple[str, str], ...] = (
    ("console.tui.app", "KillswitchApp"),
    ("console.tui.screens.inventory", "InventoryScreen"),
    ("console.tui.screens.detail", "DetailScreen"),
    ("console.tui.screens.runbook", "RunbookScreen"),
    ("console.tui.screens.plan", "PlanScreen"),
    ("console.tui.screens.run", "RunScreen"),
    ("console.tui.screens.audit", "AuditScreen"),
    ("console.tui.screens.report", "ReportScreen"),
    ("console.tui.screens.team", "TeamScreen"),
    ("console.tui.screens.approvals", "ApprovalsScreen"),
    ("console.tui.screens.approvals", "ApprovalReviewScreen"),
    ("console.tui.widgets.confirm_mode", "ConfirmModeModal"),
    ("console.tui.screens.help", "HelpScreen"),
)
"""(module, class) of every screen whose keys are listed, in the order shown."""

EXERCISE_SCREENS: tuple[tuple[str, str], ...] = (
    ("console.tui.screens.exercise", "ScenarioPicker"),
    ("console.tui.screens.exercise", "FacilitatorModal"),
    ("console.tui.screens.exercise", "ScorecardModal"),
)
"""The exercise's dialogs: listed (before the help's own keys) on a sandbox config only, the
one kind of config an exercise plays on."""


def _classes(exercise: bool = False) -> list[type[DOMNode]]:
    out: list[type[DOMNode]] = []
    screens = [*SCREENS[:-1], *EXERCISE_SCREENS, SCREENS[-1]] if exercise else SCREENS
    for module, name in screens:
        try:
            out.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # a screen not written yet lists no keys
            continue
    return out


def key_rows(app: App[object]) -> list[tuple[str, str, str, str]]:
    """``(group, key, action, description)`` for every binding, keymap applied.

    Args:
        app: The running app (its keymap and key display).
    """
    rows: list[tuple[str, str, str, str]] = []
    keymap = getattr(app, "_keymap", {}) or {}
    for cls in _classes(exercise=getattr(app, "exercise", False) is True):
        bindings: list[BindingType] = list(getattr(cls, "BINDINGS", []))
        title = getattr(cls, "BINDING_GROUP_TITLE", None) or cls.__name__
        if issubclass(cls, App):
            title = "Everywhere"
            bindings += [Binding(app.COMMAND_PALETTE_BINDING, "command_palette",
                                 "Commands", tooltip='Command palette: "group: verb"')]
        bmap = BindingsMap(bindings)
        if keymap:
            bmap.apply_keymap(keymap)
        seen: set[tuple[str, str]] = set()
        for _key, binding in bmap:
            if binding.system or (binding.id or binding.action, binding.key) in seen:
                continue
            if cls is type(app) and app.check_action(binding.action, ()) is False:
                continue  # a key this console does not offer (f2 without a sandbox)
            seen.add((binding.id or binding.action, binding.key))
            rows.append((title, app.get_key_display(binding), binding.description or
                         binding.action, binding.tooltip or ""))
    return rows


class HelpScreen(Screen[None]):
    """The three modes, then every key of every screen.

    The columns fit the terminal's width; long descriptions wrap onto more lines, so the help
    scrolls up and down, never sideways (80x24 included).

    | key         | action             |
    |-------------|--------------------|
    | escape / q  | close the help     |
    | up / down   | scroll             |
    """

    BINDING_GROUP_TITLE = "Help"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close", tooltip="Back where you were"),
        Binding("q", "close", "Close", id="help.close-q", show=False,
                tooltip="Back where you were"),
    ]

    def __init__(self) -> None:
        super().__init__(id="help")
        self._width = 0

    def compose(self) -> ComposeResult:
        """Banner, the modes, title, the key table, footer."""
        yield ModeBanner()
        yield Static("\n".join(f"{mode_sentence(m)}." for m in MODE_MEANING)
                     + "\nctrl+l switches mode: type the new mode's name.", id="help-modes")
        yield Label("Keys (arrows, page up/down and the mouse work everywhere)",
                    id="help-title")
        yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table from the screens' bindings, sized to the terminal."""
        self._build(self.app.size.width)
        self.query_one("#help-table", DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        """Fit the columns to the new width."""
        self._build(event.size.width)

    def _build(self, width: int) -> None:
        """Columns that fit ``width`` (never a horizontal scroll); long text wraps."""
        if self._width == width:
            return
        self._width = width
        rows = key_rows(self.app)
        longest = [max([len(label), *(len(r[n]) for r in rows)])
                   for n, label in enumerate(("screen", "key", "does", "details"))]
        does_w = longest[2] if not is_narrow(width) else min(longest[2], 16)  # wraps past 16
        widths = fit_widths(table_width(width),
                            [(longest[0], longest[0]), (longest[1], longest[1]),
                             (does_w, 8), (longest[3], 16)])
        table: DataTable[Text | str] = self.query_one("#help-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for key, w in zip(("screen", "key", "does", "details"), widths, strict=True):
            table.add_column(key, key=key, width=w)
        last = ""
        for n, (group, key, does, details) in enumerate(rows):
            table.add_row(group if group != last else "", key, Text(does), Text(details),
                          key=f"k{n}", height=None)
            last = group
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))

    def action_close(self) -> None:
        """Close the help."""
        self.app.pop_screen()
