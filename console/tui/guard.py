"""No way around a run: every exit from the console goes through :class:`RunGuard`.

While a run is in progress, ``q``, ctrl+q, ctrl+c, the palette's "app: quit" and Textual's
built-in "Quit" system command all ask (:class:`ConfirmQuitModal`). Yes cancels the run the
way the run screen's ``c`` does (no new operation starts; in-flight ones finish and are
recorded), and the console closes only once the run's worker has recorded the run's end.

A lost terminal (SIGHUP; SIGTERM likewise) does the same without asking. The next start
shows a run left unfinished by a dead console first and offers to resume it
(:meth:`RunGuard.offer_resume`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Any

from console.errors import EXIT_INTERRUPTED, ConsoleError

if TYPE_CHECKING:
    from console.tui.app import KillswitchApp

__all__ = ["HANGUP_SIGNALS", "RunGuard"]

HANGUP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name))
"""Signals that mean "the operator is gone": cancel the run, record its end, then exit."""


class RunGuard:
    """The app's one gate on the way out.

    Args:
        app: The console.
    """

    def __init__(self, app: KillswitchApp) -> None:
        self.app = app
        self.asking = False
        """The quit question is on screen."""
        self.quitting = False
        """Quit was confirmed (or the terminal was lost): exit once the run has ended."""
        self.hung_up = False
        """A hang-up signal arrived."""
        self._signals: list[signal.Signals] = []

    # -- quitting ------------------------------------------------------------------------
    def quit(self) -> None:
        """Quit now, or, while a run is in progress, ask first."""
        if not self.app.run_in_progress():
            self.app.exit()
            return
        if self.asking or self.quitting:
            return
        from console.tui.widgets.confirm_quit import ConfirmQuitModal

        def answered(yes: bool | None) -> None:
            self.asking = False
            if yes:
                self.stop_and_exit("quit confirmed by the operator: cancelling the run")

        self.asking = True
        self.app.push_screen(ConfirmQuitModal(), answered)

    def stop_and_exit(self, why: str) -> None:
        """Cancel every run in progress; exit as soon as none is left."""
        if not self.app.run_in_progress():  # it ended while the question was up
            self.app.exit()
            return
        self.quitting = True
        for screen in self._run_screens():
            screen.stop_starting(why)
        if self.app.run_in_progress():
            self.app.notify("Quitting once in-flight operations finish and are recorded…",
                            title="Cancelling the run", severity="warning", timeout=30)
        else:
            self.app.exit(EXIT_INTERRUPTED)

    def run_ended(self) -> None:
        """A run's worker ended (its end is in the trail): exit if quitting."""
        if self.quitting and not self.app.run_in_progress():
            self.app.exit(EXIT_INTERRUPTED)

    def _run_screens(self) -> list[Any]:
        run = sys.modules.get("console.tui.screens.run")
        if run is None:  # no run screen was ever opened
            return []
        return [s for s in self.app.screen_stack if isinstance(s, run.RunScreen) and s.running]

    # -- hang-up -------------------------------------------------------------------------
    def install(self) -> None:
        """Handle SIGHUP / SIGTERM in the event loop (main thread only; else a no-op)."""
        loop = asyncio.get_running_loop()
        for sig in HANGUP_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.hang_up, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                continue  # not the main thread, or no signals on this platform
            self._signals.append(sig)

    def remove(self) -> None:
        """Give the signals back."""
        loop = asyncio.get_running_loop()
        while self._signals:
            loop.remove_signal_handler(self._signals.pop())

    def hang_up(self, sig: int = 1) -> None:
        """The terminal is gone: no new operation starts; exit once the run's end is recorded."""
        if self.hung_up:
            return
        self.hung_up = True
        name = signal.Signals(sig).name
        self.stop_and_exit(f"{name}: terminal lost; cancelling the run")

    # -- start-up ------------------------------------------------------------------------
    async def offer_resume(self) -> None:
        """Show a run a dead console left unfinished first, with an offer to resume it."""
        app = self.app
        session = app.session()
        try:
            found = await asyncio.to_thread(session.interrupted_runs)
            if not found:
                return
            run_id = found[-1]
            plan, events = await asyncio.to_thread(session.load_run, run_id)
        except ConsoleError as exc:
            app.notify(f"Could not look for unfinished runs: {exc}", title="Audit trail",
                       severity="error")
            return
        from console.tui.widgets.resume_offer import ResumeOfferModal

        previous = session.op_results(events)
        start = next(e for e in events if e.get("phase") == "run"
                     and e.get("outcome") == "started")
        reason = str((start.get("detail") or {}).get("reason") or "")

        def answered(yes: bool | None) -> None:
            if yes:
                app.open_run(plan, reason, False, resume=True, previous=previous)

        app.push_screen(ResumeOfferModal(plan, events, previous, others=found[:-1]), answered)
