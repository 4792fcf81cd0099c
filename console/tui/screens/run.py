"""The run: live progress per operation, verify results, cancel, retry, resume.

The apply itself runs in a worker owned by the *app*, not this screen: leaving the screen
(``i``, ``A``) must never cancel an apply half way. Progress comes from the engine's progress
hook (called in the event loop) as :class:`OperationChanged` messages; the end comes as
:class:`RunFinished` or :class:`RunFailed`.

What decides comes first in the table: the state (``done (applied)``, ``FAILED``) and what
verify proved (``dead``, ``STILL LIVE``), then the target. Below
:data:`console.tui.layout.NARROW_BELOW` columns the action and message move out of the table
into the pane under it, which shows the highlighted operation in full (error, note, attempts,
timings). When the run ends, a block lists per integration what is now off, what is STILL
LIVE, what could not be checked and what cannot come back (:func:`run_summary`), with the exit
code the CLI gives the same result.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from console.tui.layout import (
    clip,
    explain_disabled,
    fit_widths,
    highlighted_key,
    is_narrow,
    laid_out_for,
    shorten,
    table_width,
)
from console.tui.messages import (
    OperationChanged,
    PlanReady,
    PlanReviewRequested,
    RunFailed,
    RunFinished,
    describe_error,
    error_text,
)
from console.tui.run_summary import (
    RESTORE_LABELS,
    RUN_LABELS,
    Fates,
    run_summary,
    verify_word,
)
from console.tui.widgets.banner import ModeBanner
from console.vocab import NOT_DONE, Outcome

if TYPE_CHECKING:
    from console.engine.model import OpResult, Plan, RunResult
    from console.engine.service import Session

__all__ = ["Fates", "RunScreen", "run_summary", "verify_word"]


def _state(res: OpResult, extra: dict[str, Any]) -> str:
    if extra.get("retrying"):
        return f"retrying (attempt {res.attempts + 1}, wait {float(extra.get('wait', 0)):.1f}s)"
    if extra.get("running"):
        return "running"
    return {"applied": "done (applied)", "noop": "done (noop)", "failed": "FAILED",
            "refused": "REFUSED", "skipped": "skipped", "unsupported": "unsupported",
            "pending": "queued"}.get(res.outcome, res.outcome)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


class RunScreen(Screen[None]):
    """Apply a confirmed plan and watch it; verify shows what is really dead.

    | key       | action                                                        |
    |-----------|---------------------------------------------------------------|
    | c         | cancel the run (asks; in-flight operations finish)            |
    | t         | retry failed operations: plan them again, confirm again       |
    | u         | resume a cancelled or interrupted run                         |
    | up / down | highlight an operation: the pane shows it in full             |
    | escape    | back (not while the run is going)                             |

    A key that cannot act now (``t`` or ``u`` on a finished run, ``c`` after the end) says
    why.

    Args:
        plan: The confirmed plan.
        reason: Why (recorded).
        allow_irreversible: The operator ticked the irreversible consent.
        resume: The plan is an interrupted run's: resume it instead of applying it.
        previous: What the trail recorded for that run's operations (shown until resumed).
    """

    BINDING_GROUP_TITLE = "Run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_run", "Cancel run", id="run.cancel",
                tooltip="Stop starting operations (asks first); in-flight ones finish"),
        Binding("t", "retry_failed", "Retry failed", id="run.retry",
                tooltip="Plan the failed operations again and confirm again"),
        Binding("u", "resume_run", "Resume", id="run.resume",
                tooltip="Finish a cancelled run without repeating what was done"),
        Binding("escape", "back", "Back", id="run.back", tooltip="Leave this screen"),
    ]

    def __init__(self, plan: Plan, *, reason: str, allow_irreversible: bool,
                 resume: bool = False, previous: dict[str, OpResult] | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.resume_on_mount = resume
        self.reason = reason
        self.allow_irreversible = allow_irreversible
        self.session: Session | None = None
        self.result: RunResult | None = None
        self.running = False
        self.failed_error: BaseException | None = None
        self.cancel_requested = False
        self.results: dict[str, OpResult] = dict(previous or {})
        self.final: set[str] = {op for op, r in self.results.items()
                                if r.outcome not in (Outcome.SKIPPED, Outcome.PENDING)}
        self.started = 0.0
        self.elapsed = 0.0
        self.rows: dict[str, dict[str, str]] = {}
        """Every row's cells as text (``target``, ``action``, ``state``, ``verify``,
        ``message``), whichever columns the layout shows."""
        self.verify_detail: dict[str, str] = {}
        """What verify said about each operation."""
        self._widths: dict[str, int] = {}
        self._built: tuple[bool, int] | None = None

    def compose(self) -> ComposeResult:
        """Banner, headline, operations, the highlighted one, progress, verdict, the end
        per integration, log, footer."""
        yield ModeBanner()
        yield Static(id="run-header")
        yield DataTable(id="run-table", cursor_type="row")
        with VerticalScroll(id="run-detail"):
            yield Static(id="run-detail-text")
        with Horizontal(id="run-progress-row"):
            yield ProgressBar(total=max(len(self.plan.changes), 1), show_eta=False,
                              id="run-progress")
            yield Static(id="run-elapsed")
        yield Static(id="run-verdict")
        with VerticalScroll(id="run-summary"):
            yield Static(id="run-summary-text")
        yield RichLog(id="run-log", max_lines=2000, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table with queued operations and start applying."""
        plan = self.plan
        what = (f"restore of run {plan.restore_of}" if plan.restore_of
                else f"runbook {plan.runbook}")
        self.query_one("#run-header", Static).update(
            f"RUN {plan.run_id} — {what} — reason: {self.reason}")
        for c in plan.changes:
            res = self.results.get(c.op_id)
            state = "queued" if res is None else (
                "interrupted" if res.outcome == Outcome.PENDING else _state(res, {}))
            self.rows[c.op_id] = {"target": c.target, "action": c.action, "state": state,
                                  "verify": "", "message": res.message if res else ""}
        self._build(self.app.size.width)
        self.query_one("#run-table", DataTable).focus()
        self._start(resume=self.resume_on_mount)

    def on_resize(self, event: events.Resize) -> None:
        """Narrow or wide columns for the new width."""
        self._build(event.size.width)

    # -- layout --------------------------------------------------------------------------
    def _build(self, width: int) -> None:
        """(Re)build the columns for a screen ``width`` columns wide, then the rows."""
        if laid_out_for(self, width):
            return
        narrow = is_narrow(width)
        rows = self.rows.values()
        target_w = max([6, *(len(r["target"]) for r in rows)])
        state_w, verify_w = (16, 12) if narrow else (22, 12)
        total = table_width(width)
        if narrow:
            keys: tuple[str, ...] = ("state", "verify", "target")
            widths = fit_widths(total, [(state_w, state_w), (verify_w, verify_w),
                                        (target_w, 14)])
        else:
            keys = ("state", "verify", "target", "action", "message")
            action_w = max([6, *(len(r["action"]) for r in rows)])
            rest = total - state_w - verify_w - target_w - action_w - 10
            widths = fit_widths(total, [(state_w, state_w), (verify_w, verify_w),
                                        (target_w, 14), (action_w, 10), (max(rest, 10), 10)])
        self._widths = dict(zip(keys, widths, strict=True))
        table = self.query_one("#run-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for key, w in self._widths.items():
            table.add_column(key, key=key, width=w)
        for op_id, row in self.rows.items():
            table.add_row(*(self._shown(k, row[k]) for k in keys), key=op_id)
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
        self._show_detail()

    def _shown(self, column: str, text: str) -> Text | str:
        width = self._widths.get(column, len(text))
        if column in ("state", "verify"):
            return self._cell(text, width)
        if column == "target":
            return shorten(text, width)
        return clip(text, width)

    def _set(self, op_id: str, **cells: str) -> None:
        """Update a row's cells (those the layout shows are redrawn)."""
        table = self.query_one("#run-table", DataTable)
        row = self.rows.get(op_id)
        if row is None:
            row = self.rows[op_id] = {"target": op_id, "action": "", "state": "",
                                      "verify": "", "message": ""}
            row.update(cells)
            table.add_row(*(self._shown(k, row[k]) for k in self._widths), key=op_id)
        else:
            row.update(cells)
            for key, text in cells.items():
                if key in self._widths:
                    table.update_cell(op_id, key, self._shown(key, text))
        if highlighted_key(table) == op_id:
            self._show_detail()

    @on(DataTable.RowHighlighted, "#run-table")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        key = highlighted_key(self.query_one("#run-table", DataTable))
        self.query_one("#run-detail-text", Static).update(
            "" if key is None else self.detail_text(key))

    def detail_text(self, op_id: str) -> Text:
        """One operation in full: state, verify, message, note, attempts, timings."""
        row = self.rows.get(op_id, {})
        change = next((c for c in self.plan.changes if c.op_id == op_id), None)
        res = self.results.get(op_id)
        out = Text()
        out.append(row.get("target", op_id), style="bold")
        out.append("\n")
        out.append_text(self._cell(row.get("state") or "queued", 0))
        if row.get("verify"):
            out.append(" · verify: ")
            out.append_text(self._cell(row["verify"], 0))
        if change is not None:
            out.append(f" · {change.action} · {change.integration} / {change.step}")
            if not change.reversible:
                out.append(" · ")
                out.append("IRREVERSIBLE", style=self._style("error"))
        if res is not None and (res.attempts or res.duration):
            took = "under 1 s" if res.duration < 1 else f"{res.duration:.1f} s"
            out.append(f"\nattempts {res.attempts} · took {took}")
        message = res.message if res is not None and change is not None else row.get("message")
        if message:
            out.append(f"\nmessage: {message}")
        if self.verify_detail.get(op_id):
            out.append(f"\nverify: {self.verify_detail[op_id]}")
        if change is not None and change.note:
            out.append(f"\nnote: {change.note}")
        return out

    # -- the run -------------------------------------------------------------------------
    def _start(self, *, resume: bool) -> None:
        app: Any = self.app
        if self.session is None:
            self.session = app.session()
        self.session.cancel_requested = False
        self.running, self.result, self.failed_error = True, None, None
        self.cancel_requested = False
        self.started = time.monotonic()
        self.set_class(True, "-running")
        self.set_class(False, "-failed")
        self.set_class(False, "-ended")
        self._verdict("Running…" if not resume else "Resuming…", "")
        self._tick()
        self._timer = self.set_interval(0.5, self._tick)
        self.refresh_bindings()
        coro = self._resume() if resume else self._apply()
        app.run_worker(coro, name=f"run {self.plan.run_id}", group="run",
                       exit_on_error=False)

    def _hook(self, phase: str, res: OpResult, extra: dict[str, Any]) -> None:
        session = self.session
        if self.cancel_requested and session is not None and session.cancel is not None:
            session.cancel.set()
        self.post_message(OperationChanged(phase, replace(res), dict(extra)))

    async def _apply(self) -> None:
        assert self.session is not None
        cause = str(getattr(self.app, "cause", "") or "")
        if cause and not self.plan.restore_of and cause != self.plan.cause:
            # the cause was given with the incident id, after this plan was made
            self.plan.cause = cause
        try:
            result = await self.session.apply(
                self.plan, reason=self.reason, allow_irreversible=self.allow_irreversible,
                progress=self._hook)
        except Exception as exc:  # noqa: BLE001 - shown on screen: refused, lock held, ...
            self.post_message(RunFailed(exc))
            return
        self.post_message(RunFinished(result))

    async def _resume(self) -> None:
        assert self.session is not None
        try:
            result = await self.session.resume(self.plan.run_id, progress=self._hook)
        except Exception as exc:  # noqa: BLE001 - shown on screen
            self.post_message(RunFailed(exc))
            return
        self.post_message(RunFinished(result))

    # -- display -------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.running:
            self.elapsed = time.monotonic() - self.started
        done = len(self.final)
        self.query_one("#run-elapsed", Static).update(
            f" {done}/{len(self.plan.changes)} done  elapsed {_clock(self.elapsed)}")

    def _style(self, token: str) -> Style:
        return Style(color=self.app.theme_variables.get(token) or None, bold=True)

    def _cell(self, text: str, width: int = 0) -> Text:
        shown = clip(text, width) if width else text
        if text.startswith(("FAILED", "REFUSED", "STILL LIVE")) or "not as planned" in text:
            return Text(shown, style=self._style("error"))
        if text.startswith(("retrying", "running", "skipped", "unsupported", "unknown",
                            "propagating")):
            return Text(shown, style=self._style("warning"))
        if text.startswith("done") or text in ("dead", "off", "restored", "revoked"):
            return Text(shown, style=self._style("success"))
        return Text(shown)

    def _verdict(self, text: str, kind: str) -> None:
        verdict = self.query_one("#run-verdict", Static)
        verdict.update(text)
        for k in ("-ok", "-failed", "-warning"):
            verdict.set_class(k == kind, k)

    def on_operation_changed(self, message: OperationChanged) -> None:
        """One operation changed state: update its row, the progress and the log."""
        res, extra = message.result, message.extra
        target = self._target(res.op_id)
        known = res.op_id in self.rows
        self.results[res.op_id] = res
        if message.phase not in ("apply", "verify"):
            # extra evidence the engine gathers per integration (e.g. "proof": the provider
            # no longer accepts the key): its own row, outside the plan's progress
            word = res.verdict or res.outcome
            self._set(res.op_id, action=message.phase,
                      state="running" if res.outcome == Outcome.PENDING else "done",
                      verify=word, message=res.message)
            self._log(f"{message.phase:<14} {res.op_id}: {word} — {res.message}")
            return
        if message.phase == "verify":
            word = verify_word(res)
            detail = str(extra.get("detail") or "")
            self.verify_detail[res.op_id] = detail
            if known:
                self._set(res.op_id, verify=word, message=detail)
            self._log(f"verify  {target}: {word} — {detail}")
            return
        state = _state(res, extra)
        if res.outcome != Outcome.PENDING and not (extra.get("running") or extra.get("retrying")):
            self.final.add(res.op_id)
        if res.op_id in {c.op_id for c in self.plan.changes}:
            self._set(res.op_id, state=state, message=res.message)
        self.query_one("#run-progress", ProgressBar).update(progress=len(self.final))
        self._tick()
        self._log(f"{state:<14} {target}" + (f" — {res.message}" if res.message else ""))

    def _log(self, line: str) -> None:
        self.query_one("#run-log", RichLog).write(line)

    def _stopped(self) -> None:
        self.running = False
        self.elapsed = time.monotonic() - self.started
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.stop()
        self.set_class(False, "-running")
        self._tick()
        self.refresh_bindings()

    def _observed_again(self) -> None:
        """The run changed the targets: the inventory's observed states are read again."""
        plan = self.plan
        if getattr(getattr(self.app, "guard", None), "quitting", False):
            return  # the console is closing: nobody will look at the inventory again
        if getattr(self.app, "observed", None) is None:
            return
        try:
            self.app.observed.refresh(sorted(plan.integrations))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the run's end is shown whatever happens
            self.notify(error_text(exc), title="Inventory states not refreshed",
                        severity="warning")

    def on_run_finished(self, message: RunFinished) -> None:
        """Show the verify results, one verdict line, and the end per integration."""
        self._stopped()
        result = self.result = message.result
        self.elapsed = result.elapsed
        self.final = {op for op, r in result.results.items() if r.outcome != Outcome.PENDING}
        self.query_one("#run-progress", ProgressBar).update(progress=len(self.final))
        self._tick()
        not_done = [r for r in result.results.values() if r.outcome in NOT_DONE]
        keys = [f"{p.integration} {p.state}" for p in [*result.still_live, *result.unchecked]]
        still = [self._target(r.op_id) for r in result.verify_failed]
        stays = [f"{i}: {line}" for i, lines in result.plan.not_restored().items()
                 for line in lines]
        # the order of RunResult.exit_code(): the words always match the CLI's exit code
        if keys:  # a key still live or unchecked wins over everything else, as exit 4
            text, kind = ("NOT VERIFIED — key STILL LIVE or could not be checked: "
                          + ", ".join(keys[:3])), "-failed"
        elif result.cancelled:
            skipped = sum(1 for r in result.results.values() if r.outcome == Outcome.SKIPPED)
            text, kind = (f"CANCELLED — {skipped} operation(s) not started were skipped; "
                          "press u to resume the run."), "-warning"
        elif not_done:
            text, kind = (f"INCOMPLETE — {len(not_done)} operation(s) failed or did not run; "
                          "press t to retry them."), "-failed"
        elif stays:
            text, kind = ("INCOMPLETE — restored what could be undone; stays dead: "
                          + "; ".join(stays[:3])), "-failed"
        elif result.not_done:
            text, kind = (f"INCOMPLETE — {len(result.not_done)} change(s) no adapter can make "
                          "did not happen (see the plan)."), "-failed"
        elif still:
            text, kind = (f"NOT VERIFIED — {len(still)} target(s) STILL LIVE or unknown: "
                          + ", ".join(still[:3])), "-failed"
        else:
            action = {c.op_id: c.action for c in result.plan.changes}
            verified = [action.get(op, "") for op, r in result.results.items() if r.verified]
            kept = verified.count("evidence.preserve")
            fresh = sum(1 for a in verified if a in ("credential.issue", "credential.write"))
            dead = len(verified) - kept - fresh
            word = "restored" if self.plan.restore_of else "dead or off"
            extra = (f"; evidence preserved from {kept} source(s)" if kept else "") + \
                (f"; the new key issued and written: {fresh} target(s)" if fresh else "")
            text, kind = (f"OK — every change applied and verified: {dead} target(s) "
                          f"{word}{extra}."), "-ok"
        self.set_class(kind == "-failed", "-failed")
        self._verdict(text, kind)
        self._log(text)
        self._summary(run_summary(result.plan, result.results, result.proofs),
                      f"exit code {result.exit_code()}, as the CLI reports this run")
        self._observed_again()

    def _summary(self, fates: list[Fates], how: str) -> None:
        """The end of the run per integration, in words (colour only repeats them)."""
        labels = RESTORE_LABELS if self.plan.restore_of else RUN_LABELS
        styles = (self._style("success"), self._style("error"), self._style("warning"),
                  self._style("error"))
        out = Text()
        out.append(f"{'Restore' if self.plan.restore_of else 'Run'} ended ({how}):",
                   style="bold")
        # what needs acting on first: STILL LIVE, then not checked, then the rest
        for fate in sorted(fates, key=lambda f: (not f.live, not f.unchecked, not f.other)):
            groups = (fate.done, fate.live, fate.unchecked, fate.gone)
            out.append(f"\n{fate.integration}: ", style="bold")
            for n, (label, items, style) in enumerate(zip(labels, groups, styles,
                                                          strict=True)):
                out.append(" · " if n else "")
                out.append(f"{len(items)} {label}", style=style if items else "")
            for label, items, style in zip(labels, groups, styles, strict=True):
                if items:
                    out.append("\n  ")
                    out.append(f"{label}:", style=style)
                    out.append(" " + "; ".join(items))
            if fate.other:
                out.append("\n  did not happen: " + "; ".join(fate.other))
        self.query_one("#run-summary-text", Static).update(out)
        self.set_class(True, "-ended")

    def on_run_failed(self, message: RunFailed) -> None:
        """A refusal or an error: show the message (who holds a lock, since when)."""
        from console.errors import Refused

        self._stopped()
        error = self.failed_error = message.error
        if isinstance(error, Refused):
            text = f"REFUSED — nothing was changed: {error_text(error)}"
        else:
            text = f"STOPPED — {error_text(error)}\nSee the audit trail (A); u resumes."
            self._summary(run_summary(self.plan, self.results),
                          "stopped: from what was seen before it stopped")
            self._observed_again()
        self.set_class(True, "-failed")
        self._verdict(text, "-failed")
        self._log(text)
        self.notify(error_text(error), title=describe_error(error)[0], severity="error",
                    timeout=15)

    def _target(self, op_id: str) -> str:
        return next((c.target for c in self.plan.changes if c.op_id == op_id), op_id)

    # -- actions -------------------------------------------------------------------------
    def _retry_targets(self) -> list[str]:
        if self.result is None:
            return []
        ops = {r.op_id for r in self.result.results.values() if r.outcome in NOT_DONE}
        return sorted({c.integration for c in self.plan.changes if c.op_id in ops})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel while running; retry after failures; resume after a cancel or a stop."""
        if action in ("cancel_run", "retry_failed", "resume_run", "back"):
            return None if self.disabled_reason(action) else True
        return True

    def disabled_reason(self, action: str) -> str:
        """Why ``action`` cannot run now (``""`` when it can)."""
        from console.errors import Refused

        refused = isinstance(self.failed_error, Refused)
        if action == "cancel_run":
            if self.cancel_requested and self.running:
                return ("Cancel already requested: operations in flight are finishing and "
                        "are recorded.")
            if not self.running:
                return "The run has finished: nothing to cancel."
        elif action == "retry_failed":
            if self.running:
                return "The run is still going: retry what failed once it has ended."
            if refused:
                return "Refused before anything ran: nothing to retry. Go back and plan again."
            if self.result is None:
                return "The run stopped before its end: press u to resume it."
            if self.result.cancelled:
                return "The run was cancelled: press u to resume it instead."
            if not self._retry_targets():
                return "Nothing failed: nothing to retry."
        elif action == "resume_run":
            if self.running:
                return "The run is still going: nothing to resume."
            if refused:
                return ("Refused before anything ran: nothing to resume. Go back and plan "
                        "again.")
            if self.result is not None and not self.result.cancelled:
                return "The run has finished: nothing to resume" + (
                    "; press t to retry what failed." if self._retry_targets() else ".")
        elif action == "back" and self.running:
            return ("A run is in progress: cancel it with c first (in-flight operations "
                    "finish and are recorded).")
        return ""

    def on_key(self, event: events.Key) -> None:
        """A key whose action is disabled says why."""
        explain_disabled(self, event, self.disabled_reason)

    def action_back(self) -> None:
        """Leave this screen (the run has ended)."""
        self.dismiss()

    def action_cancel_run(self) -> None:
        """Ask, then stop starting operations."""
        from console.tui.widgets.confirm_run import ConfirmCancelModal

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_starting("cancel requested by the operator")

        self.app.push_screen(ConfirmCancelModal(), answered)

    def stop_starting(self, why: str) -> None:
        """Cancel the run: no new operation starts; in-flight ones finish and are recorded.

        The one cancel path: the ``c`` key, and the app's quit guard and hang-up handler.

        Args:
            why: Logged on this screen (who or what cancelled).
        """
        if not self.running or self.cancel_requested:
            return
        self.cancel_requested = True
        if self.session is not None:
            self.session.request_cancel()
        self._verdict("Cancelling — in-flight operations finish and are recorded…",
                      "-warning")
        self._log(why)
        self.refresh_bindings()

    def action_resume_run(self) -> None:
        """Finish the operations that did not run."""
        for c in self.plan.changes:
            r = self.results.get(c.op_id)
            if r is not None and r.outcome in (Outcome.SKIPPED, Outcome.PENDING):
                self.final.discard(c.op_id)
                self._set(c.op_id, state="queued")
        self._log("resuming the run")
        self._start(resume=True)

    def action_retry_failed(self) -> None:
        """Plan the failed integrations again (same runbook); the plan goes through
        confirmation again."""
        targets = self._retry_targets()
        if not targets:
            return
        self._verdict(f"Planning a retry for {', '.join(targets)}…", "-warning")
        self._plan_retry(targets)

    @work(exclusive=True, group="run-retry", exit_on_error=False)
    async def _plan_retry(self, targets: list[str]) -> None:
        app: Any = self.app
        session = app.session()
        if self.plan.restore_of:
            plan = await asyncio.to_thread(session.restore_plan, self.plan.restore_of)
        else:
            plan = await session.plan(self.plan.runbook, targets)
        self.post_message(PlanReady(plan))

    def on_plan_ready(self, message: PlanReady) -> None:
        """Review the retry plan (and confirm it again)."""
        self.app.post_message(PlanReviewRequested(message.plan))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A retry that cannot be planned is shown with its hint."""
        if event.worker.group != "run-retry" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if error is not None:
            self._verdict(f"Retry could not be planned: {error_text(error)}", "-failed")
            self.notify(error_text(error), title=describe_error(error)[0], severity="error")
