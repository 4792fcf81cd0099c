"""A tabletop exercise played in the console: the clock, the injects as notices, the end.

The console's side of :class:`console.exercise.player.Exercise`. One :class:`ExercisePlay`
per app (``app.exercise_play``):

* :meth:`ExercisePlay.pick` lists the scenarios (in a thread) and opens the picker;
  :meth:`ExercisePlay.begin` checks the chosen one against the config, switches the console
  to EXERCISE with the exercise id as its incident, starts the clock (T+0) and fires the
  injects in a worker (group ``exercise``). Every plan and run made meanwhile is the
  exercise's (``Session(mode="exercise", incident=<exercise id>)``: :meth:`session_args`).
* Each inject is a notice titled ``INJECT T+mm:ss`` (warning, long timeout); each fault the
  exercise applies or clears is a notice too (``FAULT openai-sandbox: latency 1 s, ...``).
* The banner shows the scenario and its clock (``app.drill_banner``, set once a second: a
  display, not a scheduler). f2 shows the facilitator's view (:class:`FacilitatorModal`).
* :meth:`ExercisePlay.end` (palette "exercise: end", or ``e`` in the facilitator's view)
  scores the exercise from the trail (:meth:`Exercise.finish`: faults and locks cleared), shows
  the scorecard and offers ``sandbox reset`` (the palette's own verb).
* :meth:`ExercisePlay.rehearse` (palette "plan: rehearse this plan" on the plan review) plays
  the reviewed plan against a simulated copy of what it observed
  (:meth:`Session.rehearse <console.engine.service.Session.rehearse>`: no adapter's apply is
  called) in a worker (group ``rehearsal``), REHEARSAL in the banner while it plays, and shows
  its result.

Nothing here talks to a backend: the player does, in its worker.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.timer import Timer

    from console.engine.model import Plan
    from console.exercise.player import Exercise
    from console.exercise.scenario import Scenario
    from console.tui.app import KillswitchApp

__all__ = ["INJECT_TIMEOUT", "ExercisePlay", "describe_fault"]

INJECT_TIMEOUT = 60.0
"""Seconds an inject's notice stays up (the players must be able to read it out)."""


def describe_fault(fault: Any) -> str:
    """A fault in a few words: ``openai-sandbox: latency 1 s, 30% answered 429 (...)``.

    Args:
        fault: A :class:`~console.exercise.scenario.Fault`, or its trail form
            (:func:`console.exercise.player.fault_detail`: ``kind``, ``backend``,
            ``integration``, ``settings``, ``holder``, ``path``, ``for_s``).
    """
    if fault is None:
        return ""
    d: dict[str, Any] = asdict(fault) if is_dataclass(fault) and not isinstance(
        fault, type) else dict(fault)
    kind = str(d.get("kind") or "backend")
    duration = d.get("for_s", d.get("duration"))
    lasting = ""
    if duration is not None:
        from console.exercise.scenario import format_clock

        lasting = f" for {format_clock(float(duration), prefix='')}"
    if kind == "lock":
        return (f"{d.get('integration', '?')}: lock held by "
                f"{d.get('holder') or 'another commander'}{lasting}")
    if kind == "unlisted-copy":
        return (f"{d.get('integration', '?')}: an unlisted copy of its key at "
                f"{d.get('backend', '?')}:{d.get('path', '?')}")
    settings = dict(d.get("settings") or {})
    if settings.get("clear"):
        what = "faults cleared"
    else:
        from console.sandbox.faultproxy import describe

        what = describe(settings)
    return f"{d.get('backend', '?')}: {what}{lasting}"


