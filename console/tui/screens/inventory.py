"""The inventory: every approved integration with the observed state of its kill points.

States come from the app's one store (:mod:`console.tui.observed`) in the words of
``console.engine.observe.STATE_WORDS``: ``live``, ``off``, ``partial`` (``partial n/m`` where
the column is wide enough), ``unknown`` and ``-`` (none listed); ``...`` until first observed.
The line under the table says why for the highlighted row (``partial 1/2 off``, ``unknown
(connection refused)``); colour only adds to the word.

The table is a line-API widget (:class:`InventoryTable`): filtering replaces a list of ids and
only the lines on screen are rendered, each row's line cached until it changes, so a
keystroke costs the same with 10 or 10,000 integrations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from console.errors import ConsoleError
from console.inventory import matches_text, select
from console.tui import messages
from console.tui.widgets.banner import ModeBanner
from console.tui.widgets.inventory_table import (
    MARK,
    NOT_OBSERVED,
    STATE_COLUMNS,
    Cell,
    Column,
    InventoryTable,
    state_cell,
)

if TYPE_CHECKING:
    from console.inventory import Integration
    from console.tui.app import KillswitchApp
    from console.tui.live import LiveChanged
    from console.tui.observed import StatesChanged

__all__ = ["MARK", "STATE_COLUMNS", "Column", "InventoryScreen", "InventoryTable",
           "filter_integrations", "state_cell"]

STATE_ORDER = {"unknown": 0, "live": 1, "partial": 2, "off": 3, "-": 4, NOT_OBSERVED: 5}
"""Sort order of a state column: what needs a look first."""

# column key -> (label, narrow label, width; 0 = computed, -1 = state column)
_COLUMNS: dict[str, tuple[str, str, int]] = {
    "mark": ("", "", 1), "id": ("id", "id", 0), "name": ("name", "name", 26),
    "provider": ("provider", "prov", 9), "env": ("env", "env", 7),
    "data": ("data classes", "data", 18), "owner": ("owner", "owner", 22),
    "status": ("status", "status", 9), "keys": ("keys", "keys", -1),
    "flags": ("flags", "flags", -1), "batches": ("batches", "batches", -1),
    "egress": ("egress", "egress", -1),
}
_LAYOUTS: dict[str, tuple[str, ...]] = {
    "wide": tuple(_COLUMNS),
    "medium": ("mark", "id", "provider", "env", "data", "status", *STATE_COLUMNS),
    "narrow": ("mark", "id", "env", "status", *STATE_COLUMNS),
}
_STATE_WIDTHS = (11, 7)
"""A state column fits ``partial 1/2`` when there is room, else ``partial``/``unknown``."""
_SORTABLE = ("id", "env", "status", "provider", "owner", *STATE_COLUMNS)
AGE_EVERY = 15.0
"""Seconds between redraws of the line saying how long ago the row was observed."""


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


class InventoryScreen(Screen[None]):
    """The approved integrations, their kill points' observed state, marks and filter.

    | key    | action                                                      |
    |--------|-------------------------------------------------------------|
    | /      | filter as you type: ``env=prod provider=openai`` or words   |
    | escape | leave the filter; cancel a refresh under way; clear filter  |
    | space  | mark / unmark the row                                       |
    | a      | mark every visible row (again: unmark them)                 |
    | c      | clear all marks                                             |
    | s / S  | sort by the next column / reverse the order                 |
    | enter  | open the detail of the row                                  |
    | r      | runbooks for the marked rows (or the row under the cursor)  |
    | R      | observe every kill point again                              |
    | t      | the team: every commander's runs, live; pending approvals   |

    An integration another commander's run holds the lock of shows ``LOCKED`` in its status
    column, and the line under the table names the holder (operator@host, run, since).
    """

    BINDING_GROUP_TITLE = "Inventory"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="inventory.filter", priority=True,
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
        Binding("t", "team", "Team", id="inventory.team", show=False,
                tooltip="Every commander's runs on this store, live; pending approvals"),
        Binding("escape", "escape", "Leave filter / cancel", id="inventory.escape",
                show=False, tooltip="Leave the filter; cancel a refresh; clear the filter"),
    ]

    app: KillswitchApp

    def __init__(self) -> None:
        super().__init__(id="inventory")
        self._visible: list[Integration] = []
        self._unsorted: list[Integration] = []
        self._by_id: dict[str, Integration] = {}
        self._layout = ""
        self._id_width = 0
        self._state_width = _STATE_WIDTHS[-1]
        self._sort: str | None = None
        self._reverse = False
        self._filter_error = ""
        self._hay: list[tuple[Integration, str]] = []
        self._last_text = ""
        self._states_note = "states: not observed yet"
        self._bindings_state: tuple[bool, ...] = ()
        self.filter_seconds = 0.0
        """How long the last filter took to update the table (benchmarks)."""
        self.filter_done_at = 0.0
        """``perf_counter()`` when the table last showed a new filter result (benchmarks)."""

    # -- composition ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        """Banner, filter, message line, table (with its detail line), status line, footer."""
        yield ModeBanner()
        yield Input(placeholder="/ filter: env=prod provider=openai, or free text",
                    id="inventory-filter")
        yield Label("", id="inventory-message")
        yield InventoryTable(self._cells, self._describe, id="inventory-table")
        yield Label("", id="inventory-status")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table, focus it, and observe the states after the first paint."""
        integrations = self.app.config.integrations
        self._by_id = {i.id: i for i in integrations}
        self._visible = list(integrations)
        self._unsorted = self._visible
        self._apply_layout(self.app.size.width)
        self.table.set_rows([i.id for i in self._visible])
        self.set_focus(self.table)  # now, not after the first paint: keys go to it at once
        observed = self.app.observed
        observed.changed.subscribe(self, self._states_changed)
        observed.first = self._rows_on_screen
        self.watch(self.app, "marked", self._marks_changed, init=False)
        live = getattr(self.app, "live_view", None)
        if live is not None:
            live.changed.subscribe(self, self._live_changed)
        self._status()
        self._update_bindings()
        self.set_interval(AGE_EVERY, self.table.refresh_detail, name="observed-age")
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        """Start-up is over: the collector comes back, states are observed."""
        startup_finished = getattr(self.app, "startup_finished", None)
        if startup_finished is not None:
            startup_finished()
        if not self.app.observed.busy and not len(self.app.observed):
            self.action_refresh_states()

    def on_screen_resume(self) -> None:
        """Back on the inventory: show what the store holds now."""
        if self.is_mounted and self._layout:
            live = getattr(self.app, "live_view", None)
            if live is not None:  # a screen of another section may have been dropped
                live.changed.unsubscribe(self)
                live.changed.subscribe(self, self._live_changed)
            self.table.refresh_rows()
            self._status()

    @property
    def table(self) -> InventoryTable:
        """The inventory table."""
        return self.query_one("#inventory-table", InventoryTable)

    @property
    def shown(self) -> list[Integration]:
        """The integrations passing the filter, in display order."""
        return list(self._visible)

    def cursor_id(self) -> str | None:
        """Id of the integration under the cursor."""
        return self.table.cursor_id

    def _rows_on_screen(self) -> list[str]:
        return self.table.rows_on_screen if self.is_mounted else []

    # -- layout and cells ----------------------------------------------------------------
    def _choose_layout(self, width: int) -> tuple[str, int, int]:
        """(layout, id width, state width) for a screen ``width`` wide."""
        longest = max((len(i) for i in self._by_id), default=8)
        usable = width - 1  # the scrollbar gutter
        for name in ("wide", "medium"):
            cols = _LAYOUTS[name]
            for state_width in _STATE_WIDTHS:
                fixed = sum(state_width if _COLUMNS[c][2] < 0 else _COLUMNS[c][2]
                            for c in cols) + 2 * len(cols)
                if usable - fixed >= min(longest, 20):
                    return name, max(min(longest, usable - fixed), 4), state_width
        cols = _LAYOUTS["narrow"]
        state_width = _STATE_WIDTHS[-1]
        fixed = sum(state_width if _COLUMNS[c][2] < 0 else _COLUMNS[c][2] for c in cols) \
            + 2 * len(cols)
        return "narrow", max(min(longest, usable - fixed), 8), state_width

    def _apply_layout(self, width: int) -> None:
        layout, id_width, state_width = self._choose_layout(width)
        self._layout, self._id_width, self._state_width = layout, id_width, state_width
        self.set_class(layout == "narrow", "-narrow")
        columns = []
        for key in _LAYOUTS[layout]:
            label, short, w = _COLUMNS[key]
            text = short if layout == "narrow" else label
            if key == self._sort:
                text += " \u25bc" if self._reverse else " \u25b2"
            w = id_width if key == "id" else state_width if w < 0 else w
            columns.append(Column(key, text, max(w, len(text))))
        self.table.set_columns(columns)

    def _cells(self, row_id: str) -> list[Cell]:
        integ = self._by_id[row_id]
        observed = self.app.observed.get(row_id)
        states = observed.states if observed is not None else {}
        out: list[Cell] = []
        for key in _LAYOUTS[self._layout]:
            if key == "mark":
                out.append((MARK if row_id in self.app.marked else "", ""))
            elif key in STATE_COLUMNS:
                out.append(state_cell(states.get(key), self._state_width))
            else:
                value = {"id": integ.id, "name": integ.name, "provider": integ.provider,
                         "env": integ.environment, "data": ",".join(integ.data_classes),
                         "owner": integ.owner, "status": integ.status}[key]
                if key == "status" and self._locked(row_id) is not None:
                    out.append(("LOCKED", "locked"))
                    continue
                out.append((value, ""))
        return out

    def _describe(self, row_id: str) -> str:
        """The line under the table: why, for the highlighted row."""
        from console.tui.observed import age_text

        store = self.app.observed
        observed = store.get(row_id)
        head = f"{row_id}: "
        lock = self._locked(row_id)
        if lock is not None:
            from console.tui.live import lock_text

            head += f"LOCKED by {lock_text(lock)} \u00b7 "
        if observed is None:
            return head + ("observing..." if store.pending(row_id)
                           else "not observed yet (R observes)")
        parts: list[tuple[int, str]] = []
        for column in STATE_COLUMNS:
            st = observed.states.get(column)
            if st is None or st.state == "-":
                continue
            text = f"{column} {st.state}"
            if st.state == "partial":
                text += f" {st.detail}"
            elif st.state == "unknown":
                text += f" ({st.detail})" if st.detail else ""
            parts.append((STATE_ORDER.get(st.state, 9), text))
        parts.sort(key=lambda p: p[0])
        words = [t for _order, t in parts] or ["no kill points listed"]
        if store.pending(row_id):
            words.append("observing...")
        elif observed.at and not observed.cancelled:
            words.append(f"observed {age_text(observed.at)}")
        return head + " \u00b7 ".join(words)

    def on_resize(self) -> None:
        """Switch layout (``-narrow`` below about 100 columns)."""
        if self._choose_layout(self.size.width) != (self._layout, self._id_width,
                                                    self._state_width):
            self._apply_layout(self.size.width)

    def _status(self) -> None:
        total = len(self._by_id)
        parts = [f"{len(self._visible)} of {total}", f"{len(self.app.marked)} marked"]
        live = getattr(self.app, "live_view", None)
        locked = len({lk.integration for lk in live.foreign_locks()}) if live else 0
        if locked:
            parts.append(f"{locked} locked elsewhere")
        if self._sort:
            parts.append(f"sort {self._sort}{' desc' if self._reverse else ''}")
        head = " | ".join(parts) + " | "
        progress = self.app.observed.progress()
        if progress is not None:
            box = self.query_one("#inventory-filter", Input)
            hint = "Esc, Esc cancels" if self.focused is box else "Esc cancels"
            note = "states: " + progress.text(width=max(self.size.width - 2 - len(head), 0),
                                              hint=hint)
        else:
            note = self._states_note
        self.query_one("#inventory-status", Label).update(head + note, layout=False)

    def on_descendant_focus(self) -> None:
        """The Escape hint depends on where the focus is."""
        if self.app.observed.busy:
            self._status()

    def _update_bindings(self) -> None:
        """Refresh the footer only when what can run changed (it is costly to redraw)."""
        state = (self.cursor_id() is not None, bool(self._visible), bool(self.app.marked))
        if state != self._bindings_state:
            self._bindings_state = state
            self.refresh_bindings()

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
        said = (f"{error.msg}" + (f" ({error.hint})" if error.hint else "")) if error else ""
        if said != self._filter_error:
            self._filter_error = said
            message.update(said)
            message.set_class(error is not None, "-shown")
        self._unsorted = visible
        self._visible = self._sorted(visible)
        self.table.set_rows([i.id for i in self._visible])
        self._status()
        self._update_bindings()
        self.filter_done_at = time.perf_counter()
        self.filter_seconds = self.filter_done_at - start

    def _free_text(self, text: str) -> list[Integration]:
        """Same result as :func:`filter_integrations` for text without selectors, faster.

        Each word must be a substring of id, name, owner or provider (as ``matches_text``);
        when the text only grew, only the previous result is searched.
        """
        integrations = self.app.config.integrations
        words = text.lower().split()
        if not words:
            return list(integrations)
        if not self._hay:
            self._hay = [(i, "\0".join((i.id, i.name, i.owner, i.provider)).lower())
                         for i in integrations]
        prev = self._last_text
        pairs = self._hay
        if "=" not in prev and text.startswith(prev) and prev.strip():
            keep = {id(i) for i in self._unsorted}
            pairs = [p for p in pairs if id(p[0]) in keep]
        if len(words) == 1:
            word = words[0]
            return [i for i, hay in pairs if word in hay]
        return [i for i, hay in pairs if all(w in hay for w in words)]

    def action_focus_filter(self) -> None:
        """Type a filter; in the filter, ``/`` is typed.

        A priority binding, and the focus moves at once: the keys typed right after ``/``
        go into the filter even when they arrive before ``/`` was handled.
        """
        box = self.query_one("#inventory-filter", Input)
        if self.focused is box:
            box.insert_text_at_cursor("/")
        else:
            self.set_focus(box)

    def action_escape(self) -> None:
        """Leave the filter; on the table, cancel a refresh under way, else clear the filter."""
        box = self.query_one("#inventory-filter", Input)
        if self.focused is box:
            self.set_focus(self.table)
        elif self.app.observed.busy:
            self.app.observed.cancel()  # the store says what became unknown
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
        self.table.refresh_rows(old ^ new)
        self._status()
        self._update_bindings()

    # -- sort ----------------------------------------------------------------------------
    def _sort_key(self) -> Callable[[Integration], Any]:
        column = self._sort
        if column in STATE_COLUMNS:
            store = self.app.observed

            def key(i: Integration) -> Any:
                state = store.state(i.id, column)
                return (STATE_ORDER.get(state.state if state else NOT_OBSERVED, 9), i.id)
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
        self._visible = self._sorted(self._unsorted)
        self._apply_layout(self.size.width or self.app.size.width)
        self.table.set_rows([i.id for i in self._visible])
        self._status()

    def action_sort(self) -> None:
        """Sort by the next column."""
        cycle = [c for c in _SORTABLE if c in _LAYOUTS[self._layout] or c == "id"]
        nxt = cycle[(cycle.index(self._sort) + 1) % len(cycle)] if self._sort in cycle else \
            cycle[0]
        self.sort_by(nxt)

    def action_sort_reverse(self) -> None:
        """Reverse the order."""
        self.sort_by(self._sort or "id", not self._reverse)

    @on(InventoryTable.HeaderSelected)
    def _header_selected(self, event: InventoryTable.HeaderSelected) -> None:
        """Click a header to sort by it; again to reverse."""
        if event.column in _SORTABLE:
            self.sort_by(event.column,
                         not self._reverse if event.column == self._sort else False)

    # -- navigation ----------------------------------------------------------------------
    def action_open(self) -> None:
        """Open the detail (from the filter: go to the table)."""
        if self.focused is self.query_one("#inventory-filter", Input):
            self.set_focus(self.table)
            return
        row = self.cursor_id()
        if row is not None:
            self.post_message(messages.DetailRequested(row))

    @on(InventoryTable.RowSelected)
    def _row_selected(self, event: InventoryTable.RowSelected) -> None:
        """A click on the highlighted row opens it."""
        self.post_message(messages.DetailRequested(event.row_id))

    @on(InventoryTable.RowHighlighted)
    def _row_highlighted(self, event: InventoryTable.RowHighlighted) -> None:
        self._update_bindings()

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
            self.post_message(messages.RunbooksRequested(ids))

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

    # -- other commanders ----------------------------------------------------------------
    def _locked(self, row_id: str) -> Any | None:
        """The lock another commander's run holds on ``row_id`` (None: free, or ours)."""
        live = self.app.__dict__.get("live_view")
        return live.foreign_lock(row_id) if live is not None else None

    def _live_changed(self, change: LiveChanged) -> None:
        """Locks changed: redraw those rows and the lines that count them."""
        if not self.is_mounted or not change.locks:
            return
        self.table.refresh_rows(change.locks if "" not in change.locks else None)
        self.table.refresh_detail()
        self._status()

    def action_team(self) -> None:
        """Every commander's runs on this store, live."""
        self.app.action_team()

    # -- observed states -----------------------------------------------------------------
    def action_refresh_states(self) -> None:
        """Observe every kill point again (read-only, in the background; Esc cancels)."""
        self.app.observed.refresh()
        self._status()

    def _states_changed(self, event: StatesChanged) -> None:
        """The store changed: redraw those rows, the progress, and re-sort when done."""
        if not self.is_mounted:
            return
        if event.ids:
            self.table.refresh_rows(event.ids)
        if event.finished:
            self._states_note = self._observed_note()
            if self._sort in STATE_COLUMNS:
                self._visible = self._sorted(self._unsorted)
                self.table.set_rows([i.id for i in self._visible])
        self._status()

    def _observed_note(self) -> str:
        store = self.app.observed
        unknown = cancelled = 0
        for row_id in self._by_id:
            row = store.get(row_id)
            if row is not None and any(s.state == "unknown" for s in row.states.values()):
                unknown += 1
                cancelled += row.cancelled
        if cancelled:
            note = f"states: refresh cancelled, {cancelled} not observed (unknown)"
            return note + (f", {unknown - cancelled} more unknown" if unknown > cancelled
                           else "")
        return "states: observed" + (f", {unknown} unknown" if unknown else "")
