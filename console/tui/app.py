"""The Killswitch console: a Textual app on the same engine as the headless CLI.

Keys (app-wide):

| key      | action                                  |
|----------|-----------------------------------------|
| ctrl+p   | command palette ("group: verb")         |
| ?        | help: every key of every screen         |
| i        | inventory                               |
| A        | audit trail                             |
| ctrl+l   | switch mode (type the mode's name)      |
| f2       | facilitator's view (sandbox configs)    |
| q        | quit (asks first while a run is going)  |

The top-level sections (inventory, audit, team, help) are Textual modes
(:attr:`KillswitchApp.MODES`), each with its own screen stack: ``A`` shows the audit trail
where it was left, Escape on a section's first screen goes back to the section the operator
came from, ``i`` closes every screen above the inventory. Leaving a section while a run is
in progress is refused (the run would be left unwatched). Screens say what the operator
asked for with the messages of :mod:`console.tui.messages`; the app routes them.

Screens live in ``screens/`` and are imported when first opened, so start-up loads only the
inventory. Engine calls run in workers; nothing here talks to a backend directly.

A tabletop exercise (``scenario=``, or the palette's "exercise: start scenario…") is played by
:class:`console.tui.exercise.ExercisePlay`: while it plays, every session is the exercise's
(mode ``exercise``, incident = the exercise id) and the banner shows its scenario and clock.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual.app import App, SystemCommand
from textual.await_complete import AwaitComplete
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from console.errors import ConsoleError, UsageError
from console.tui import messages
from console.vocab import mode_sentence

if TYPE_CHECKING:
    from textual.command import Provider
    from textual.screen import Screen
    from textual.worker import Worker

    from console.config import Config
    from console.engine.model import Plan
    from console.engine.runtime import Runtime
    from console.engine.service import Session
    from console.exercise.scenario import Scenario
    from console.tui.exercise import ExercisePlay
    from console.tui.guard import RunGuard
    from console.tui.live import LiveView
    from console.tui.observed import ObservedStates

__all__ = ["KillswitchApp", "OPERATING_MODES", "SECTIONS", "make_app", "run_tui"]

T = TypeVar("T")

OPERATING_MODES = ("dry-run", "live", "exercise")
"""The console's operating modes (not Textual's modes: those are :data:`SECTIONS`)."""


def _section(module: str, name: str) -> Callable[[], Screen[Any]]:
    """The first screen of a section, imported when the section is first shown."""
    import importlib

    return lambda: getattr(importlib.import_module(f"console.tui.screens.{module}"), name)()


SECTIONS: dict[str, str | Callable[[], Screen[Any]]] = {
    "inventory": _section("inventory", "InventoryScreen"),
    "audit": _section("audit", "AuditScreen"),
    "team": _section("team", "TeamScreen"),
    "help": _section("help", "HelpScreen"),
}
"""The top-level sections, as Textual modes: name -> their first screen."""

WORKER_TITLES = {"report": "Report", "restore": "Restore", "sandbox-reset": "Sandbox reset",
                 "exercise": "Exercise", "exercise-end": "Exercise",
                 "exercise-list": "Exercise scenarios"}
"""App workers whose failure is shown as a notification with this title."""


def _commands() -> type[Provider]:
    """The palette's provider, imported when the palette first opens."""
    from console.tui.commands import KillswitchCommands

    return KillswitchCommands


