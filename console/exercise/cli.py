"""``killswitch exercise``: tabletop exercises on the sandbox, in the console or headless.

::

    killswitch exercise                       # the console's exercise picker
    killswitch exercise list [--json]
    killswitch exercise run SCENARIO --auto [--speed S] [--json] [--out report.md]

``run --auto`` plays the injects and the scenario's scripted response against the sandbox
(:class:`console.exercise.player.Exercise`), then prints the scorecard: exit 0 when every
objective is met, 1 when one is missed, 2 for bad input (unknown scenario, invalid file,
a config with a backend not marked ``sandbox = true``: nothing recorded), 130 on Ctrl-C (the
exercise is ended and scored, its faults cleared).

The group registers itself on the main ``cli`` group (``console.cli`` imports this module
at its end). Only click and ``console.cli`` are imported here at load time: ``killswitch
--help`` stays free of SDKs and Textual.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from console.cli import _config, _json, _opts, _out, cli, common
from console.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from console.config import Config
    from console.exercise.player import Exercise
    from console.exercise.scenario import Scenario
    from console.exercise.score import Scorecard

__all__ = ["exercise", "render_scorecard"]


def _complete_scenario(ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[Any]:
    """Scenario names (shipped and ``settings.exercise_dirs``), or a file path."""
    from click.shell_completion import CompletionItem

    if "/" in incomplete or incomplete.endswith(".toml"):
        return [CompletionItem(incomplete, type="file")]
    try:
        from console.cli import _complete_config
        from console.exercise.scenario import scenario_paths

        config = _complete_config(ctx)
        try:
            paths = scenario_paths(config)
        except Exception:  # noqa: BLE001 - a missing folder: the shipped ones still complete
            paths = scenario_paths(None)
        return [CompletionItem(name) for name in paths if name.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []


def _refuse_real(config: Config) -> None:
    """Exit 2 (nothing recorded) for a config with a backend not marked sandbox."""
    real = list(config.real_backends)
    if real:
        raise UsageError(
            "an exercise plays only on sandbox backends, and these are not: "
            f"{', '.join(real)}; nothing was recorded or changed", where=str(config.path),
            hint="mark each sandbox backend `sandbox = true`, or use a sandbox config "
                 "(config.example.toml)")


@click.group(invoke_without_command=True)
@common
@click.option("--speed", "console_speed", type=float, default=1.0, show_default=True,
              help="Console only: scenario seconds per real second.")
@click.pass_context
def exercise(ctx: click.Context, console_speed: float) -> None:
    """Tabletop exercises on the sandbox: scenarios with timed injects and faults, scored
    from the audit trail.

    Without a command, opens the console's exercise picker (EXERCISE mode; a config with
    a backend not marked `sandbox = true` is refused, exit 2).
    """
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand is None:
        _check_speed(console_speed, "--speed")
        import gc

        gc.disable()  # as for the console itself: the app re-enables it
        from console.tui.app import run_tui

        # scenario "": the console opens its scenario picker first
        sys.exit(run_tui(_opts().get("config"), mode="exercise", exercise=True,
                         scenario="", speed=console_speed))


def _check_speed(speed: float, flag: str) -> None:
    if not speed > 0 or speed == float("inf"):  # NaN fails the first test
        raise UsageError(f"{flag} must be a number more than 0, not {speed}",
                         hint=f"e.g. {flag} 4 plays four scenario seconds per real second")


@exercise.command("list")
@common
def exercise_list() -> None:
    """List the scenarios (shipped ones and settings.exercise_dirs)."""
    from console.exercise.scenario import list_scenarios
    from console.render import table

    scenarios = list_scenarios(_config())
    rows: list[dict[str, Any]] = [
        {"name": s.name, "title": s.title, "integrations": list(s.integrations),
         "injects": len(s.injects), "objectives": [o.id for o in s.objectives],
         "scripted_response": len(s.response), "path": str(s.path)} for s in scenarios]
    if _json():
        _out(json.dumps(rows, indent=2))
        return
    _out(table(["name", "title", "integrations", "injects", "objectives"],
               [[r["name"], r["title"], ", ".join(r["integrations"]), r["injects"],
                 ", ".join(r["objectives"])] for r in rows]))


@exercise.command("run")
@common
@click.argument("scenario", shell_complete=_complete_scenario)
@click.option("--auto", is_flag=True,
              help="Play the scenario's scripted response (headless; for game days in CI).")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Scenario seconds per real second (4: a 10-minute scenario in 2.5).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the after-action report (Markdown, mode 0600) here.")
def exercise_run(scenario: str, auto: bool, speed: float, out: str | None) -> None:
    """Play SCENARIO (a name from `exercise list`, or a .toml path) on the sandbox.

    With --auto, the injects fire at their times (their faults applied to the sandbox) while
    the scripted response runs; then the scorecard is printed. Exit 0 when every objective
    is met, 1 when one is missed, 2 on bad input.
    """
    from console.exercise.player import Exercise
    from console.exercise.scenario import load_scenario

    if not auto:
        raise UsageError("interactive play happens in the console; `exercise run` plays "
                         "headless only with --auto",
                         hint="open the console with `killswitch exercise`, or add --auto to "
                              "play the scripted response")
    _check_speed(speed, "--speed")
    config = _config()
    _refuse_real(config)
    the_scenario = load_scenario(scenario, config)
    if not the_scenario.response:
        raise UsageError(f"scenario {the_scenario.name!r} has no scripted response to play "
                         "with --auto", where=str(the_scenario.path),
                         hint="add [[response.steps]] to the scenario, or play it in the "
                              "console: killswitch exercise")
    quiet = _json()

    def progress(kind: str, payload: dict[str, Any]) -> None:
        line = _progress_line(kind, payload)
        if line and not quiet:
            from console.scrub import scrub_text

            click.echo(scrub_text(line), err=True)

    ex = Exercise(config, the_scenario, speed=speed, on_event=progress)
    card, interrupted = _play(ex)
    if out:
        from console.exercise.score import render_aar
        from console.privfile import write_private

        write_private(out, render_aar(card, the_scenario))
        click.echo(f"after-action report written to {out}", err=True)
    if _json():
        # scrubbed as data, not as text: the text scrubber reads `"credentials": 6.08` (a
        # kill point's time) as a secret assignment and would break the JSON
        from console.scrub import scrub

        click.echo(json.dumps(scrub(card.to_json()), indent=2))
    else:
        _out(render_scorecard(card, the_scenario))
    if interrupted:
        click.echo("interrupted: the exercise was ended and scored; its faults are cleared",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if card.all_objectives_met else EXIT_FAILED)


def _play(ex: Exercise) -> tuple[Scorecard, bool]:
    """Start, play injects and the scripted response together, finish. Ctrl-C ends the
    play early; the exercise is still finished (scored, faults cleared)."""
    interrupted = False

    async def go() -> Scorecard:
        nonlocal interrupted
        await ex.start()
        loop = asyncio.get_running_loop()
        play = asyncio.ensure_future(asyncio.gather(ex.run_injects(), ex.play_response()))

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            ex.session().request_cancel()
            play.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
        try:
            try:
                await play
            except asyncio.CancelledError:
                if not interrupted:
                    raise
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
        return await ex.finish()

    box: list[Scorecard] = []

    async def wrap() -> None:
        box.append(await go())

    asyncio.run(wrap())
    return box[0], interrupted


def _progress_line(kind: str, payload: dict[str, Any]) -> str:
    """One stderr line per thing the exercise does (what a CI log shows)."""
    from console.exercise.scenario import format_clock

    clock = format_clock(float(payload.get("elapsed") or 0.0))
    if kind == "exercise.start":
        return f"{clock} exercise {payload.get('scenario')} started (speed x{payload.get('speed')})"
    if kind == "inject":
        text = str(payload.get("message") or "").strip()
        return f"{clock} INJECT {' '.join(text.split())}" if text else ""
    if kind == "fault":
        return f"{clock} fault {payload.get('outcome')}: {payload.get('message', '')}"
    if kind == "fault.clear":
        failed = " FAILED" if payload.get("outcome") == "failed" else ""
        return f"{clock} fault cleared{failed}: {payload.get('message', '')}"
    if kind == "response":
        out = str(payload.get("outcome") or "")
        step = f"step {payload.get('step')} {payload.get('runbook')} " \
               f"{' '.join(payload.get('selectors') or [])}"
        if out == "started":
            return f"{clock} {step}: started" + (" (retry)" if payload.get("retry") else "")
        msg = payload.get("message") or ""
        return f"{clock} {step}: {out}" + (f" ({msg})" if msg else "") + \
            (f" run {payload.get('run_id')}" if payload.get("run_id") else "")
    if kind in ("scan", "check.copies"):
        return (f"{clock} credentials scan of {payload.get('integration')}: "
                f"{payload.get('live_copies')} live cop"
                f"{'y' if payload.get('live_copies') == 1 else 'ies'}"
                + ("" if payload.get("complete", True) else " (incomplete)"))
    if kind == "objective":
        return f"objective {payload.get('id')}: {payload.get('outcome')} ({payload.get('detail')})"
    return ""


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"


def render_scorecard(card: Scorecard, scenario: Scenario) -> str:
    """The scorecard as text (``exercise run`` without ``--json``)."""
    from console.exercise.scenario import format_clock
    from console.render import table

    ops = card.operations
    lines = [f"Exercise {card.exercise_id}: {scenario.title}",
             f"scenario {card.scenario}, speed x{card.speed:g}, {card.started} -> {card.ended}",
             "",
             f"time to first action  {_secs(card.time_to_first_action_s)}",
             f"time to contain       {_secs(card.time_to_contain_s)}",
             f"time to proof         {_secs(card.time_to_proof_s)}",
             "operations            " + ", ".join(f"{k} {v}" for k, v in ops.items()),
             "irreversible          " + (", ".join(
                 f"{i['target']} ({'consent' if i['consent'] else 'NO CONSENT'})"
                 for i in card.irreversible) or "none"),
             ""]
    lines.append(table(["integration", "contained", "proof", "kill points"],
                       [[iid, _secs(s.time_to_contain_s), _secs(s.time_to_proof_s),
                         ", ".join(f"{kp} {_secs(t)}" for kp, t in s.kill_points.items())]
                        for iid, s in card.integrations.items()]))
    lines.append("")
    lines.append(table(["at", "inject", "response"],
                       [[format_clock(i.at_s), " ".join((i.message or str(i.fault)).split())[:60]
                         + (" [FAULT NOT APPLIED]" if i.fault_outcome == "failed" else ""),
                         i.response or "-"] for i in card.injects]))
    lines.append("")
    lines.append(table(["objective", "kind", "result", "detail"],
                       [[o.id, o.kind, "met" if o.met else "MISSED", o.detail]
                        for o in card.objectives]))
    met = sum(o.met for o in card.objectives)
    lines += ["", f"{met} of {len(card.objectives)} objective(s) met"
              + ("" if card.all_objectives_met else ": objectives MISSED")]
    return "\n".join(lines)


cli.add_command(exercise)
