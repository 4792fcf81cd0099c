"""The audit trail: chain status, runs, searchable events, reports, restore.

Below :data:`console.tui.layout.NARROW_BELOW` columns the tables keep what decides (run,
status; seq, outcome, what) and a detail pane under the events shows the highlighted run or
event in full. The report speaks the console's keys, not the CLI's flags
(:func:`console.report.console_words`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from console.tui.layout import (
    clip,
    explain_disabled,
    fit_widths,
    highlighted_key,
    laid_out_for,
    shorten,
    squeeze,
    table_width,
)
from console.tui.messages import (
    AuditLoaded,
    ChainVerified,
    PlanReady,
    PlanReviewRequested,
    describe_error,
    error_text,
)
from console.tui.screens.report import ReportScreen, event_detail, outcome_style
from console.tui.widgets.banner import ModeBanner
from console.tui.widgets.key_buffer import KeyBufferScreen
from console.vocab import Outcome

if TYPE_CHECKING:
    from console.engine.service import Session

__all__ = ["AuditScreen", "ReportScreen", "parse_query", "run_status"]

QUERY_KEYS = {"run": "run_id", "run_id": "run_id", "incident": "incident",
              "integration": "integration", "outcome": "outcome", "phase": "phase",
              "mode": "mode", "operator": "operator", "action": "action", "step": "step",
              "target": "target"}
"""``key=value`` tokens the filter understands, and the event field each one matches."""
_DB_FIELDS = ("run_id", "incident", "integration", "outcome")
_TEXT_FIELDS = ("run_id", "incident", "operator", "mode", "integration", "step", "op_id",
                "phase", "action", "target", "outcome")
MAX_EVENTS = 2000
"""Most events the table shows (the newest matching ones)."""


def parse_query(text: str) -> tuple[dict[str, str], list[str]]:
    """Split a filter into ``field=value`` pairs and free-text words.

    ``run=ID incident=INC-1 integration=support-bot outcome=failed key pasted`` gives
    ``{"run_id": "ID", ...}`` and ``["key", "pasted"]``. Unknown keys are free text.
    """
    fields: dict[str, str] = {}
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key.lower() in QUERY_KEYS and value:
            fields[QUERY_KEYS[key.lower()]] = value
        else:
            words.append(token.lower())
    return fields, words


def _matches(event: dict[str, Any], fields: dict[str, str], words: list[str]) -> bool:
    for name, value in fields.items():
        if name not in _DB_FIELDS and str(event.get(name) or "") != value:
            return False
    if not words:
        return True
    text = " ".join(str(event.get(f) or "") for f in _TEXT_FIELDS).lower()
    text += " " + str(event.get("detail") or "").lower()
    return all(w in text for w in words)


def run_status(outcomes: dict[str, int]) -> str:
    """A run's state in a word or two, from its outcome counts."""
    failed = sum(outcomes.get(o, 0) for o in ("failed", "refused"))
    bad = f", {failed} failed" if failed else ""
    if outcomes.get(Outcome.FINISHED):
        return Outcome.FINISHED + bad
    if outcomes.get(Outcome.CANCELLED):
        return Outcome.CANCELLED + bad
    if outcomes.get(Outcome.STARTED):
        return "interrupted" + bad
    if outcomes.get(Outcome.REFUSED):
        return Outcome.REFUSED
    return "plan only"


def _error_text(exc: BaseException) -> str:
    """An error's message and hint, the hint in the console's words."""
    from console.report import console_words

    return console_words(error_text(exc))