class KillswitchApp(App[int]):
    """The console.

    Args:
        config: The loaded config.
        mode: The starting mode: ``dry-run`` (default), or the config's applying mode
            (:attr:`applying_mode`): ``exercise`` when every backend is a sandbox backend
            (``sandbox = true``), ``live`` otherwise.
        exercise: ``--exercise``: refuse (exit 2) unless every backend is a sandbox backend.
        incident: Incident id shown in the banner and recorded.
        operator: Who is acting (default from config / environment).
        scenario: Play a tabletop exercise (implies ``exercise``): a scenario name or
            ``.toml`` path, loaded and checked against the config here (a bad one is a
            :class:`~console.errors.ConsoleError`, exit 2), started once the console is up;
            ``""``: open the scenario picker first. None (default): no exercise.
        speed: Scenario seconds per real second for that exercise (> 0).
    """

    TITLE = "Killswitch"
    CSS_PATH = ["app.tcss", "run.tcss"]
    ENABLE_COMMAND_PALETTE = True
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = (
        App.COMMANDS | {_commands})
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = SECTIONS
    DEFAULT_MODE: ClassVar[str] = "inventory"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Every key"),
        Binding("i", "inventory", "Inventory", id="app.inventory", show=False,
                tooltip="Back to the inventory"),
        Binding("A", "audit", "Audit", id="app.audit", show=False,
                tooltip="The audit trail: search, chain status, reports, restore"),
        Binding("ctrl+l", "toggle_live", "Mode", id="app.toggle-live",
                tooltip="Switch mode (DRY-RUN <-> EXERCISE or LIVE): type its name"),
        Binding("f2", "facilitator", "Facilitator", id="app.facilitator", show=False,
                tooltip="During an exercise: the briefing, upcoming and fired injects; "
                "e there ends the exercise"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the console"),
    ]

    mode: reactive[str] = reactive("dry-run")
    """Current mode: dry-run / live / exercise."""
    incident: reactive[str] = reactive("")
    cause: reactive[str] = reactive("other")
    """Why the runs happen (leak, cost, data, abuse, exercise, other): asked with the incident
    id, shown in the banner, planned into every plan and recorded."""
    """Incident id."""
    marked: reactive[frozenset[str]] = reactive(frozenset())
    """Ids of the integrations marked on the inventory screen."""
    drill_banner: reactive[str] = reactive("")
    """The banner's exercise / rehearsal segment (``leaked-key T+01:05``); "" when none."""
    approvals_pending: reactive[int] = reactive(0)
    """Pending approvals and co-signatures in the store (the banner shows the count)."""

    def __init__(self, config: Config, *, mode: str = "dry-run", exercise: bool = False,
                 incident: str = "", operator: str | None = None,
                 scenario: str | None = None, speed: float = 1.0) -> None:
        super().__init__()
        from console.engine.service import default_operator

        if mode not in OPERATING_MODES:
            raise ValueError(f"mode must be one of {', '.join(OPERATING_MODES)}, not {mode!r}")
        if not speed > 0:
            raise UsageError(f"speed must be more than 0, not {speed}",
                             hint="e.g. --speed 4 plays four scenario seconds per second")
        exercise = exercise or scenario is not None
        real = config.real_backends
        if (exercise or mode == "exercise") and real:
            raise UsageError(
                "EXERCISE applies only to sandbox backends, and these are not: "
                f"{', '.join(real)}", where=str(config.path),
                hint="mark each sandbox backend with `sandbox = true` in its [backends.NAME] "
                "table, or open the console without --exercise")
        if mode == "live" and not real:
            raise UsageError("LIVE applies to real systems, and every backend of this config "
                             "is a sandbox backend", where=str(config.path),
                             hint="use EXERCISE on a sandbox config")
        self.config = config
        self.speed = float(speed)
        """Scenario seconds per real second of an exercise played here."""
        self._scenario: Scenario | None = None
        self._pick_scenario = scenario == ""
        if scenario:
            from console.exercise.scenario import check_against, load_scenario

            self._scenario = load_scenario(scenario, config)
            check_against(self._scenario, config)
        self.exercise = not real
        """Every backend is a sandbox backend: the applying mode is EXERCISE, never LIVE."""
        self.operator = operator or default_operator(config)
        self._came_from: list[str] = []
        """Sections left for another one, most recent last (Escape goes back)."""
        self.set_reactive(KillswitchApp.mode, mode)
        self.set_reactive(KillswitchApp.incident, incident or config.settings.incident or "")
        keymap = getattr(config.settings, "keymap", None)
        if keymap:
            self.set_keymap(dict(keymap))

    # -- engine --------------------------------------------------------------------------
    def session(self) -> Session:
        """A fresh engine session in the current mode; while an exercise is played, the
        exercise's (mode ``exercise``, incident = the exercise id)."""
        from console.engine.service import Session

        kw: dict[str, Any] = {"incident": self.incident or None, "mode": self.applying_mode,
                              "cause": self.cause}
        if "exercise_play" in self.__dict__:
            kw.update(self.exercise_play.session_args())
        return Session(self.config, operator=self.operator, runtime=self.runtime, **kw)

    @cached_property
    def exercise_play(self) -> ExercisePlay:
        """The tabletop exercise played in this console (see :mod:`console.tui.exercise`)."""
        from console.tui.exercise import ExercisePlay

        return ExercisePlay(self)

    @cached_property
    def runtime(self) -> Runtime:
        """The console's one engine runtime: SDK clients are built once (warmed in the
        background after the first screen) and reused by every plan, run and refresh."""
        from console.engine.runtime import Runtime

        return Runtime(self.config)

    @cached_property
    def observed(self) -> ObservedStates:
        """The one store of observed kill-point states; every screen reads and refreshes
        them there (see :mod:`console.tui.observed`)."""
        from console.tui.observed import ObservedStates

        return ObservedStates(self)

    @cached_property
    def live_view(self) -> LiveView:
        """Other commanders' runs, locks and pending approvals, kept current from the store
        (see :mod:`console.tui.live`); started after the first paint."""
        from console.tui.live import LiveView

        return LiveView(self)

    @property
    def applying_mode(self) -> str:
        """The one mode that applies on this config: ``exercise`` (all sandbox) or ``live``."""
        return "exercise" if self.exercise else "live"

    @property
    def live(self) -> bool:
        """True when runs really change things (LIVE or EXERCISE)."""
        return self.mode in ("live", "exercise")

    # -- screens -------------------------------------------------------------------------
    def on_mount(self) -> None:
        """The inventory is the first section (:attr:`DEFAULT_MODE`); install the guard."""
        self.screen_change_signal.subscribe(self, self._banner_on_every_screen)
        self.guard.install()
        self.run_worker(self.guard.offer_resume(), group="resume-offer", exit_on_error=False)
        if self._scenario is not None:
            self.exercise_play.begin(self._scenario)
        elif self._pick_scenario:
            self.exercise_play.pick()

    def _banner_on_every_screen(self, screen: Screen[Any]) -> None:
        """A screen that composes no mode banner (the palette, a dialog) gets one on top."""
        from console.tui.widgets.banner import ModeBanner

        def add() -> None:
            if screen.is_attached and not screen.query(ModeBanner):
                screen.mount(ModeBanner(), before=0 if screen.children else None)

        screen.call_after_refresh(add)

    def on_unmount(self) -> None:
        """Give the hang-up signals back and close the clients."""
        self.guard.remove()
        if "live_view" in self.__dict__:
            self.live_view.stop()
        if "runtime" in self.__dict__:
            self.runtime.close()

    def startup_finished(self) -> None:
        """The first screen is painted: turn the cyclic collector back on, with what start-up
        built (the config, the inventory's rows: alive for the whole session) moved out of
        its reach, so that no later collection pauses a keystroke to scan it again."""
        import gc

        gc.freeze()
        gc.enable()
        self.run_worker(self.runtime.warm, thread=True, group="warm", exit_on_error=False)
        self.live_view.start()
        from console.store import local_override

        if local_override(self.config):
            self.notify("KILLSWITCH_STORE=sqlite: this console uses the local SQLite file, not "
                        "the shared store. Other commanders' locks, runs and approvals are not "
                        "seen, and they do not see yours.", title="Not the shared store",
                        severity="warning", timeout=60)

    def run_in_progress(self) -> bool:
        """True while a live run's worker (group ``run``) has not finished."""
        from textual.worker import WorkerState

        return any(w.group == "run" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers)

    def _refuse_while_running(self, what: str) -> bool:
        if not self.run_in_progress():
            return False
        self.notify(f"A run is in progress: {what} now would leave it unwatched or "
                    "unfinished. Cancel it on the run screen (c) first; in-flight operations "
                    "finish and are recorded.", title="Run in progress", severity="error")
        return True

    @cached_property
    def guard(self) -> RunGuard:
        """The one gate on the way out (quit keys, palette, system Quit, SIGHUP)."""
        from console.tui.guard import RunGuard

        return RunGuard(self)

    async def action_quit(self) -> None:
        """Leave the console; while a run is in progress, ask and cancel it first."""
        self.guard.quit()

    def action_help_quit(self) -> None:
        """ctrl+c: like quit while a run is in progress, else Textual's hint."""
        if self.run_in_progress():
            self.guard.quit()
        else:
            super().action_help_quit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's system commands, with Quit going through the guard."""
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                command = SystemCommand("Quit", "Leave the console (asks first while a run "
                                        "is in progress)", self.action_quit)
            yield command

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A run's end lets a confirmed quit go ahead; a failed start-up check, report,
        restore plan or sandbox reset is shown."""
        from textual.worker import WorkerState

        if event.worker.group == "run" and event.state in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.guard.run_ended()
        elif event.worker.group == "resume-offer" and event.state == WorkerState.ERROR:
            self.notify(f"Could not look for unfinished runs: {event.worker.error}",
                        title="Audit trail", severity="error")
        elif event.worker.group in WORKER_TITLES and event.state == WorkerState.ERROR \
                and event.worker.error is not None:
            self.notify(messages.error_text(event.worker.error), severity="error", timeout=15,
                        title=WORKER_TITLES[event.worker.group])

    # -- sections (Textual modes) ----------------------------------------------------------
    def show_section(self, section: str, what: str) -> bool:
        """Show a top-level section where it was left; refused while a run is in progress.

        Args:
            section: ``inventory``, ``audit``, ``team`` or ``help``.
            what: What the operator is doing, for the refusal ("opening the audit trail").

        Returns:
            True when the section is shown.
        """
        if section == self.current_mode:
            return True
        if self._refuse_while_running(what):
            return False
        came_from = [s for s in self._came_from if s not in (section, self.current_mode)]
        self._came_from = [*came_from, self.current_mode]
        self.switch_mode(section)
        return True

    def pop_screen(self) -> AwaitComplete:
        """Close the top screen; on a section's first screen (audit, help), go back to the
        section the operator came from instead."""
        if len(self.screen_stack) <= 1 and self.current_mode != self.DEFAULT_MODE:
            back = self._came_from.pop() if self._came_from else self.DEFAULT_MODE
            self.switch_mode(back)
            return AwaitComplete()
        return super().pop_screen()

    def action_inventory(self) -> None:
        """Go back to the inventory: its section, every screen above it closed."""
        if self._refuse_while_running("leaving the run screen"):
            return
        self.show_section("inventory", "leaving for the inventory")
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_help(self) -> None:
        """Show every key."""
        self.show_section("help", "opening the help")

    def action_facilitator(self) -> None:
        """During an exercise: the briefing, the upcoming and the fired injects."""
        self.exercise_play.show_facilitator()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The facilitator key exists only on a sandbox config (where exercises play)."""
        if action == "facilitator":
            return self.exercise
        return True

    def _screen(self, module: str, name: str) -> Any:
        """Import a screen class on first use; a missing one is a notification, not a crash."""
        import importlib

        try:
            return getattr(importlib.import_module(f"console.tui.screens.{module}"), name)
        except (ImportError, AttributeError) as exc:
            self.notify(f"{name} is not available: {exc}", title="Not available",
                        severity="error")
            return None

    def action_audit(self) -> None:
        """Show the audit trail (where it was left; it reads the trail again)."""
        self.show_section("audit", "opening the audit trail")

    def action_team(self) -> None:
        """Show the other commanders' runs, live (the team section)."""
        self.show_section("team", "opening the team view")

    def open_approvals(self) -> None:
        """The pending approvals (in the team section)."""
        screen = self._screen("approvals", "ApprovalsScreen")
        if screen is not None and self.show_section("team", "opening the approvals"):
            if not isinstance(self.screen, screen):
                self.push_screen(screen())

    def open_detail(self, integration_id: str) -> None:
        """Open one integration's detail (in the inventory section)."""
        from console.tui.screens.detail import DetailScreen

        if self.show_section("inventory", "opening an integration"):
            self.push_screen(DetailScreen(integration_id))

    def open_runbooks(self, integration_ids: list[str], runbook: str | None = None) -> None:
        """Pick a runbook for these integrations (in the inventory section); ``runbook``:
        highlight that one and plan it at once."""
        screen = self._screen("runbook", "RunbookScreen")
        if screen is not None and self.show_section("inventory", "picking a runbook"):
            self.push_screen(screen(integration_ids, runbook=runbook))

    def open_plan(self, plan: Plan) -> None:
        """Review a plan."""
        screen = self._screen("plan", "PlanScreen")
        if screen is not None:
            self.push_screen(screen(plan))

    def open_run(self, plan: Plan, reason: str, allow_irreversible: bool, **kw: Any) -> None:
        """Apply a confirmed plan and watch it (``resume=True``: resume an interrupted run)."""
        screen = self._screen("run", "RunScreen")
        if screen is not None:
            self.push_screen(screen(plan, reason=reason, allow_irreversible=allow_irreversible,
                                    **kw))

    # -- what the screens ask for (console.tui.messages) ----------------------------------
    def on_detail_requested(self, message: messages.DetailRequested) -> None:
        """Open the integration's detail."""
        self.open_detail(message.integration_id)

    def on_runbooks_requested(self, message: messages.RunbooksRequested) -> None:
        """Open the runbook picker."""
        self.open_runbooks(message.integration_ids, runbook=message.runbook)

    def on_plan_review_requested(self, message: messages.PlanReviewRequested) -> None:
        """Open the plan review."""
        self.open_plan(message.plan)

    def on_run_confirmed(self, message: messages.RunConfirmed) -> None:
        """Apply the confirmed plan (or resume the run) and watch it; a rotation whose new
        key the operator pastes asks for it first (:meth:`_ask_pasted_keys`)."""
        def go() -> None:
            self.open_run(message.plan, message.reason, message.allow_irreversible,
                          resume=message.resume, previous=message.previous)

        if message.resume or not any(s.action == "credential.write" for s in message.plan.steps):
            go()
            return
        from console.engine.rotation import pasted_key_needed

        self._ask_pasted_keys(message.plan, pasted_key_needed(message.plan), go)

    def _ask_pasted_keys(self, plan: Plan, needed: list[str], then: Callable[[], None],
                         problem: str = "") -> None:
        """Ask for the pasted new key of each integration in ``needed`` in turn (a password
        field), hold each in the run's keyring (refused: asked again, with why), then
        ``then()``. Escape: nothing runs."""
        if not needed:
            then()
            return
        from console.engine.rotation import put_pasted_key
        from console.errors import ConsoleError
        from console.tui.widgets.paste_key import PasteKeyModal

        integ = needed[0]
        known = {i.id: i for i in self.config.integrations}
        provider = known[integ].provider if integ in known else ""
        session = self.session()

        def answered(value: str | None) -> None:
            if value is None:
                self.notify("No new key: nothing ran.", title="Rotation", severity="warning")
                return

            async def hold() -> None:
                try:
                    fp = await asyncio.to_thread(put_pasted_key, session, plan, integ, value)
                except ConsoleError as exc:
                    self._ask_pasted_keys(plan, needed, then, f"Refused: {exc.msg}")
                    return
                self.notify(f"{integ}: new key {fp} held for this run.", title="Rotation")
                self._ask_pasted_keys(plan, needed[1:], then)

            self.run_worker(hold(), group="paste", exit_on_error=False)

        self.push_screen(PasteKeyModal(integ, provider, problem), answered)

    def on_report_requested(self, message: messages.ReportRequested) -> None:
        """Read the run's report in a thread, then show it in the audit section."""
        from console.report import build_report

        screen, session = self._screen("audit", "ReportScreen"), self.session()
        if screen is not None and self.show_section("audit", "opening a report"):
            self._in_thread("report", lambda: build_report(
                session.audit, run_id=message.run_id, config=self.config),
                lambda report: self.push_screen(screen(report)))

    def on_restore_requested(self, message: messages.RestoreRequested) -> None:
        """Plan the undo of the run in a thread, then review it in the audit section."""
        if self.show_section("audit", "planning a restore"):
            self.notify(f"Planning the restore of {message.run_id}…", title="Restore")
            self._in_thread("restore", partial(self.session().restore_plan, message.run_id),
                            self.open_plan)

    def _in_thread(self, group: str, work: Callable[[], T], then: Callable[[T], object]
                   ) -> None:
        """``then(work())``, ``work`` in a thread; a failure is shown (worker handler)."""
        async def run() -> None:
            then(await asyncio.to_thread(work))

        self.run_worker(run(), group=group, exclusive=True, exit_on_error=False)

    # -- operating mode ------------------------------------------------------------------
    def action_toggle_live(self) -> None:
        """Switch DRY-RUN <-> the applying mode; either way the operator types its name (and,
        the first time to LIVE / EXERCISE, the incident id). Refused during a run."""
        from console.tui.widgets.confirm_mode import ConfirmModeModal

        if self._refuse_while_running("switching mode"):
            return
        target = self.applying_mode if self.mode == "dry-run" else "dry-run"

        def done(ok: bool | None) -> None:
            if ok:
                self.mode = target
                self.notify(f"{mode_sentence(target)}.", title="Mode",
                            severity="information" if target == "dry-run" else "warning")

        self.push_screen(ConfirmModeModal(target, current=self.mode), done)

    def watch_mode(self, mode: str) -> None:
        """Carry the mode as a state class (``-live``, ``-dry-run``, ``-exercise``)."""
        for m in OPERATING_MODES:
            self.set_class(mode == m, f"-{m}")


def make_app(config: Config | str | Path | None = None, **kw: Any) -> KillswitchApp:
    """The one factory used by the CLI, the tests and the benchmarks.

    The cyclic garbage collector is paused until the first screen is painted
    (:meth:`KillswitchApp.startup_finished`): start-up builds tens of thousands of objects
    for a large inventory and frees almost none, and collections would double its time.
    """
    import gc

    from console.config import load_config

    gc.disable()
    try:
        if config is None or isinstance(config, (str, Path)):
            config = load_config(config, remember=True)
        return KillswitchApp(config, **kw)
    except BaseException:
        gc.enable()
        raise


def run_tui(config_path: str | None, **kw: Any) -> int:
    """Open the console; a config error prints a clear message and returns its exit code."""
    try:
        app = make_app(config_path, **kw)
    except ConsoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    result = app.run()
    return int(result or 0)
