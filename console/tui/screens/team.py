"""The team: every commander's runs on this store, live, this console's own marked ``you``.

Who (operator@host), on which integrations (and, wide, which runbook), progress (operations
done / planned, from the trail), status (running, finished, failed, interrupted, awaiting
approval) and since when. It redraws by itself as the store changes
(:mod:`console.tui.live`: LISTEN/NOTIFY on PostgreSQL, a one-second poll of the trail head
on SQLite); the line at the top says how it is watching, and ``reconnecting`` when the store
cannot be reached (what is shown is then the last state seen). Below
:data:`console.tui.layout.NARROW_BELOW` columns the table keeps who, what, progress and
status; the pane under it shows the highlighted run in full (its locks, its pending
approval).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.tui.layout import (
    clip,
    explain_disabled,
    fit_widths,
    highlighted_key,
    laid_out_for,
    shorten,
    table_width,
)
from console.tui.messages import ReportRequested
from console.tui.widgets.banner import ModeBanner

if TYPE_CHECKING:
    from console.tui.app import KillswitchApp
    from console.tui.live import LiveChanged, LiveView, TeamRun

__all__ = ["MAX_RUNS", "TeamScreen"]

MAX_RUNS = 200
"""Most runs the table lists (running ones first, then the newest)."""
NO_RUNS = "none"
"""Row key of the placeholder row of an empty table."""
_LABELS = {"you": "", "who": "who", "on": "integrations", "runbook": "runbook",
           "progress": "ops", "status": "status", "since": "since", "mode": "mode",
           "incident": "incident", "run": "run"}


def _clock(ts: str) -> str:
    """``HH:MM`` (UTC, as the trail) of a trail timestamp."""
    return ts[11:16] if len(ts) >= 16 else "-"


def _when(ts: str) -> str:
    """``2025-01-01 00:00:00 UTC``."""
    return f"{ts[:19].replace('T', ' ')} UTC" if ts else "-"


class TeamScreen(Screen[None]):
    """Every commander's runs on this store, live.

    | key        | action                                                    |
    |------------|-----------------------------------------------------------|
    | up / down  | highlight a run: the pane shows it in full               |
    | o / enter  | the highlighted run's report                              |
    | p          | pending approvals: review a plan, approve it             |
    | escape     | back                                                      |
    """

    BINDING_GROUP_TITLE = "Team"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_report", "Report", id="team.report",
                tooltip="The highlighted run's postmortem timeline"),
        Binding("enter", "open_report", "Report", id="team.report-enter", show=False,
                tooltip="Same as o"),
        Binding("p", "approvals", "Approvals", id="team.approvals",
                tooltip="Pending approvals and co-signatures: the plan, a reason, approve"),
        Binding("escape", "back", "Back", id="team.back", tooltip="Back where you were"),
    ]

    app: KillswitchApp

    def __init__(self) -> None:
        super().__init__(id="team")
        self._built: tuple[bool, int] | None = None
        self._shown: list[TeamRun] = []

    @property
    def live(self) -> LiveView:
        """The console's live view of the store."""
        return self.app.live_view

    def compose(self) -> ComposeResult:
        """Banner, how the store is watched, the runs, the highlighted run, footer."""
        yield ModeBanner()
        yield Static("live view: starting", id="team-status")
        yield DataTable(id="team-runs", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="team-detail"):
            yield Static(id="team-detail-text")
        yield Footer()

    def on_mount(self) -> None:
        """Columns for this width, the runs known now, then follow the live view."""
        self.live.changed.subscribe(self, self._live_changed)
        self._build(self.app.size.width)
        self.query_one("#team-runs", DataTable).focus()

    def on_screen_resume(self) -> None:
        """Back on top: show what the live view holds now."""
        if self.is_mounted:
            self.live.changed.unsubscribe(self)  # once, whether or not it was dropped
            self.live.changed.subscribe(self, self._live_changed)
            self._fill()

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide columns for the new width."""
        self._build(event.size.width)

    def _live_changed(self, change: LiveChanged) -> None:
        if self.is_mounted:
            self._fill()

    # -- table ---------------------------------------------------------------------------
    def _build(self, width: int) -> None:
        if laid_out_for(self, width):
            return
        self._fill()

    def _style(self, token: str, bold: bool = True) -> Style:
        colour = self.app.theme_variables.get(token, "")
        return Style(color=colour or None, bold=bold)

    def _status_style(self, status: str) -> Style:
        if "failed" in status or status in ("interrupted", "refused") or "exit" in status:
            return self._style("error")
        if status.startswith(("running", "resumed", "awaiting")) or "pending" in status:
            return self._style("warning")
        if status.startswith("finished"):
            return self._style("success")
        return Style()

    def rows(self) -> list[dict[str, str]]:
        """The runs as the table shows them (tests read these), in table order."""
        live = self.live
        out = []
        for run in self._shown:
            out.append({"run": run.run_id, "you": "you" if live.is_own(run) else "",
                        "who": run.who, "what": run.what(), "runbook": run.runbook or "?",
                        "on": ", ".join(run.integrations) or "-",
                        "progress": run.progress, "status": live.status(run),
                        "since": _clock(run.first_ts), "mode": run.mode or "-",
                        "incident": run.incident or "-"})
        return out

    def _fill(self) -> None:
        if self._built is None:
            return
        narrow, width = self._built
        self._shown = self.live.ordered()[:MAX_RUNS]
        rows = self.rows()
        keys: tuple[str, ...] = (
            ("you", "who", "on", "progress", "status", "since") if narrow else
            ("you", "who", "mode", "runbook", "on", "progress", "status", "since", "incident",
             "run"))
        minimum = {"you": 3, "who": 10, "on": 12, "runbook": 8, "progress": 3, "status": 8,
                   "since": 5, "mode": 4, "incident": 6, "run": 10}
        widths = fit_widths(table_width(width), [
            (max([len(_LABELS[k]), *(len(r[k]) for r in rows)]), minimum[k]) for k in keys])
        table = self.query_one("#team-runs", DataTable)
        keep = highlighted_key(table)
        table.clear(columns=True)
        for key, w in zip(keys, widths, strict=True):
            table.add_column(_LABELS[key], key=key, width=w)
        muted = Style(dim=True)
        for row in rows:
            cells: list[Text | str] = []
            for key, w in zip(keys, widths, strict=True):
                value = row[key]
                if key == "status":
                    cells.append(Text(clip(value, w), style=self._status_style(value)))
                elif key == "you":
                    cells.append(Text(value, style="bold"))
                elif key in ("on", "who", "run", "runbook"):
                    short = clip(value, w) if key == "on" else shorten(value, w)
                    cells.append(Text(short, style=muted if row["you"] else ""))
                else:
                    cells.append(clip(value, w))
            table.add_row(*cells, key=row["run"])
        if not rows:
            table.add_row(*([""] * (len(keys) - 1)), "", key=NO_RUNS)
        if table.row_count:
            index = next((n for n, r in enumerate(rows) if r["run"] == keep), 0)
            table.move_cursor(row=index)
        self._show_status()
        self._show_detail()
        self.refresh_bindings()

    def _show_status(self) -> None:
        live = self.live
        runs = self._shown
        running = [r for r in runs if r.running and live.status(r) != "interrupted"]
        others = [r for r in running if not live.is_own(r)]
        parts = [f"{len(runs)} run{'' if len(runs) == 1 else 's'}",
                 f"{len(others)} running elsewhere"]
        locked = live.foreign_locks()
        if locked:
            parts.append(f"{len(locked)} locked elsewhere")
        if live.approvals:
            parts.append(f"{len(live.approvals)} pending approval"
                         f"{'' if len(live.approvals) == 1 else 's'} (p)")
        text = " · ".join(parts) + " | " + live.state_text()
        status = self.query_one("#team-status", Static)
        status.update(text)
        status.set_class(live.state in ("reconnecting", "off") or bool(live.read_error),
                         "-failed")

    @on(DataTable.RowHighlighted, "#team-runs")
    def _highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#team-runs")
    def _selected(self) -> None:
        """Enter (or a click) on a row: its report."""
        self.action_open_report()

    @property
    def selected(self) -> TeamRun | None:
        """The highlighted run."""
        key = highlighted_key(self.query_one("#team-runs", DataTable))
        return next((r for r in self._shown if r.run_id == key), None)

    def _show_detail(self) -> None:
        pane = self.query_one("#team-detail-text", Static)
        run = self.selected
        if run is None:
            pane.update("No runs in the trail yet: runs of every commander on this store "
                        "show here as they happen.")
            return
        pane.update(self.detail_text(run))

    def detail_text(self, run: TeamRun) -> Text:
        """The pane's view of ``run``."""
        live = self.live
        status = live.status(run)
        out = Text()
        out.append(run.run_id, style="bold")
        out.append(" · ")
        out.append(status, style=self._status_style(status))
        out.append(f" · {run.mode or '-'}")
        if live.is_own(run):
            out.append(" · you", style="bold")
        out.append(f"\nby {run.operator or '?'} on {run.host or '?'} · incident "
                   f"{run.incident or '-'}")
        out.append(f"\n{run.what()}")
        if run.restore_of:
            out.append(f" (restore of {run.restore_of})")
        if run.total or run.done:
            out.append(f"\n{len(run.done)} of {run.total or '?'} operation(s) done")
            if run.failed:
                out.append(f", {len(run.failed)} failed", style=self._style("error"))
        out.append(f"\nstarted {_when(run.first_ts)} · last event {_when(run.last_ts)}")
        held = [lk for lk in live.locks if lk.run_id == run.run_id]
        if held:
            out.append("\nholds the lock" + ("s" if len(held) > 1 else "") + " of "
                       + ", ".join(str(lk.integration) for lk in held))
        waiting = live.awaiting(run.run_id)
        if waiting is not None:
            kind = "co-signature" if getattr(waiting, "kind", "") == "cosign" else "approval"
            out.append(f"\n{kind} {waiting.id} pending (p: review it)",
                       style=self._style("warning"))
        out.append("\no: its report")
        return out

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Report needs a run."""
        if action == "open_report" and self.disabled_reason(action):
            return None
        return True

    def disabled_reason(self, action: str) -> str:
        """Why ``action`` cannot run now (``""`` when it can)."""
        if action == "open_report" and self.selected is None:
            return "No run highlighted: no runs in the trail yet."
        return ""

    def on_key(self, event: events.Key) -> None:
        """A key whose action is disabled says why."""
        explain_disabled(self, event, self.disabled_reason)

    def action_open_report(self) -> None:
        """The highlighted run's postmortem (in the audit section)."""
        run = self.selected
        if run is not None:
            self.post_message(ReportRequested(run.run_id))

    def action_approvals(self) -> None:
        """The pending approvals."""
        self.app.open_approvals()

    def action_back(self) -> None:
        """Back where the operator came from."""
        self.dismiss()

