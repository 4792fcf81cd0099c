"""The inventory's table: a line-API widget that renders only the lines on screen.

Filtering replaces a list of ids and each row's line is cached until it changes, so a
keystroke costs the same with 10 or 10,000 integrations (``benchmarks/tui.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

if TYPE_CHECKING:
    from console.engine.observe import PointState

__all__ = ["MARK", "NOT_OBSERVED", "STATE_COLUMNS", "Cell", "Column", "InventoryTable",
           "state_cell"]

STATE_COLUMNS = ("keys", "flags", "batches", "egress")
"""The kill-point columns, in inventory order."""
MARK = "\u25cf"
NOT_OBSERVED = "..."
"""Shown until a kill point is first observed."""


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "\u2026"


def state_cell(state: PointState | None, width: int = 11) -> tuple[str, str]:
    """The word of a state for a column ``width`` wide, and its style name.

    ``partial`` carries ``n/m`` (references off / listed) when it fits.
    """
    if state is None:
        return NOT_OBSERVED, "pending"
    word = state.state
    if word == "partial":
        count = state.detail.split(" ", 1)[0]
        text = f"partial {count}"
        return (text if len(text) <= width else "partial"), "partial"
    return word, word if word in ("live", "off", "unknown") else ""


@dataclass(frozen=True)
class Column:
    """One column of :class:`InventoryTable`."""

    key: str
    """Key (``id``, ``keys``, ...)."""
    label: str
    """Header text."""
    width: int
    """Cells are cut (``…``) or padded to this width; one space either side."""


Cell = tuple[str, str]
"""A cell: its text and a style name (``live``, ``off``, ``partial``, ``unknown``, ``pending``,
``locked`` or ``""``): ``inventory-table--<name>``."""


class InventoryTable(ScrollView, can_focus=True):
    """The inventory's rows: a header, the rows on screen, a line about the highlighted row.

    Only the lines on screen are rendered, and each row's line is cached until
    :meth:`refresh_rows` says it changed: replacing every row (:meth:`set_rows`) costs what a
    screenful of lines costs.

    | key              | action                 |
    |------------------|------------------------|
    | up / down        | previous / next row    |
    | pageup / pagedown| a screenful up / down  |
    | home / end       | first / last row       |

    Args:
        cells: The cells of a row, by id, in column order.
        describe: The line under the table for the highlighted row's id.
    """

    DEFAULT_CSS = """
    InventoryTable {
        background: $surface;
        color: $foreground;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
        overflow-x: hidden;
        &:focus {
            background-tint: $foreground 5%;
            & > .inventory-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .inventory-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .inventory-table--even-row {
            background: $surface-lighten-1 50%;
        }
        &:dark > .inventory-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .inventory-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .inventory-table--detail {
            background: $panel;
            color: $foreground;
        }
        & > .inventory-table--live { text-style: bold; }
        & > .inventory-table--off { color: $text-success; }
        & > .inventory-table--partial { color: $text-warning; text-style: bold; }
        & > .inventory-table--unknown { color: $text-error; text-style: bold; }
        & > .inventory-table--pending { color: $text-muted; }
        & > .inventory-table--locked { color: $text-warning; text-style: bold reverse; }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "inventory-table--header", "inventory-table--even-row", "inventory-table--cursor",
        "inventory-table--detail", "inventory-table--live", "inventory-table--off",
        "inventory-table--partial", "inventory-table--unknown", "inventory-table--pending",
        "inventory-table--locked",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False, id="inventory.cursor-up",
                tooltip="The row above"),
        Binding("down", "cursor(1)", "Down", show=False, id="inventory.cursor-down",
                tooltip="The row below"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="inventory.page-up",
                tooltip="A screenful up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="inventory.page-down",
                tooltip="A screenful down"),
        Binding("home", "cursor_to(0)", "First", show=False, id="inventory.first",
                tooltip="The first row"),
        Binding("end", "cursor_to(-1)", "Last", show=False, id="inventory.last",
                tooltip="The last row"),
    ]

    class RowHighlighted(Message):
        """The cursor moved to another row (or the rows under it changed)."""

        def __init__(self, row_id: str | None) -> None:
            super().__init__()
            self.row_id = row_id
            """The highlighted row's id (None: no rows)."""

    class RowSelected(Message):
        """The highlighted row was clicked."""

        def __init__(self, row_id: str) -> None:
            super().__init__()
            self.row_id = row_id
            """The row's id."""

    class HeaderSelected(Message):
        """A column header was clicked."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column
            """The column's key."""

    def __init__(self, cells: Callable[[str], Sequence[Cell]],
                 describe: Callable[[str], str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cells = cells
        self._describe = describe
        self._columns: list[Column] = []
        self._ids: list[str] = []
        self._cursor = 0
        self._lines: dict[tuple[str, int], Strip] = {}
        self._header: Strip | None = None
        self._styles: dict[str, Style] = {}

    # -- data ----------------------------------------------------------------------------
    @property
    def columns(self) -> list[Column]:
        """The columns, left to right."""
        return list(self._columns)

    @property
    def row_ids(self) -> list[str]:
        """The ids of the rows, top to bottom."""
        return self._ids

    @property
    def row_count(self) -> int:
        """How many rows there are (on screen or not)."""
        return len(self._ids)

    @property
    def cursor_row(self) -> int:
        """Index of the highlighted row (0 when there are none)."""
        return self._cursor

    @property
    def cursor_id(self) -> str | None:
        """Id of the highlighted row (None: no rows)."""
        return self._ids[self._cursor] if self._ids else None

    @property
    def rows_on_screen(self) -> list[str]:
        """Ids of the rows in view."""
        top = int(self.scroll_offset.y)
        return self._ids[top:top + max(self._body_height, 1)]

    def get_cell(self, row_id: str, column: str) -> str:
        """The text of a cell as shown."""
        keys = [c.key for c in self._columns]
        return self._cells(row_id)[keys.index(column)][0]

    def get_row(self, row_id: str) -> list[str]:
        """The texts of a row as shown."""
        return [text for text, _style in self._cells(row_id)]

    @property
    def detail_text(self) -> str:
        """The line under the table (about the highlighted row)."""
        row = self.cursor_id
        return self._describe(row) if row is not None else ""

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Replace the columns (every line is rendered again)."""
        self._columns = list(columns)
        self._forget()
        self._resize()
        self.refresh()

    def set_rows(self, ids: list[str]) -> None:
        """Replace the rows; the cursor stays on its row when it is still there."""
        keep = self.cursor_id
        self._ids = ids
        self._cursor = 0
        if keep is not None and ids and ids[0] != keep:
            try:
                self._cursor = ids.index(keep)
            except ValueError:
                self._cursor = 0
        self._resize()
        self._scroll_to_cursor()
        self.refresh()
        if self.cursor_id != keep:
            self.post_message(self.RowHighlighted(self.cursor_id))

    def refresh_rows(self, ids: Iterable[str] | None = None) -> None:
        """These rows' cells changed (None: every row's)."""
        if ids is None:
            self._forget()
            self.refresh()
            return
        changed = set(ids)
        if not changed:
            return
        for key in [k for k in self._lines if k[0] in changed]:
            del self._lines[key]
        top = int(self.scroll_offset.y)
        for y, row in enumerate(self.rows_on_screen, start=1):
            if row in changed:
                self.refresh_line(top + y)
        if self.cursor_id in changed:
            self.refresh_detail()

    def refresh_detail(self) -> None:
        """Draw the line under the table again (it says how long ago a row was observed)."""
        self.refresh_line(int(self.scroll_offset.y) + self.size.height - 1)

    def move_cursor(self, row: int) -> None:
        """Highlight the row at index ``row`` (clamped) and scroll it into view."""
        if not self._ids:
            return
        row = max(0, min(row, len(self._ids) - 1))
        if row == self._cursor:
            return
        old = self._cursor
        self._cursor = row
        if not self._scroll_to_cursor():
            self.refresh_line(old + 1)
            self.refresh_line(row + 1)
            self.refresh_detail()
        self.post_message(self.RowHighlighted(self.cursor_id))

    # -- keys and mouse ------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        """Move the cursor by ``delta`` rows."""
        self.move_cursor(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        """Move the cursor by a screenful."""
        self.move_cursor(self._cursor + direction * max(self._body_height - 1, 1))

    def action_cursor_to(self, row: int) -> None:
        """Go to the first (0) or last (-1) row."""
        self.move_cursor(row if row >= 0 else len(self._ids) - 1)

    def on_click(self, event: events.Click) -> None:
        """Header: sort by it; a row: highlight it, or (highlighted) select it."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 0
            for column in self._columns:
                x += column.width + 2
                if offset.x < x:
                    self.post_message(self.HeaderSelected(column.key))
                    return
            return
        if offset.y > self._body_height:
            return
        row = int(self.scroll_offset.y) + offset.y - 1
        if row >= len(self._ids):
            return
        if row == self._cursor:
            self.post_message(self.RowSelected(self._ids[row]))
        else:
            self.move_cursor(row)

    def on_focus(self) -> None:
        """The cursor's style depends on focus."""
        self._forget()
        self.refresh()

    def on_blur(self) -> None:
        """The cursor's style depends on focus."""
        self._forget()
        self.refresh()

    def on_resize(self) -> None:
        """Keep the cursor in view."""
        self._resize()
        self._scroll_to_cursor()

    def notify_style_update(self) -> None:
        """Theme or state class changed: every line is rendered again."""
        super().notify_style_update()
        self._styles = {}
        self._forget()

    # -- rendering -----------------------------------------------------------------------
    @property
    def _body_height(self) -> int:
        return max(self.size.height - 2, 0)

    def _resize(self) -> None:
        width = sum(c.width + 2 for c in self._columns)
        self.virtual_size = Size(width, len(self._ids) + 2)

    def _forget(self) -> None:
        self._lines = {}
        self._header = None

    def _scroll_to_cursor(self) -> bool:
        """Scroll so the cursor's row is in view; True when it scrolled."""
        height = self._body_height
        if not height:
            return False
        top = int(self.scroll_offset.y)
        if self._cursor < top:
            target = self._cursor
        elif self._cursor >= top + height:
            target = self._cursor - height + 1
        else:
            return False
        self.scroll_to(y=target, animate=False)
        self.refresh()
        return True

    def _style(self, name: str, partial: bool = False) -> Style:
        key = f"{name}{'~' if partial else ''}"
        if key not in self._styles:
            self._styles[key] = self.get_component_rich_style(f"inventory-table--{name}",
                                                              partial=partial)
        return self._styles[key]

    def render_line(self, y: int) -> Strip:
        """Header, a row, or (last line) the highlighted row's detail."""
        width = self.size.width
        if y == 0:
            if self._header is None:
                header = self.rich_style + self._style("header")
                self._header = self._strip([(c.label, "") for c in self._columns], header,
                                           None, width)
            return self._header
        if y == self.size.height - 1 and self.size.height >= 3:
            text = _fit(self.detail_text, max(width - 2, 0))
            style = self.rich_style + self._style("detail")
            return Strip([Segment(f" {text}".ljust(width), style)], width)
        row = int(self.scroll_offset.y) + y - 1
        if row >= len(self._ids):
            return Strip.blank(width, self.rich_style)
        row_id = self._ids[row]
        kind = 2 if row == self._cursor else row % 2
        line = self._lines.get((row_id, kind))
        if line is None or line.cell_length != width:
            base = self.rich_style
            if kind == 0:
                base += self._style("even-row")
            over = self._style("cursor") if kind == 2 else None
            line = self._strip(self._cells(row_id), base, over, width)
            if len(self._lines) > 4000:
                self._lines = {}
            self._lines[(row_id, kind)] = line
        return line

    def _strip(self, cells: Sequence[Cell], base: Style, over: Style | None,
               width: int) -> Strip:
        segments: list[Segment] = []
        used = 0
        for column, (text, name) in zip(self._columns, cells, strict=False):
            style = base + self._style(name, partial=True) if name else base
            if over is not None:
                style += over
            cell = f" {_fit(text, column.width).ljust(column.width)} "
            segments.append(Segment(cell, style))
            used += len(cell)
        if used < width:
            segments.append(Segment(" " * (width - used), base + over if over else base))
        return Strip(segments).crop(0, width) if used > width else Strip(segments, width)


