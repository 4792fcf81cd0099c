"""The run: live progress per operation, verify results, cancel, retry, resume.

The apply itself runs in a worker owned by the *app*, not this screen: leaving the screen
(``i``, ``A``) must never cancel an apply half way. Progress comes from the engine's progress
hook (called in the event loop) as :class:`OperationChanged` messages; the end comes as
:class:`RunFinished` or :class:`RunFailed`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from console.tui.messages import (
    OperationChanged,
    PlanReady,
    RunFailed,
    RunFinished,
    describe_error,
    error_text,
)
from console.tui.widgets.banner import ModeBanner
from console.vocab import NOT_DONE, Outcome

if TYPE_CHECKING:
    from console.engine.model import OpResult, Plan, RunResult
    from console.engine.service import Session

__all__ = ["RunScreen", "verify_word"]



def verify_word(res: OpResult) -> str:
    """What verify proved, in the words an operator expects."""
    if res.verified is None:
        return ""
    if res.verified:
        return res.verdict or "ok"
    if res.verdict in ("live", "STILL LIVE"):
        return "STILL LIVE"
    if res.verdict in ("", "unknown"):
        return "unknown"
    return f"{res.verdict} (not as planned)"


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

    | key    | action                                                        |
    |--------|---------------------------------------------------------------|
    | c      | cancel the run (asks; in-flight operations finish)            |
    | t      | retry failed operations: plan them again, confirm again       |
    | u      | resume a cancelled or interrupted run                         |
    | escape | back (not while the run is going)                             |

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

    def compose(self) -> ComposeResult:
        """Banner, headline, operations, progress, verdict, log, footer."""
        yield ModeBanner()
        yield Static(id="run-header")
        yield DataTable(id="run-table", cursor_type="row")
        with Horizontal(id="run-progress-row"):
            yield ProgressBar(total=max(len(self.plan.changes), 1), show_eta=False,
                              id="run-progress")
            yield Static(id="run-elapsed")
        yield Static(id="run-verdict")
        yield RichLog(id="run-log", max_lines=2000, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table with queued operations and start applying."""
        plan = self.plan
        what = (f"restore of run {plan.restore_of}" if plan.restore_of
                else f"runbook {plan.runbook}")
        self.query_one("#run-header", Static).update(
            f"RUN {plan.run_id} — {what} — reason: {self.reason}")
        table = self.query_one("#run-table", DataTable)
        table.add_column("target", key="target")
        table.add_column("action", key="action")
        table.add_column("state", key="state", width=22)
        table.add_column("verify", key="verify", width=12)
        table.add_column("message", key="message")
        for c in plan.changes:
            res = self.results.get(c.op_id)
            state = "queued" if res is None else (
                "interrupted" if res.outcome == Outcome.PENDING else _state(res, {}))
            table.add_row(c.target, c.action, self._cell(state), "",
                          res.message if res else "", key=c.op_id)
        table.focus()
        self._start(resume=self.resume_on_mount)

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

    def _cell(self, text: str) -> Text:
        if text.startswith(("FAILED", "REFUSED", "STILL LIVE")) or "not as planned" in text:
            return Text(text, style=self._style("error"))
        if text.startswith(("retrying", "running", "skipped", "unsupported", "unknown",
                            "propagating")):
            return Text(text, style=self._style("warning"))
        if text.startswith("done") or text in ("dead", "off", "restored", "revoked"):
            return Text(text, style=self._style("success"))
        return Text(text)

    def _verdict(self, text: str, kind: str) -> None:
        verdict = self.query_one("#run-verdict", Static)
        verdict.update(text)
        for k in ("-ok", "-failed", "-warning"):
            verdict.set_class(k == kind, k)

    def on_operation_changed(self, message: OperationChanged) -> None:
        """One operation changed state: update its row, the progress and the log."""
        res, extra = message.result, message.extra
        table = self.query_one("#run-table", DataTable)
        change = next((c for c in self.plan.changes if c.op_id == res.op_id), None)
        target = change.target if change else res.op_id
        known = res.op_id in self.results
        self.results[res.op_id] = res
        if message.phase not in ("apply", "verify"):
            # extra evidence the engine gathers per integration (e.g. "proof": the provider
            # no longer accepts the key): its own row, outside the plan's progress
            word = res.verdict or res.outcome
            if res.op_id not in table.rows:
                table.add_row(res.op_id, message.phase, "", "", "", key=res.op_id)
            table.update_cell(res.op_id, "state", self._cell(
                "running" if res.outcome == Outcome.PENDING else "done"))
            table.update_cell(res.op_id, "verify", self._cell(word))
            table.update_cell(res.op_id, "message", res.message)
            self._log(f"{message.phase:<14} {res.op_id}: {word} — {res.message}")
            return
        if message.phase == "verify":
            word = verify_word(res)
            detail = str(extra.get("detail") or "")
            if known:
                table.update_cell(res.op_id, "verify", self._cell(word))
                table.update_cell(res.op_id, "message", detail)
            self._log(f"verify  {target}: {word} — {detail}")
            return
        state = _state(res, extra)
        if res.outcome != Outcome.PENDING and not (extra.get("running") or extra.get("retrying")):
            self.final.add(res.op_id)
        if res.op_id in {c.op_id for c in self.plan.changes}:
            table.update_cell(res.op_id, "state", self._cell(state))
            table.update_cell(res.op_id, "message", res.message)
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

    def on_run_finished(self, message: RunFinished) -> None:
        """Show the verify results and one verdict line."""
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
        if result.cancelled:
            skipped = sum(1 for r in result.results.values() if r.outcome == Outcome.SKIPPED)
            text, kind = (f"CANCELLED — {skipped} operation(s) not started were skipped; "
                          "press u to resume the run."), "-warning"
        elif keys:  # a key still live or unchecked wins over everything else, as exit 4
            text, kind = ("NOT VERIFIED — key STILL LIVE or could not be checked: "
                          + ", ".join(keys[:3])), "-failed"
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
            dead = sum(1 for r in result.results.values() if r.verified)
            word = "restored" if self.plan.restore_of else "dead or off"
            text, kind = (f"OK — every change applied and verified: {dead} target(s) "
                          f"{word}."), "-ok"
        self.set_class(kind == "-failed", "-failed")
        self._verdict(text, kind)
        self._log(text)

    def on_run_failed(self, message: RunFailed) -> None:
        """A refusal or an error: show the message (who holds a lock, since when)."""
        from console.errors import Refused

        self._stopped()
        error = self.failed_error = message.error
        if isinstance(error, Refused):
            text = f"REFUSED — nothing was changed: {error_text(error)}"
        else:
            text = f"STOPPED — {error_text(error)}\nSee the audit trail (A); u resumes."
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
        from console.errors import Refused

        if action == "cancel_run":
            return True if self.running and not self.cancel_requested else None
        if action == "retry_failed":
            ok = not self.running and self.result is not None and not self.result.cancelled \
                and bool(self._retry_targets())
            return True if ok else None
        if action == "resume_run":
            resumable = (self.result is not None and self.result.cancelled) or (
                self.failed_error is not None and not isinstance(self.failed_error, Refused))
            return True if (not self.running and resumable) else None
        if action == "back":
            return None if self.running else True
        return True

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
                self.query_one("#run-table", DataTable).update_cell(c.op_id, "state", "queued")
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
        app: Any = self.app
        app.open_plan(message.plan)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A retry that cannot be planned is shown with its hint."""
        if event.worker.group != "run-retry" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if error is not None:
            self._verdict(f"Retry could not be planned: {error_text(error)}", "-failed")
            self.notify(error_text(error), title=describe_error(error)[0], severity="error")
