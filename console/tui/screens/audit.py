"""The audit trail: chain status, runs, searchable events, reports, restore."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Markdown, Static
from textual.worker import Worker, WorkerState

from console.tui.messages import (
    AuditLoaded,
    ChainVerified,
    PlanReady,
    describe_error,
    error_text,
)
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


class ReportScreen(Screen[None]):
    """A run's Markdown report (the postmortem timeline).

    | key    | action |
    |--------|--------|
    | escape | back   |
    """

    BINDING_GROUP_TITLE = "Report"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="report.back", tooltip="Back to the audit trail"),
    ]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        """Banner, the report, footer."""
        yield ModeBanner()
        with VerticalScroll(id="report-scroll"):
            yield Markdown(self.markdown, id="report")
        yield Footer()

    def on_mount(self) -> None:
        """Scroll with the keyboard."""
        self.query_one("#report-scroll").focus()

    def action_back(self) -> None:
        """Back to the audit trail."""
        self.dismiss()


class AuditScreen(KeyBufferScreen):
    """The audit trail: chain status, runs, events, filter, report, restore.

    The trail loads in a worker; keys typed meanwhile (``o``, ``u``, down...) are applied, in
    order, once the runs are listed.

    The filter takes ``run=ID incident=ID integration=ID outcome=WORD`` (also ``phase=``,
    ``mode=``, ``operator=``, ``action=``, ``step=``, ``target=``) and free text.

    | key    | action                                                 |
    |--------|--------------------------------------------------------|
    | /      | filter                                                 |
    | enter  | (runs table) show only the highlighted run's events    |
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
                tooltip="The highlighted run's Markdown timeline"),
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
        self.restorable: dict[str, bool] = {}
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """One engine session for reading the trail."""
        if self._session is None:
            app: Any = self.app
            self._session = app.session()
        return self._session

    def compose(self) -> ComposeResult:
        """Banner, chain status, filter, runs, events, footer."""
        yield ModeBanner()
        yield Static("Chain: verifying…", id="audit-chain")
        yield Input(placeholder="/ filter: run=… incident=… integration=… outcome=… or text",
                    id="audit-filter")
        yield DataTable(id="audit-runs", cursor_type="row")
        yield DataTable(id="audit-events", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        """Columns, then load and verify in workers."""
        runs = self.query_one("#audit-runs", DataTable)
        runs.add_columns("run", "mode", "incident", "operator", "events", "status")
        events = self.query_one("#audit-events", DataTable)
        events.add_columns("seq", "phase", "integration", "action", "outcome", "target", "run")
        runs.focus()
        self.action_reload()

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
            modes = {r["run_id"]: str(r["modes"] or "") for r in audit.db.query(
                "SELECT run_id, group_concat(DISTINCT mode) AS modes FROM events "
                "WHERE run_id IS NOT NULL GROUP BY run_id")}
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
        runs = self.query_one("#audit-runs", DataTable)
        runs.clear()
        for r in self.runs:
            runs.add_row(r["run_id"], r.get("mode") or "", r.get("incident") or "-",
                         r.get("operator") or "", str(r.get("count", 0)),
                         run_status(r.get("outcomes") or {}), key=r["run_id"])
        events = self.query_one("#audit-events", DataTable)
        events.clear()
        for e in message.events:
            target = str(e.get("target") or "")
            target = target if len(target) <= 30 else target[:29] + "…"
            events.add_row(str(e["seq"]), e.get("phase") or "", e.get("integration") or "",
                           e.get("action") or "", e.get("outcome") or "", target,
                           e.get("run_id") or "", key=str(e["seq"]))
        self.refresh_bindings()
        self.keys_ready()

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
    @property
    def selected_run(self) -> str | None:
        """The highlighted run, or the run of the highlighted event."""
        if self.focused is self.query_one("#audit-events", DataTable):
            table = self.query_one("#audit-events", DataTable)
            if table.row_count:
                row = table.get_row_at(table.cursor_row)
                return str(row[-1]) or None
        table = self.query_one("#audit-runs", DataTable)
        if not table.row_count or not 0 <= table.cursor_row < len(self.runs):
            return None
        return str(self.runs[table.cursor_row]["run_id"])

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
        if action == "open_report":
            return True if self.selected_run else None
        if action == "restore":
            run_id = self.selected_run
            return True if run_id and self._is_restorable(run_id) else None
        return True

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
        """The highlighted run's Markdown report."""
        run_id = self.selected_run
        if run_id is None:
            return
        from console.report import render_report

        try:
            text = render_report(self.session.audit, run_id=run_id, config=self.session.config)
        except Exception as exc:  # noqa: BLE001 - shown, never raised
            self.notify(error_text(exc), title=describe_error(exc)[0], severity="error")
            return
        self.app.push_screen(ReportScreen(text))

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
        app: Any = self.app
        app.open_plan(message.plan)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every failure of this screen's workers lands here, shown with its hint."""
        if event.worker.group == "audit-load" and event.state == WorkerState.ERROR:
            self.keys_ready()  # keys typed while loading must not wait for a load that failed
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        error = event.worker.error
        if event.worker.group == "audit-verify":
            self._chain(f"Chain cannot be verified: {error_text(error)}", ok=False)
        self.notify(error_text(error), title=describe_error(error)[0], severity="error",
                    timeout=15)
