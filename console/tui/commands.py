"""Command palette (ctrl+p): "group: verb" commands that follow the console's state.

| command                          | when                                                  |
|----------------------------------|-------------------------------------------------------|
| run: RUNBOOK on N marked         | one per runbook that acts on the marked integrations  |
| restore: run RUN_ID              | recent runs with an applied change that can be undone |
| report: run RUN_ID               | recent runs                                           |
| mode: switch to MODE             | always (the typed-word dialog, never silently)        |
| sandbox: reset                   | every backend is a sandbox backend                    |
| exercise: start scenario…        | a sandbox config, no exercise playing (the picker)    |
| exercise: facilitator view, end  | an exercise is playing (f2; the scorecard)            |
| plan: rehearse this plan         | the plan review is open (nothing is applied)          |
| inventory: ..., runbook: pick    | the inventory is open                                 |
| team: runs of every commander   | always (the team view, live)                          |
| approvals: review N pending      | approvals or co-signatures wait in the store          |
| audit: open, help: keys, app: quit | always                                              |

Runbooks and recent runs are read in a thread when the palette opens (:class:`PaletteData`),
never while typing. Every verb that would leave a run in progress unwatched (opening a
screen over it, another section, a mode switch, a sandbox reset) goes through the app's run
guard and is refused, with the reason, while a run is in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.tui.messages import (
    ReportRequested,
    RestoreRequested,
    RunbooksRequested,
    describe_error,
    error_text,
)
from console.vocab import Outcome, mode_sentence

if TYPE_CHECKING:
    from textual.message import Message

    from console.config import Config
    from console.tui.app import KillswitchApp
    from console.tui.screens.inventory import InventoryScreen

__all__ = ["KillswitchCommands", "PaletteData", "RecentRun", "commands", "load_palette_data"]

Command = tuple[str, str, Callable[[], object]]
"""(name, help, callback)."""

RECENT_RUNS = 8
"""How many of the newest runs the palette offers to report on or restore."""


@dataclass
class RecentRun:
    """One run of the trail, as the palette offers it."""

    run_id: str
    mode: str
    """``live`` / ``exercise`` / ``dry-run`` / ``plan``."""
    operator: str
    status: str
    """``finished``, ``cancelled, 1 failed``, ``plan only``... (the audit screen's words)."""
    restorable: bool
    """It applied at least one change that can be undone."""


@dataclass
class PaletteData:
    """What the palette reads when it opens (files and the trail: in a thread)."""

    targets: list[str] = field(default_factory=list)
    """The integrations a ``run:`` verb acts on (marked, else the row under the cursor)."""
    runbooks: list[str] = field(default_factory=list)
    """Runbooks that act on ``targets``, the default containment first."""
    runs: list[RecentRun] = field(default_factory=list)
    """The newest runs, newest first."""
    problems: list[str] = field(default_factory=list)
    """What could not be read (a broken runbook, an unreadable trail)."""


def load_palette_data(config: Config, targets: list[str]) -> PaletteData:
    """Read the runbooks that act on ``targets`` and the newest runs (blocking: a thread).

    Never raises for a broken runbook or trail: the problem is listed in ``problems``.
    """
    from console.engine.service import Session
    from console.runbook import load_runbook, runbook_paths
    from console.store import has_trail
    from console.tui.screens.audit import run_status
    from console.tui.screens.runbook import DEFAULT_RUNBOOK, applicable_runbooks

    data = PaletteData(targets=list(targets))
    if targets:
        loaded = []
        try:
            for name, path in sorted(runbook_paths(config).items()):
                try:
                    loaded.append(load_runbook(str(path), config))
                except Exception as exc:  # noqa: BLE001 - listed, the others stay usable
                    data.problems.append(f"runbook {name}: {error_text(exc)}")
        except Exception as exc:  # noqa: BLE001 - a missing runbook folder
            data.problems.append(f"runbooks: {error_text(exc)}")
        wanted = set(targets)
        chosen = [i for i in config.integrations if i.id in wanted]
        names = [rb.name for rb in applicable_runbooks(loaded, chosen)]
        data.runbooks = sorted(names, key=lambda n: n != DEFAULT_RUNBOOK)
    try:
        present = has_trail(config)
    except Exception as exc:  # noqa: BLE001 - an unreachable shared store: listed
        data.problems.append(f"audit trail: {error_text(exc)}")
        return data
    if not present:
        return data  # nothing ran yet (and looking must not create a trail)
    session = Session(config)
    audit = None
    try:
        audit = session.audit
        for row in reversed(audit.runs()[-RECENT_RUNS:]):
            mode = str(row.get("mode") or "")
            restorable = False
            if mode not in ("plan", "dry-run"):
                try:
                    plan, events = session.load_run(row["run_id"])
                except Exception:  # noqa: BLE001, S112 - never applied: nothing to restore
                    plan, events = None, []
                if plan is not None:
                    results = session.op_results(events)
                    restorable = any(
                        c.reversible and c.op_id in results
                        and results[c.op_id].outcome == Outcome.APPLIED for c in plan.changes)
            data.runs.append(RecentRun(str(row["run_id"]), mode, str(row.get("operator") or ""),
                                       run_status(row.get("outcomes") or {}), restorable))
    except Exception as exc:  # noqa: BLE001 - shown as a palette entry
        data.problems.append(f"audit trail: {error_text(exc)}")
    finally:
        if audit is not None:
            audit.close()
    return data


# -- the verbs -------------------------------------------------------------------------
def _guarded(app: KillswitchApp, what: str, act: Callable[[], object]) -> Callable[[], None]:
    """``act``, unless a run is in progress (then the app's guard says why not)."""
    def run() -> None:
        if not app._refuse_while_running(what):
            act()

    return run


def _post(app: KillswitchApp, message: Message) -> Callable[[], object]:
    return partial(app.post_message, message)


def _filter(app: KillswitchApp, inv: InventoryScreen) -> None:
    """Go to the inventory and put the cursor in its filter."""
    app.action_inventory()
    if app.screen is inv:
        inv.action_focus_filter()


def _inventory(app: KillswitchApp) -> InventoryScreen | None:
    from console.tui.screens.inventory import InventoryScreen

    try:
        stack = app.get_screen_stack("inventory")
    except KeyError:  # the inventory section is not shown yet
        return None
    return next((s for s in stack if isinstance(s, InventoryScreen)), None)


def _sandbox_reset(app: KillswitchApp) -> None:
    """Reset the sandbox in a thread; say what is happening, then what came back."""
    if any(w.group == "sandbox-reset" and not w.is_finished for w in app.workers):
        app.notify("The sandbox is already being reset.", title="Sandbox")
        return
    app.notify("Stopping every sandbox service, then starting it again from its seed…",
               title="Resetting the sandbox", timeout=10)

    async def reset() -> None:
        from console import sandbox

        statuses = await asyncio.to_thread(sandbox.reset, app.config)
        lines = [f"{s.name}: {'running' if s.running else 'not running'}"
                 + (f" ({s.detail})" if s.detail else "") for s in statuses]
        app.notify("\n".join(lines) or "no sandbox service in this config",
                   title="Sandbox reset", timeout=15)
        inv = _inventory(app)
        if inv is not None:
            inv.action_refresh_states()

    app.run_worker(reset(), group="sandbox-reset", exit_on_error=False)


def _under_palette(app: KillswitchApp) -> object:
    """The screen the operator was on when the palette opened."""
    from textual.command import CommandPalette

    return next((s for s in reversed(app.screen_stack) if not isinstance(s, CommandPalette)),
                None)


def _exercise_commands(app: KillswitchApp) -> Iterator[Command]:
    """Rehearse the plan under review; start a tabletop exercise (sandbox configs), or, while
    one plays, its view and end."""
    from console.tui.screens.plan import PlanScreen

    screen = _under_palette(app)
    if isinstance(screen, PlanScreen) and not screen.plan.restore_of:
        yield ("plan: rehearse this plan", "Play this plan against a simulated copy of what it "
               "observed: progress, retries, verify and a report, REHEARSAL in the banner; "
               "nothing is applied anywhere",
               _guarded(app, "rehearsing a plan",
                        partial(app.exercise_play.rehearse, screen.plan)))
    if app.config.real_backends:
        return
    play = app.exercise_play
    if play.active:
        yield ("exercise: facilitator view", "The briefing, the upcoming and the fired "
               "injects (f2)", play.show_facilitator)
        yield ("exercise: end", "End the exercise: faults cleared, the scorecard from the "
               "trail, then the offer of a sandbox reset",
               _guarded(app, "ending the exercise", play.end))
    else:
        yield ("exercise: start scenario…", "Pick a scenario and play it: EXERCISE, its "
               "clock in the banner, injects as notices, faults on the sandbox",
               _guarded(app, "starting an exercise", play.pick))


def commands(app: KillswitchApp, data: PaletteData | None = None) -> Iterator[Command]:
    """The commands that can run now, in palette order.

    Args:
        app: The console.
        data: Runbooks and recent runs read when the palette opened; without it, the
            ``run:``, ``restore:`` and ``report:`` verbs are left out.
    """
    inv = _inventory(app)
    if inv is not None:
        targets = data.targets if data is not None else inv.runbook_targets()
        on = (f"{len(targets)} marked" if app.marked else targets[0]) if targets else ""
        for name in data.runbooks if data is not None else []:
            yield (f"run: {name} on {on}",
                   f"Plan {name} for {', '.join(targets[:3])}"
                   + ("..." if len(targets) > 3 else "")
                   + "; the plan review and a typed confirmation come before anything runs",
                   _guarded(app, "planning a run",
                            _post(app, RunbooksRequested(targets, runbook=name))))
        yield ("inventory: filter", "Type a filter: env=prod provider=openai or free text",
               lambda: _filter(app, inv))
        yield ("inventory: mark all", "Mark every visible integration", inv.action_mark_all)
        if app.marked:
            yield ("inventory: clear marks", f"Unmark {len(app.marked)} integration(s)",
                   inv.action_clear_marks)
        for column in ("id", "env", "status", "provider", "keys", "flags"):
            yield (f"inventory: sort by {column}", f"Sort the inventory by {column}",
                   partial(inv.sort_by, column))
        if targets:
            yield ("runbook: pick", f"Runbooks for {', '.join(targets[:3])}"
                   + ("..." if len(targets) > 3 else ""),
                   _guarded(app, "picking a runbook", _post(app, RunbooksRequested(targets))))
        yield ("inventory: refresh states", "Observe every kill point again (read-only)",
               inv.action_refresh_states)
    for run in data.runs if data is not None else []:
        if run.restorable:
            yield (f"restore: run {run.run_id}",
                   f"Plan the undo of this {run.mode} run by {run.operator or '?'} "
                   f"({run.status}); review and a typed confirmation follow",
                   _guarded(app, "planning a restore", _post(app, RestoreRequested(run.run_id))))
    for run in data.runs if data is not None else []:
        yield (f"report: run {run.run_id}",
               f"The postmortem timeline of this {run.mode} run by {run.operator or '?'} "
               f"({run.status})",
               _guarded(app, "opening a report", _post(app, ReportRequested(run.run_id))))
    for problem in data.problems if data is not None else []:
        yield (f"audit: cannot read {problem.split(':', 1)[0]}", problem, app.action_audit)
    target = app.applying_mode if app.mode == "dry-run" else "dry-run"
    yield (f"mode: switch to {target}", f"{mode_sentence(target)} (type {target.upper()})",
           app.action_toggle_live)
    yield from _exercise_commands(app)
    if not app.config.real_backends:
        yield ("sandbox: reset", "Every sandbox backend back to its seeded state: services "
               "restarted and seeded again, the inventory's flags on (between exercise rounds)",
               _guarded(app, "resetting the sandbox", partial(_sandbox_reset, app)))
    yield ("team: runs of every commander", "Who runs what on which integration, progress "
           "and results, live; your runs marked", _guarded(app, "opening the team view",
                                                           app.action_team))
    pending = int(getattr(app, "approvals_pending", 0) or 0)
    if pending:
        yield (f"approvals: review {pending} pending", "The plan each one is bound to, a "
               "reason, and approve (never your own)",
               _guarded(app, "opening the approvals", app.open_approvals))
    yield ("audit: open", "The audit trail, its chain status and reports", app.action_audit)
    yield ("help: keys", "Every key of every screen", app.action_help)
    yield ("app: quit", "Leave the console (asks first while a run is in progress)",
           app.action_quit)


class KillswitchCommands(Provider):
    """The console's commands, plus "detail: open ID" for every integration when searching."""

    data: PaletteData | None = None
    """Runbooks and recent runs, read when the palette opens."""

    @property
    def console(self) -> KillswitchApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    async def startup(self) -> None:
        """Read the runbooks for the marked integrations and the newest runs, in a thread."""
        app = self.console
        inv = _inventory(app)
        targets = inv.runbook_targets() if inv is not None else []
        try:
            self.data = await asyncio.to_thread(load_palette_data, app.config, targets)
        except Exception as exc:  # noqa: BLE001 - the palette still offers everything else
            self.data = PaletteData(targets=targets, problems=[
                f"{describe_error(exc)[0]}: {error_text(exc)}"])

    async def discover(self) -> Hits:
        """Commands shown before anything is typed."""
        for name, help_text, callback in commands(self.console, self.data):
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Commands matching ``query`` (fuzzy)."""
        matcher = self.matcher(query)
        app = self.console
        for name, help_text, callback in commands(app, self.data):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
        words = query.lower().split()
        needle = words[-1] if words else ""
        shown = 0
        for integ in app.config.integrations:
            if shown >= 50:
                break
            if needle not in integ.id and needle not in "detail: open":
                continue
            name = f"detail: open {integ.id}"
            score = matcher.match(name)
            if score > 0:
                shown += 1
                yield Hit(score * 0.9, matcher.highlight(name),
                          _guarded(app, "opening an integration",
                                   partial(app.open_detail, integ.id)), help=integ.name)