class ExercisePlay:
    """The exercise being played in the console (at most one at a time).

    Args:
        app: The console.
    """

    def __init__(self, app: KillswitchApp) -> None:
        self.app = app
        self.exercise: Exercise | None = None
        """The exercise being played; None before one starts and after it ends."""
        self.scenario: Scenario | None = None
        self._timer: Timer | None = None
        self._incident_before = ""
        self._starting = False
        self.rehearsing = ""
        """The runbook of the rehearsal playing now ("" when none)."""

    @property
    def active(self) -> bool:
        """An exercise is being played (started, not ended)."""
        return self.exercise is not None

    def session_args(self) -> dict[str, Any]:
        """What the app's sessions take while an exercise is played: its mode, incident and
        cause (``exercise``)."""
        if self.exercise is None:
            return {}
        return {"mode": "exercise", "incident": self.exercise.id, "cause": "exercise"}

    # -- starting ------------------------------------------------------------------------
    def _refused(self) -> bool:
        app = self.app
        if app.config.real_backends:
            app.notify("An exercise plays only on sandbox backends, and these are not: "
                       f"{', '.join(app.config.real_backends)}.", title="Exercise",
                       severity="error")
            return True
        if self.active or self._starting:
            app.notify("An exercise is already being played: end it first (ctrl+p, "
                       "exercise: end).", title="Exercise", severity="warning")
            return True
        return False

    def pick(self) -> None:
        """List the scenarios (in a thread), then open the picker; the chosen one starts."""
        if self._refused():
            return
        from console.exercise.scenario import list_scenarios

        def chosen(scenario: Scenario | None) -> None:
            if scenario is not None:
                self.begin(scenario)

        def show(scenarios: list[Scenario]) -> None:
            from console.tui.screens.exercise import ScenarioPicker

            if not scenarios:
                self.app.notify("No scenario found: add TOML files to a folder named in "
                                "[settings] exercise_dirs.", title="Exercise",
                                severity="warning")
                return
            self.app.push_screen(ScenarioPicker(scenarios), chosen)

        self.app._in_thread("exercise-list", lambda: list_scenarios(self.app.config), show)

    def begin(self, scenario: Scenario) -> None:
        """Play ``scenario``: T+0 now, the injects at their times (worker ``exercise``)."""
        if self._refused():
            return
        self._starting = True
        self.app.run_worker(self._play(scenario), group="exercise", exit_on_error=False)

    async def _play(self, scenario: Scenario) -> None:
        from console.exercise.player import Exercise

        app = self.app
        try:
            ex = Exercise(app.config, scenario, speed=app.speed, operator=app.operator,
                          on_event=self._on_event, runtime=app.runtime)
            await ex.start()  # checks the config and the scenario, then T+0
        except BaseException:
            self._starting = False
            raise
        self._starting = False
        self.exercise, self.scenario = ex, scenario
        self._incident_before = app.incident
        app.incident = ex.id
        if app.mode != "exercise":
            app.mode = "exercise"
        self._tick()
        self._timer = app.set_interval(1.0, self._tick)
        app.refresh_bindings()
        app.notify(f"{scenario.title}\nIncident {ex.id}; f2: the facilitator's view "
                   "(briefing, injects); ctrl+p, exercise: end for the scorecard.",
                   title=f"EXERCISE {scenario.name} started (T+00:00)", severity="warning",
                   timeout=15)
        await ex.run_injects()

    # -- while it plays ------------------------------------------------------------------
    def _tick(self) -> None:
        """Show the scenario and its clock in the banner (display only)."""
        from console.exercise.scenario import format_clock

        ex = self.exercise
        parts = [f"REHEARSAL {self.rehearsing}"] if self.rehearsing else []
        if ex is not None:
            parts.append(f"{ex.scenario.name} {format_clock(ex.elapsed())}")
        self.app.drill_banner = " | ".join(parts)

    def _on_event(self, kind: str, payload: dict[str, Any]) -> None:
        """The player's events (any thread): injects and faults become notices."""
        if threading.get_ident() == self.app._thread_id:
            self._show(kind, payload)
        else:
            self.app.call_from_thread(self._show, kind, payload)

    def _show(self, kind: str, payload: dict[str, Any]) -> None:
        from console.exercise.scenario import format_clock

        app = self.app
        if kind == "inject":
            message = str(payload.get("message") or "")
            fault = payload.get("fault")
            body = message or f"(fault only) {describe_fault(fault)}"
            app.notify(body, title=f"INJECT {format_clock(float(payload.get('at') or 0))}",
                       severity="warning", timeout=INJECT_TIMEOUT, markup=False)
        elif kind == "fault":
            fault = payload.get("fault")
            what = describe_fault(fault if isinstance(fault, dict) else payload)
            if payload.get("outcome") == "failed":
                app.notify(f"{what}\n{payload.get('message') or ''}".strip(),
                           title="FAULT could not be applied", severity="error",
                           timeout=INJECT_TIMEOUT, markup=False)
            else:
                app.notify(f"FAULT {what}", title="FAULT applied", severity="warning",
                           timeout=INJECT_TIMEOUT, markup=False)
        elif kind == "fault.clear":
            failed = payload.get("outcome") == "failed"
            what = ("lock released" if payload.get("kind") == "lock" else "faults cleared")
            app.notify(f"{payload.get('target') or '?'}: "
                       + (f"could not be cleared: {payload.get('message') or ''}" if failed
                          else what), title="FAULT cleared" if not failed else "FAULT",
                       severity="error" if failed else "information", markup=False)
        if kind in ("inject", "fault", "fault.clear"):
            from console.tui.screens.exercise import FacilitatorModal

            if isinstance(app.screen, FacilitatorModal):
                app.screen.refresh_text()

    def facilitator_text(self) -> str:
        """The facilitator's view now (briefing, upcoming and fired injects)."""
        from console.exercise.scenario import format_clock
        from console.tui.screens.exercise import facilitator_text

        ex = self.exercise
        if ex is None:
            return "No exercise is being played."
        return facilitator_text(ex.scenario, format_clock(ex.elapsed()), ex.upcoming(),
                                ex.fired(), describe_fault)

    def show_facilitator(self) -> None:
        """Open the facilitator's view (f2)."""
        from console.tui.screens.exercise import FacilitatorModal

        if self.exercise is None:
            self.app.notify("No exercise is being played: ctrl+p, exercise: start scenario.",
                            title="Facilitator")
            return
        if isinstance(self.app.screen, FacilitatorModal):
            self.app.screen.dismiss(None)
            return
        self.app.push_screen(FacilitatorModal(self.facilitator_text, self.end))

    # -- the end ---------------------------------------------------------------------------
    def end(self) -> None:
        """Score the exercise (a worker), show the scorecard, offer a sandbox reset.

        Refused while a run is in progress (its events belong in the score).
        """
        app = self.app
        ex = self.exercise
        if ex is None:
            app.notify("No exercise is being played.", title="Exercise")
            return
        if app._refuse_while_running("ending the exercise"):
            return
        if any(w.group == "exercise-end" and not w.is_finished for w in app.workers):
            return
        app.notify("Clearing the exercise's faults and scoring it from the trail…",
                   title=f"EXERCISE {ex.scenario.name} ending")
        app.run_worker(self._finish(ex), group="exercise-end", exit_on_error=False)

    async def _finish(self, ex: Exercise) -> None:
        from console.tui.screens.exercise import ScorecardModal

        app = self.app
        card = await ex.finish()  # stops the injects (run_injects returns), clears faults
        app.workers.cancel_group(app, "exercise")
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.exercise = None
        self._tick()
        app.incident = self._incident_before
        app.refresh_bindings()
        data = card.to_json()

        def answered(reset: bool | None) -> None:
            if reset:
                from console.tui.commands import _sandbox_reset

                _sandbox_reset(app)

        app.push_screen(ScorecardModal(data, offer_reset=not app.config.real_backends),
                        answered)


    # -- rehearsal -------------------------------------------------------------------------
    def rehearse(self, plan: Plan) -> None:
        """Rehearse ``plan`` instead of running it: the real executor against a simulated copy
        of what the plan observed; nothing is applied. REHEARSAL in the banner meanwhile."""
        app = self.app
        if self.rehearsing:
            app.notify(f"A rehearsal of {self.rehearsing} is already playing.",
                       title="Rehearsal")
            return
        self.rehearsing = plan.runbook
        self._tick()
        app.notify(f"Playing {plan.runbook} against a simulated copy of what the plan "
                   "observed: nothing is applied anywhere.", title="REHEARSAL started",
                   timeout=10)
        app.run_worker(self._rehearse(plan), group="rehearsal", exit_on_error=False)

    async def _rehearse(self, plan: Plan) -> None:
        from console.engine.rehearsal import render_rehearsal
        from console.tui.screens.exercise import RehearsalModal

        app = self.app
        session = app.session()
        try:
            result = await session.rehearse(plan=plan, reason="console rehearsal")
        finally:
            session.close()
            self.rehearsing = ""
            self._tick()
        failed = len(result.failed)
        app.notify(f"{plan.runbook}: {result.simulated_applies} simulated apply(s), none real"
                   + (f"; {failed} operation(s) would not end as planned" if failed else ""),
                   title="REHEARSAL finished", severity="warning" if failed else "information",
                   timeout=10)
        app.push_screen(RehearsalModal(render_rehearsal(result)))
