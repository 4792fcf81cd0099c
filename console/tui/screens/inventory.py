"""The inventory: every approved integration with the live state of its kill points."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label
from textual.worker import Worker, WorkerState

from console.errors import ConsoleError
from console.inventory import matches_text, select
from console.tui.widgets.banner import ModeBanner

if TYPE_CHECKING:
    from console.engine.observe import PointState
    from console.inventory import Integration
    from console.tui.app import KillswitchApp

__all__ = ["InventoryScreen", "STATE_COLUMNS", "filter_integrations"]

STATE_COLUMNS = ("keys", "flags", "batches", "egress")
"""The live kill-point columns (see ``console.engine.observe.KILL_POINT_PROBES``)."""
SHORT_STATE = {"ok": "ok", "disabled": "off", "partial": "part", "unknown": "unk", "-": "-",
               "...": "..."}
"""State words in the narrow layout."""
PAGE = 60
"""Rows added to the table at a time; more are added as the cursor or scroll nears the end."""
OBSERVE_CHUNK = 100
"""Integrations observed per engine call (states fill in chunk by chunk)."""
MARK = "\u25cf"

# column key -> (label, narrow label, width; 0 = computed)
_COLUMNS: dict[str, tuple[str, str, int]] = {
    "mark": ("", "", 1), "id": ("id", "id", 0), "name": ("name", "name", 26),
    "provider": ("provider", "prov", 9), "env": ("env", "env", 7),
    "data": ("data classes", "data", 18), "owner": ("owner", "owner", 22),
    "status": ("status", "status", 9), "keys": ("keys", "keys", 8),
    "flags": ("flags", "flag", 8), "batches": ("batches", "bat", 8),
    "egress": ("egress", "egr", 8),
}
_LAYOUTS: dict[str, tuple[str, ...]] = {
    "wide": tuple(_COLUMNS),
    "medium": ("mark", "id", "provider", "env", "data", "status", *STATE_COLUMNS),
    "narrow": ("mark", "id", "env", "status", *STATE_COLUMNS),
}
_SORTABLE = ("id", "env", "status", "provider", "owner", *STATE_COLUMNS)
_STATE_ORDER = {"unknown": 0, "ok": 1, "partial": 2, "disabled": 3, "-": 4, "...": 5}


def filter_integrations(items: list[Integration], text: str) -> list[Integration]:
    """Filter as the CLI selects, plus free text.

    Tokens with ``=`` are selectors (``provider=openai env=prod``, see
    :func:`console.inventory.select`); other tokens must each match as free text (id, name,
    owner or provider).

    Raises:
        UsageError: An invalid selector.
    """
    tokens = text.split()
    selectors = [t for t in tokens if "=" in t]
    words = [t for t in tokens if "=" not in t]
    out = select(items, selectors) if selectors else list(items)
    if words:
        out = [i for i in out if all(matches_text(i, w) for w in words)]
    return out


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "\u2026"


class InventoryScreen(Screen[None]):
    """The approved integrations, their kill points' live state, marks and filter.

    | key    | action                                                    |
    |--------|-----------------------------------------------------------|
    | /      | filter as you type: ``env=prod provider=openai`` or words |
    | escape | leave the filter; again: clear it                         |
    | space  | mark / unmark the row                                     |
    | a      | mark every visible row (again: unmark them)               |
    | c      | clear all marks                                           |
    | s / S  | sort by the next column / reverse the order               |
    | enter  | open the detail of the row                                |
    | r      | runbooks for the marked rows (or the row under the cursor)|
    | R      | refresh the live kill-point states                        |
    """

    BINDING_GROUP_TITLE = "Inventory"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="inventory.filter",
                tooltip="Filter as you type: env=prod provider=openai, or free text"),
        Binding("space", "mark", "Mark", id="inventory.mark",
                tooltip="Mark or unmark the integration under the cursor"),
        Binding("enter", "open", "Detail", id="inventory.open", priority=True,
                tooltip="Everything about the integration under the cursor"),
        Binding("r", "runbooks", "Runbook", id="inventory.runbook",
                tooltip="Pick a runbook for the marked integrations"),
        Binding("a", "mark_all", "Mark all", id="inventory.mark-all", show=False,
                tooltip="Mark every visible integration (again: unmark them)"),
        Binding("c", "clear_marks", "Clear marks", id="inventory.clear-marks", show=False,
                tooltip="Unmark everything"),
        Binding("s", "sort", "Sort", id="inventory.sort", show=False,
                tooltip="Sort by the next column"),
        Binding("S", "sort_reverse", "Reverse sort", id="inventory.sort-reverse", show=False,
                tooltip="Reverse the sort order"),
        Binding("R", "refresh_states", "Refresh states", id="inventory.refresh", show=False,
                tooltip="Observe every kill point again (read-only)"),
        Binding("escape", "escape", "Leave filter", id="inventory.escape", show=False,
                tooltip="Leave the filter; again: clear it"),
    ]

    class StatesObserved(Message):
        """The live kill-point states were read."""

        def __init__(self, states: dict[str, dict[str, PointState]], last: bool) -> None:
            super().__init__()
            self.states = states
            """Integration id -> column -> state (one chunk of the inventory)."""
            self.last = last
            """True for the last chunk."""

    app: KillswitchApp

    def __init__(self) -> None:
        super().__init__(id="inventory")
        self._visible: list[Integration] = []
        self._loaded = 0
        self._layout = ""
        self._sort: str | None = None
        self._reverse = False
        self._filter_error = ""
        self._states_note = "states: observing..."
        self._unknown = 0
        self._hay: dict[str, str] = {}
        self._last_text = ""
        self.filter_seconds = 0.0
        """How long the last filter took to update the table (benchmarks)."""
        self.filter_done_at = 0.0
        """``perf_counter()`` when the table last showed a new filter result (benchmarks)."""

    # -- composition ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        """Banner, filter, message line, table, status line, footer."""
        yield ModeBanner()
        yield Input(placeholder="/ filter: env=prod provider=openai, or free text",
                    id="inventory-filter")
        yield Label("", id="inventory-message")
        table: DataTable[str] = DataTable(id="inventory-table", cursor_type="row",
                                          zebra_stripes=True)
        yield table
        yield Label("", id="inventory-status")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table, focus it, and start observing states in the background."""
        self._visible = list(self.app.config.integrations)
        self._unsorted = list(self._visible)
        self._build(self.app.size.width)
        self.table.focus()
        self.watch(self.app, "marked", self._marks_changed, init=False)
        self.watch(self.table, "scroll_y", self._scrolled, init=False)
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        """Start-up is over: the collector comes back, states are observed."""
        startup_finished = getattr(self.app, "startup_finished", None)
        if startup_finished is not None:
            startup_finished()
        self.action_refresh_states()

    @property
    def table(self) -> DataTable[str]:
        """The inventory table."""
        return self.query_one("#inventory-table", DataTable)

    @property
    def shown(self) -> list[Integration]:
        """The integrations passing the filter, in display order."""
        return list(self._visible)

    # -- layout and rows -----------------------------------------------------------------
    def _choose_layout(self, width: int) -> tuple[str, int]:
        longest = max((len(i.id) for i in self.app.config.integrations), default=8)
        for name in ("wide", "medium"):
            cols = _LAYOUTS[name]
            fixed = sum(_COLUMNS[c][2] for c in cols) + 2 * len(cols) + 2
            if width - fixed >= min(longest, 20):
                return name, max(min(longest, width - fixed), 4)
        cols = _LAYOUTS["narrow"]
        fixed = sum(4 if c in STATE_COLUMNS else _COLUMNS[c][2] for c in cols)
        return "narrow", max(min(longest, width - fixed - 2 * len(cols) - 2), 8)

    def _build(self, width: int) -> None:
        """(Re)build columns for ``width`` and the rows."""
        layout, id_width = self._choose_layout(width)
        self._layout = layout
        self._id_width = id_width
        self.set_class(layout == "narrow", "-narrow")
        table = self.table
        table.clear(columns=True)
        narrow = layout == "narrow"
        for key in _LAYOUTS[layout]:
            label, short, w = _COLUMNS[key]
            text = short if narrow else label
            if key == self._sort:
                text += " \u25bc" if self._reverse else " \u25b2"
            if key == "id":
                w = id_width
            elif narrow and key in STATE_COLUMNS:
                w = 4
            table.add_column(text, key=key, width=max(w, len(text)))
        self._fill()

    def _cells(self, integ: Integration) -> list[str]:
        narrow = self._layout == "narrow"
        states = self.app.states.get(integ.id, {})
        out: list[str] = []
        for key in _LAYOUTS[self._layout]:
            if key == "mark":
                out.append(MARK if integ.id in self.app.marked else "")
            elif key == "id":
                out.append(_fit(integ.id, self._id_width))
            elif key in STATE_COLUMNS:
                word = states[key].state if key in states else "..."
                out.append(SHORT_STATE.get(word, word) if narrow else word)
            else:
                value = {"name": integ.name, "provider": integ.provider,
                         "env": integ.environment, "data": ",".join(integ.data_classes),
                         "owner": integ.owner, "status": integ.status}[key]
                out.append(_fit(value, _COLUMNS[key][2]))
        return out

    def _fill(self) -> None:
        """Replace the rows with the first page(s) of the visible integrations."""
        table = self.table
        keep = self.cursor_id()
        loaded = min(len(self._visible), max(PAGE, self._loaded if keep else PAGE))
        table.clear()
        self._loaded = 0
        self._load(loaded)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self._status()
        self.refresh_bindings()

    def _load(self, count: int) -> None:
        """Append up to ``count`` more rows."""
        chunk = self._visible[self._loaded:self._loaded + count]
        for integ in chunk:
            self.table.add_row(*self._cells(integ), key=integ.id)
        self._loaded += len(chunk)

    def _more(self) -> None:
        if self._loaded < len(self._visible):
            self._load(PAGE)
            self._status()

    def _scrolled(self, _old: float, new: float) -> None:
        if new + self.table.size.height >= self._loaded - 10:
            self._more()

    def on_resize(self) -> None:
        """Switch layout (``-narrow`` below about 100 columns)."""
        layout, id_width = self._choose_layout(self.size.width)
        if (layout, id_width) != (self._layout, getattr(self, "_id_width", 0)):
            self._build(self.size.width)

    def _status(self) -> None:
        total = len(self.app.config.integrations)
        parts = [f"{len(self._visible)} of {total}"]
        if self._loaded < len(self._visible):
            parts.append(f"{self._loaded} loaded, scroll for more")
        parts.append(f"{len(self.app.marked)} marked")
        if self._sort:
            parts.append(f"sort {self._sort}{' desc' if self._reverse else ''}")
        parts.append(self._states_note)
        self.query_one("#inventory-status", Label).update(" | ".join(parts))

    def cursor_id(self) -> str | None:
        """Id of the integration under the cursor."""
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - a cursor out of range means "no row"
            return None
        return str(key.value) if key.value is not None else None

    # -- filter --------------------------------------------------------------------------
    @on(Input.Changed, "#inventory-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> None:
        """Show the integrations matching ``text``; an invalid selector only says so."""
        start = time.perf_counter()
        message = self.query_one("#inventory-message", Label)
        error: ConsoleError | None = None
        if "=" not in text:  # free text only: the fast path, narrowing while typing on
            visible = self._free_text(text)
        else:
            tokens = text.split()
            while True:  # ends: no tokens cannot fail
                try:
                    visible = filter_integrations(self.app.config.integrations,
                                                  " ".join(tokens))
                    break
                except ConsoleError as exc:  # say so, and filter by the other tokens
                    error = error or exc
                    tokens.remove(exc.where if exc.where in tokens else tokens[-1])
        self._last_text = text if error is None else "="
        self._filter_error = error.msg if error else ""
        message.update(f"{error.msg}" + (f" ({error.hint})" if error.hint else "")
                       if error else "")
        message.set_class(error is not None, "-shown")
        self._unsorted = visible
        self._visible = self._sorted(visible)
        self._loaded = 0
        self._fill()
        self.filter_done_at = time.perf_counter()
        self.filter_seconds = self.filter_done_at - start

    def _free_text(self, text: str) -> list[Integration]:
        """Same result as :func:`filter_integrations` for text without selectors, faster.

        Each token must be a substring of id, name, owner or provider (as ``matches_text``);
        when the text only grew, only the previous result is searched.
        """
        integrations = self.app.config.integrations
        if not self._hay:
            self._hay = {i.id: "\0".join((i.id, i.name, i.owner, i.provider)).lower()
                         for i in integrations}
        words = text.lower().split()
        prev = self._last_text
        narrowing = "=" not in prev and text.startswith(prev) and bool(prev.strip())
        base = self._unsorted if narrowing else integrations
        hay = self._hay
        out = [i for i in base if all(w in hay[i.id] for w in words)]
        return out

    def action_focus_filter(self) -> None:
        """Type a filter."""
        self.query_one("#inventory-filter", Input).focus()

    def action_escape(self) -> None:
        """Leave the filter; on the table, clear it."""
        box = self.query_one("#inventory-filter", Input)
        if box.has_focus:
            self.table.focus()
        elif box.value:
            box.value = ""

    # -- marks ---------------------------------------------------------------------------
    def action_mark(self) -> None:
        """Mark or unmark the row under the cursor."""
        row = self.cursor_id()
        if row is not None:
            self.app.marked = self.app.marked ^ {row}

    def action_mark_all(self) -> None:
        """Mark every visible integration; if they all are, unmark them."""
        ids = {i.id for i in self._visible}
        marked = self.app.marked
        self.app.marked = marked - ids if ids <= marked else marked | ids

    def action_clear_marks(self) -> None:
        """Unmark everything."""
        self.app.marked = frozenset()

    def _marks_changed(self, old: frozenset[str], new: frozenset[str]) -> None:
        table = self.table
        if "mark" in table.columns:
            for row in old ^ new:
                if row in table.rows:
                    table.update_cell(row, "mark", MARK if row in new else "")
        self._status()
        self.refresh_bindings()

    # -- sort ----------------------------------------------------------------------------
    def _sort_key(self) -> Callable[[Integration], Any]:
        column = self._sort
        if column in STATE_COLUMNS:
            def key(i: Integration) -> Any:
                state = self.app.states.get(i.id, {}).get(column)
                return (_STATE_ORDER.get(state.state if state else "...", 9), i.id)
            return key
        attr = "environment" if column == "env" else column or "id"
        return lambda i: (str(getattr(i, attr)), i.id)

    def _sorted(self, items: list[Integration]) -> list[Integration]:
        if self._sort is None:
            return items
        return sorted(items, key=self._sort_key(), reverse=self._reverse)

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        """Sort the visible rows by ``column`` (None: inventory order)."""
        self._sort, self._reverse = column, reverse
        if column is None:
            order = {i.id: n for n, i in enumerate(self.app.config.integrations)}
            self._visible.sort(key=lambda i: order[i.id])
        else:
            self._visible = self._sorted(self._visible)
        self._build(self.size.width or self.app.size.width)

    def action_sort(self) -> None:
        """Sort by the next column."""
        cycle = [c for c in _SORTABLE if c in _LAYOUTS[self._layout] or c == "id"]
        nxt = cycle[(cycle.index(self._sort) + 1) % len(cycle)] if self._sort in cycle else \
            cycle[0]
        self.sort_by(nxt)

    def action_sort_reverse(self) -> None:
        """Reverse the order."""
        self.sort_by(self._sort or "id", not self._reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """Click a header to sort by it; again to reverse."""
        column = str(event.column_key.value)
        if column in _SORTABLE:
            self.sort_by(column, not self._reverse if column == self._sort else False)

    # -- navigation ----------------------------------------------------------------------
    def action_open(self) -> None:
        """Open the detail (from the filter: go to the table)."""
        if self.query_one("#inventory-filter", Input).has_focus:
            self.table.focus()
            return
        row = self.cursor_id()
        if row is not None:
            self.app.open_detail(row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A click on the highlighted row opens it."""
        if event.row_key.value is not None:
            self.app.open_detail(str(event.row_key.value))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Load more rows near the end."""
        if event.cursor_row >= self._loaded - 15:
            self._more()
        self.refresh_bindings()

    def runbook_targets(self) -> list[str]:
        """The marked integrations in inventory order, else the row under the cursor."""
        marked = self.app.marked
        if marked:
            return [i.id for i in self.app.config.integrations if i.id in marked]
        row = self.cursor_id()
        return [row] if row else []

    def action_runbooks(self) -> None:
        """Pick a runbook for the marked integrations."""
        ids = self.runbook_targets()
        if ids:
            self.app.open_runbooks(ids)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out what cannot run: nothing under the cursor, nothing marked."""
        if action in ("mark", "open"):
            return None if self.cursor_id() is None else True
        if action == "mark_all":
            return True if self._visible else None
        if action == "clear_marks":
            return True if self.app.marked else None
        if action == "runbooks":
            return True if self.runbook_targets() else None
        return True

    # -- live states ---------------------------------------------------------------------
    def action_refresh_states(self) -> None:
        """Observe every kill point again (read-only, in the background)."""
        self._states_note = "states: observing..."
        self._unknown = 0
        self._status()
        self._observe(list(self.app.config.integrations))

    @work(thread=True, exclusive=True, exit_on_error=False, group="states",
          description="observe kill-point states")
    def _observe(self, integrations: list[Integration]) -> None:
        """Observe in chunks, the rows on screen first, so states fill in progressively."""
        from textual.worker import get_current_worker

        from console.engine.observe import observe_states

        worker = get_current_worker()
        first = {i.id for i in self._visible[: self._loaded]}
        ordered = ([i for i in integrations if i.id in first]
                   + [i for i in integrations if i.id not in first])
        for n in range(0, len(ordered), OBSERVE_CHUNK):
            if worker.is_cancelled:
                return
            chunk = ordered[n:n + OBSERVE_CHUNK]
            states = asyncio.run(observe_states(self.app.config, chunk))
            self.post_message(self.StatesObserved(states, n + len(chunk) >= len(ordered)))

    def on_inventory_screen_states_observed(self, event: StatesObserved) -> None:
        """Show the new states."""
        self.app.states.update(event.states)
        self._unknown += sum(1 for row in event.states.values()
                             for s in row.values() if s.state == "unknown")
        if event.last:
            self._states_note = "states: observed" + (
                f", {self._unknown} unknown" if self._unknown else "")
        else:
            done = sum(1 for i in self.app.config.integrations if i.id in self.app.states)
            self._states_note = f"states: observing... {done}"
        self._refresh_state_cells(set(event.states))

    def _refresh_state_cells(self, only: set[str] | None = None) -> None:
        table = self.table
        narrow = self._layout == "narrow"
        for integ in self._visible[: self._loaded]:
            if only is not None and integ.id not in only:
                continue
            row = self.app.states.get(integ.id, {})
            for column in STATE_COLUMNS:
                word = row[column].state if column in row else "..."
                table.update_cell(integ.id, column, SHORT_STATE.get(word, word) if narrow
                                  else word)
        self._status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Any engine failure ends here: the states become unknown, with the message."""
        if event.state != WorkerState.ERROR or event.worker.group != "states":
            return
        from console.engine.observe import KILL_POINT_PROBES, PointState

        error = event.worker.error
        text = getattr(error, "msg", None) or str(error) or type(error).__name__
        for integ in self.app.config.integrations:
            self.app.states[integ.id] = {
                c: PointState("-" if not getattr(integ, kp) else "unknown", text)
                for c, (kp, _a) in KILL_POINT_PROBES.items()}
        self._states_note = f"states: failed: {text}"
        self._refresh_state_cells()