class AuditScreen(KeyBufferScreen):
    """The audit trail: chain status, runs, events, filter, report, restore.

    The trail loads in a worker; keys typed meanwhile (``o``, ``u``, down...) are applied, in
    order, once the runs are listed.

    The filter takes ``run=ID incident=ID integration=ID outcome=WORD`` (also ``phase=``,
    ``mode=``, ``operator=``, ``action=``, ``step=``, ``target=``) and free text. The pane
    under the events shows the highlighted run or event in full.

    | key    | action                                                 |
    |--------|--------------------------------------------------------|
    | /      | filter                                                 |
    | enter  | (runs table) show only the highlighted run's events    |
    | tab    | runs table <-> events table                            |
    | o      | open the highlighted run's report                      |
    | u      | restore: plan the undo of the highlighted run          |
    | r      | reload and verify the chain again                      |
    | escape | clear the filter, then back                            |
    """

    BINDING_GROUP_TITLE = "Audit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="audit.filter",
                tooltip="run=, incident=, integration=, outcome= or free text"),
        Binding("o", "open_report", "Report", id="audit.report",
                tooltip="The highlighted run's postmortem timeline"),
        Binding("u", "restore", "Restore", id="audit.restore",
                tooltip="Plan the undo of the highlighted run (confirmation follows)"),
        Binding("r", "reload", "Reload", id="audit.reload",
                tooltip="Read the trail again and verify the chain"),
        Binding("escape", "back", "Back", id="audit.back",
                tooltip="Clear the filter, or go back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.restorable: dict[str, bool] = {}
        self._session: Session | None = None
        self._built: tuple[bool, int] | None = None

    @property
    def session(self) -> Session:
        """One engine session for reading the trail."""
        if self._session is None:
            app: Any = self.app
            self._session = app.session()
        return self._session

    def compose(self) -> ComposeResult:
        """Banner, chain status, filter, runs, events, the highlighted row, footer."""
        yield ModeBanner()
        yield Static("Chain: verifying…", id="audit-chain")
        yield Input(placeholder="/ filter: run=… incident=… integration=… outcome=… or text",
                    id="audit-filter")
        yield DataTable(id="audit-runs", cursor_type="row")
        yield DataTable(id="audit-events", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="audit-detail"):
            yield Static(id="audit-detail-text")
        yield Footer()

    def on_mount(self) -> None:
        """Columns, then load and verify in workers."""
        self._build(self.app.size.width)
        self.query_one("#audit-runs", DataTable).focus()
        self.action_reload()

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide columns for the new width."""
        self._build(event.size.width)

    # -- loading -------------------------------------------------------------------------
    def action_reload(self) -> None:
        """Read the trail again and verify the chain."""
        self._load(self.query_one("#audit-filter", Input).value)
        self._verify()

    @work(exclusive=True, group="audit-verify", exit_on_error=False)
    async def _verify(self) -> None:
        from console.witness import verify_configured

        report = await asyncio.to_thread(verify_configured, self.session.config)
        self.post_message(ChainVerified(report))

    @work(exclusive=True, group="audit-load", exit_on_error=False)
    async def _load(self, query: str) -> None:
        await asyncio.sleep(0.05)  # debounce typing: a newer keystroke cancels this one
        fields, words = parse_query(query)
        audit = self.session.audit

        def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            db = {k: v for k, v in fields.items() if k in _DB_FIELDS}
            events = [e for e in audit.events(**db) if _matches(e, fields, words)]
            runs = audit.runs()
            modes = audit.run_modes()
            for r in runs:  # a live run's plan events say "plan": show what the run was
                seen = [m for m in modes.get(r["run_id"], "").split(",") if m]
                r["mode"] = "/".join(sorted(m for m in seen if m != "plan")) or "plan"
            if fields or words:
                wanted = {e.get("run_id") for e in events}
                runs = [r for r in runs if r["run_id"] in wanted]
            return runs, events[-MAX_EVENTS:]

        runs, events = await asyncio.to_thread(read)
        self.post_message(AuditLoaded(runs, events))

    def on_audit_loaded(self, message: AuditLoaded) -> None:
        """Fill both tables (newest run first)."""
        self.runs = list(reversed(message.runs))
        self.events = list(message.events)
        self._fill()
        self.refresh_bindings()
        self.keys_ready()

    # -- layout --------------------------------------------------------------------------
    def _build(self, width: int) -> None:
        """Columns for a screen ``width`` columns wide, then the rows."""
        if laid_out_for(self, width):
            return
        self._fill()

    def _fill(self) -> None:
        if self._built is None:
            return
        narrow, width = self._built
        total = table_width(width)
        runs = self.query_one("#audit-runs", DataTable)
        run_rows = [{"run": r["run_id"], "mode": r.get("mode") or "",
                     "incident": r.get("incident") or "-", "operator": r.get("operator") or "",
                     "events": str(r.get("count", 0)),
                     "status": run_status(r.get("outcomes") or {})} for r in self.runs]
        keys: tuple[str, ...] = (("run", "mode", "events", "status") if narrow else
                ("run", "mode", "incident", "operator", "events", "status"))
        minimum = {"run": 12, "incident": 6, "operator": 6, "status": 8}
        widths = fit_widths(total, [(max([len(k), *(len(r[k]) for r in run_rows)]),
                                     minimum.get(k, len(k))) for k in keys])
        _refill(runs, keys, widths, [([r[k] for k in keys], r["run"]) for r in run_rows])

        events = self.query_one("#audit-events", DataTable)
        what = ("phase", "integration", "action", "target")
        rows: list[dict[str, str]] = []
        for e in self.events:
            row = {k: str(e.get(k) or "") for k in ("seq", "outcome", "run_id", *what)}
            row["what"] = " ".join(row[k] for k in what if row[k])
            rows.append(row)
        keys = (("seq", "outcome", "what") if narrow else
                ("seq", "phase", "integration", "action", "outcome", "target", "run_id"))
        labels = {"run_id": "run"}
        minimum = {"what": 16, "target": 12, "run_id": 10, "integration": 8, "action": 10}
        widths = fit_widths(total, [(max([len(labels.get(k, k)), *(len(r[k]) for r in rows)]),
                                     minimum.get(k, len(labels.get(k, k)))) for k in keys])

        def cell(row: dict[str, str], key: str, width: int) -> Text | str:
            if key == "outcome":
                return Text(clip(row[key], width), style=outcome_style(self, row[key]))
            if key == "what":
                return squeeze([row[k] for k in what], width)
            return shorten(row[key], width)

        _refill(events, keys, widths,
                [([cell(r, k, w) for k, w in zip(keys, widths, strict=True)], r["seq"])
                 for r in rows], labels)
        self._show_detail()

    def _show_detail(self) -> None:
        """The highlighted event (events table focused) or run, in full."""
        pane = self.query_one("#audit-detail-text", Static)
        events = self.query_one("#audit-events", DataTable)
        if self.focused is events and events.row_count:
            seq = highlighted_key(events)
            event = next((e for e in self.events if str(e["seq"]) == seq), None)
            if event is not None:
                from console.report import TimelineEntry

                pane.update(event_detail(TimelineEntry(
                    int(event["seq"]), str(event.get("ts") or ""), str(event.get("ts") or ""),
                    "", "", _event_message(event), event), self))
                return
        run_id = self._highlighted_run()
        run = next((r for r in self.runs if r["run_id"] == run_id), None)
        if run is None:
            pane.update("No run highlighted." if not self.runs else "")
            return
        out = Text()
        out.append(str(run["run_id"]), style="bold")
        out.append(f" · {run_status(run.get('outcomes') or {})} · {run.get('mode') or '-'}")
        out.append(f"\nincident {run.get('incident') or '-'} · operator "
                   f"{run.get('operator') or '-'} · {run.get('count', 0)} events")
        counts = ", ".join(f"{n} {o}" for o, n in (run.get("outcomes") or {}).items())
        if counts:
            out.append(f"\noutcomes: {counts}")
        out.append("\no: its report · enter: only its events · u: restore it")
        pane.update(out)

    def on_chain_verified(self, message: ChainVerified) -> None:
        """OK n events, or BROKEN at seq N (in $error)."""
        report = message.report
        if report.ok:
            text = f"Chain OK: {report.count} events verified"
        else:
            at = f" at seq {report.first_bad_seq}" if report.first_bad_seq else ""
            text = f"Chain BROKEN{at}: {report.reason}"
        self._chain(text, ok=report.ok)

    def _chain(self, text: str, *, ok: bool) -> None:
        chain = self.query_one("#audit-chain", Static)
        chain.update(text)
        chain.set_class(ok, "-ok")
        chain.set_class(not ok, "-failed")

    def on_screen_resume(self) -> None:
        """Back from a report or a run: read again."""
        if self.is_mounted:
            self.action_reload()

    # -- selection -----------------------------------------------------------------------
    def _highlighted_run(self) -> str | None:
        table = self.query_one("#audit-runs", DataTable)
        if not table.row_count or not 0 <= table.cursor_row < len(self.runs):
            return None
        return str(self.runs[table.cursor_row]["run_id"])

    @property
    def selected_run(self) -> str | None:
        """The highlighted run, or the run of the highlighted event."""
        table = self.query_one("#audit-events", DataTable)
        if self.focused is table and table.row_count:
            seq = highlighted_key(table)
            event = next((e for e in self.events if str(e["seq"]) == seq), None)
            return (str(event.get("run_id") or "") or None) if event else None
        return self._highlighted_run()

    def _is_restorable(self, run_id: str) -> bool:
        if run_id not in self.restorable:
            try:
                plan, events = self.session.load_run(run_id)
            except Exception:  # noqa: BLE001 - a plan-only run is simply not restorable
                self.restorable[run_id] = False
            else:
                results = self.session.op_results(events)
                self.restorable[run_id] = any(
                    c.reversible and results.get(c.op_id) is not None
                    and results[c.op_id].outcome == Outcome.APPLIED for c in plan.changes)
        return self.restorable[run_id]

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()

    def on_descendant_focus(self) -> None:
        """The pane follows the table that has the focus."""
        self._show_detail()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#audit-runs")
    def _only_this_run(self, event: DataTable.RowSelected) -> None:
        run_id = str(event.row_key.value)
        box = self.query_one("#audit-filter", Input)
        fields, words = parse_query(box.value)
        kept = [f"{k}={v}" for k, v in fields.items() if k != "run_id"]
        box.value = " ".join([f"run={run_id}", *kept, *words])

    @on(Input.Changed, "#audit-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._load(event.value)

    @on(Input.Submitted, "#audit-filter")
    def _filter_done(self) -> None:
        self.query_one("#audit-runs", DataTable).focus()

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Report needs a run; Restore needs a run with a reversible applied change."""
        if action in ("open_report", "restore") and self.disabled_reason(action):
            return None
        return True

    def disabled_reason(self, action: str) -> str:
        """Why ``action`` cannot run now (``""`` when it can)."""
        if action not in ("open_report", "restore"):
            return ""
        run_id = self.selected_run
        if run_id is None:
            return "No run highlighted: highlight one in the runs table first."
        if action == "restore" and not self._is_restorable(run_id):
            return (f"Nothing to restore in {run_id}: it applied no change that can be "
                    "undone.")
        return ""

    def on_key(self, event: events.Key) -> None:
        """A key whose action is disabled says why (once the trail is listed)."""
        if self.ready:
            explain_disabled(self, event, self.disabled_reason)

    def action_focus_filter(self) -> None:
        """Type a filter."""
        self.query_one("#audit-filter", Input).focus()

    def action_back(self) -> None:
        """Clear the filter first; then go back."""
        box = self.query_one("#audit-filter", Input)
        if box.value:
            box.value = ""
            self.query_one("#audit-runs", DataTable).focus()
            return
        self.dismiss()

    def action_open_report(self) -> None:
        """The highlighted run's postmortem."""
        run_id = self.selected_run
        if run_id is None:
            return
        from console.report import build_report

        try:
            report = build_report(self.session.audit, run_id=run_id,
                                  config=self.session.config)
        except Exception as exc:  # noqa: BLE001 - shown, never raised
            self.notify(_error_text(exc), title=describe_error(exc)[0], severity="error")
            return
        self.app.push_screen(ReportScreen(report))

    def action_restore(self) -> None:
        """Plan the undo of the highlighted run; it goes through the plan screen."""
        run_id = self.selected_run
        if run_id is None:
            return
        self.notify(f"Planning the restore of {run_id}…", title="Restore")
        self._restore(run_id)

    @work(exclusive=True, group="audit-restore", exit_on_error=False)
    async def _restore(self, run_id: str) -> None:
        plan = await asyncio.to_thread(self.session.restore_plan, run_id)
        self.post_message(PlanReady(plan))

    def on_plan_ready(self, message: PlanReady) -> None:
        """Review the restore plan (confirmation follows there)."""
        self.app.post_message(PlanReviewRequested(message.plan))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every failure of this screen's workers lands here, shown with its hint."""
        if event.worker.group == "audit-load" and event.state == WorkerState.ERROR:
            self.keys_ready()  # keys typed while loading must not wait for a load that failed
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        error = event.worker.error
        if event.worker.group == "audit-verify":
            self._chain(f"Chain cannot be verified: {_error_text(error)}", ok=False)
        self.notify(_error_text(error), title=describe_error(error)[0], severity="error",
                    timeout=15)


def _event_message(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    parts = [f"{k}={v}" for k, v in detail.items() if v not in (None, "", {}, [])]
    return "; ".join(parts)


def _refill(table: DataTable[Any], keys: tuple[str, ...], widths: list[int],
            rows: list[tuple[list[Any], str]], labels: dict[str, str] | None = None) -> None:
    """Replace ``table``'s columns and rows, keeping the cursor where it was."""
    cursor = table.cursor_row
    table.clear(columns=True)
    for key, width in zip(keys, widths, strict=True):
        table.add_column((labels or {}).get(key, key), key=key, width=width)
    for cells, key in rows:
        table.add_row(*(clip(c, w) if isinstance(c, str) else c
                        for c, w in zip(cells, widths, strict=True)), key=key)
    if table.row_count:
        table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
