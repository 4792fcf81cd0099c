"""A tabletop exercise played in the console (issue 12, section 2).

The sandbox here is small and in-process: the fake backend ``sim`` (``sandbox = true``) holds
the integrations' kill points, and an OpenAI stand-in (:mod:`console.sandbox.api_openai`,
served on a free loopback port) is the backend the scenario's fault lands on. The scenario
lives in a tmp ``[settings] exercise_dirs`` folder. The console is built through the
production factory; the tests wait on states (notices, screens, the stand-in's faults),
never on sleeps.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.errors import ConsoleError
from console.sandbox.api_openai import OpenAIStandIn
from console.sandbox.standin import serve
from console.tui.app import make_app, run_tui
from console.tui.commands import commands
from tests.tui.flow_helpers import switches, wait_for, wait_screen, write_fake_config
from tests.tui.test_guards import palette, start_run

SIZE = (120, 40)
MESSAGE = "Secret scanning: the key of app-0 is in a public repository"
LATER = "A journalist asks for a statement"

SCENARIO = f'''
name = "tiny-drill"
title = "A tiny drill"
briefing = """The key of app-0 leaked. Contain app-0, then prove it."""
integrations = ["app-0"]

[[injects]]
at = "T+00:01"
message = "{MESSAGE}"
fault = {{ backend = "openai-sandbox", error_rate = 1.0, error_status = 503 }}

[[injects]]
at = "T+30:00"
message = "{LATER}"

[[objectives]]
id = "app-0-contained"
kind = "contained"
integration = "app-0"
within = "30:00"
'''


@pytest.fixture
def standin() -> Iterator[tuple[OpenAIStandIn, int]]:
    """An OpenAI stand-in on a free loopback port: (the stand-in, its port)."""
    app = OpenAIStandIn({})
    server = serve(app)
    try:
        yield app, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def exercise_config(root: Path, port: int) -> Path:
    """Two integrations on the sandbox fake backend, the stand-in as ``openai-sandbox``, and
    ``tiny-drill`` in the config's exercise folder."""
    path = write_fake_config(root, 2, backend="sandbox = true")
    text = path.read_text().replace("[settings]\n", '[settings]\nexercise_dirs = ["drills"]\n', 1)
    text += ("\n[backends.openai-sandbox]\ntype = \"openai\"\nsandbox = true\n"
             f"base_url = \"http://127.0.0.1:{port}/v1\"\n"
             "admin_key_env = \"KS_TUI_TEST_NO_SUCH_ADMIN_KEY\"\n")
    path.write_text(text)
    (root / "drills").mkdir()
    (root / "drills" / "tiny-drill.toml").write_text(SCENARIO)
    return path


def notices(app: Any, title: str = "") -> list[str]:
    """The messages of the notices shown so far (whose title starts with ``title``)."""
    return [str(n.message) for n in app._notifications if str(n.title).startswith(title)]


def banner(app: Any) -> str:
    from console.tui.widgets.banner import ModeBanner

    return str(app.screen.query_one(ModeBanner).text)


def models_status(port: int) -> int:
    """HTTP status of ``GET /v1/models`` on the stand-in (what any client of it sees)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models",
                                 headers={"Authorization": "Bearer sk-test"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_a_scenario_plays_inject_fault_run_and_scorecard(
        tmp_path: Path, standin: tuple[OpenAIStandIn, int]) -> None:
    """The inject is a notice at its time and its fault is on the stand-in; the banner shows
    EXERCISE, the scenario and its clock; f2 shows the briefing and the injects; a run made
    meanwhile is the exercise's; ending it scores it and clears the fault."""
    stand, port = standin
    app = make_app(exercise_config(tmp_path, port), scenario="tiny-drill", speed=20)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await wait_for(pilot, lambda: MESSAGE in notices(app, "INJECT T+00:01"),
                       what="the inject's notice")
        # the fault took effect: the stand-in has it, and its clients get 503
        await wait_for(pilot, lambda: stand.faults.error_rate == 1.0
                       and any("openai-sandbox" in m for m in notices(app, "FAULT")),
                       what="the fault applied")
        assert stand.faults.error_status == 503
        assert await asyncio.to_thread(models_status, port) == 503

        play = app.exercise_play
        assert play.exercise is not None
        ex_id = play.exercise.id
        assert ex_id.startswith("EX-tiny-drill-") and app.incident == ex_id
        assert app.mode == "exercise"
        await wait_for(pilot, lambda: "tiny-drill T+" in banner(app), what="the clock")
        assert "EXERCISE" in banner(app) and ex_id in banner(app)
        session = app.session()
        assert (session.mode, session.incident) == ("exercise", ex_id)

        await pilot.press("f2")
        await wait_screen(pilot, "FacilitatorModal")
        view = app.screen.text
        assert "The key of app-0 leaked" in view
        upcoming, fired = view.split("Upcoming injects", 1)[1].split("Fired injects", 1)
        assert LATER in upcoming and "T+30:00" in upcoming
        assert MESSAGE in fired and "openai-sandbox: 100% answered 503" in fired
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")

        # the players contain with the normal screens: the run is the exercise's
        run = await start_run(pilot, 1)
        await wait_for(pilot, lambda: run.result is not None and not run.running,
                       what="the run's end")
        assert switches()["app-0-key"] == "off"
        events = run.session.audit.events(run.result.run_id)
        assert events and {e["incident"] for e in events} == {ex_id}
        assert {e["mode"] for e in events if e["phase"] != "plan"} == {"exercise"}
        await pilot.press("escape")

        await palette(pilot, "exercise: end", "exercise: end")
        await wait_screen(pilot, "ScorecardModal")
        card = app.screen.text
        assert "tiny-drill" in card and "app-0-contained" in card
        assert "MET    app-0-contained" in card and "Time to contain" in card
        assert stand.faults.error_rate == 0  # the exercise's faults are cleared at its end
        await pilot.press("n")
        await wait_for(pilot, lambda: type(app.screen).__name__ != "ScorecardModal",
                       what="the scorecard closed")
        assert play.exercise is None and app.drill_banner == "" and app.incident == "INC-7"
        assert "tiny-drill" not in banner(app)


async def test_the_picker_starts_the_chosen_scenario(
        tmp_path: Path, standin: tuple[OpenAIStandIn, int]) -> None:
    """No scenario named: the picker lists the scenarios first; the palette offers it too."""
    _stand, port = standin
    app = make_app(exercise_config(tmp_path, port), scenario="", speed=20)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "ScenarioPicker")
        picker: Any = app.screen
        names = [s.name for s in picker.scenarios]
        assert "tiny-drill" in names
        await pilot.press("escape")  # no exercise for now
        await wait_screen(pilot, "InventoryScreen")
        assert app.exercise_play.exercise is None
        assert "exercise: start scenario…" in [n for n, _, _ in commands(app)]

        await palette(pilot, "exercise: start", "exercise: start scenario…")
        await wait_screen(pilot, "ScenarioPicker")
        picker = app.screen
        await pilot.press("home", *["down"] * [s.name for s in picker.scenarios]
                          .index("tiny-drill"), "enter")
        await wait_for(pilot, lambda: MESSAGE in notices(app, "INJECT"), what="the inject")
        assert app.exercise_play.active and "tiny-drill" in banner(app)
        names = [n for n, _, _ in commands(app)]
        assert "exercise: end" in names and "exercise: start scenario…" not in names


def test_a_config_with_a_real_backend_is_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 naming the backend, before anything starts."""
    config = write_fake_config(tmp_path, 1)  # sim is not marked sandbox = true
    with pytest.raises(ConsoleError) as caught:
        make_app(config, scenario="leaked-key")
    assert caught.value.exit_code == 2
    assert run_tui(str(config), scenario="leaked-key") == 2
    err = capsys.readouterr().err
    assert "sim" in err and "sandbox = true" in err
    assert "exercise: start scenario…" not in [n for n, _, _ in commands(make_app(config))]


def test_an_unknown_scenario_is_refused(tmp_path: Path, standin: tuple[OpenAIStandIn, int],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario that is not there: exit 2 with the names there are."""
    config = exercise_config(tmp_path, standin[1])
    assert run_tui(str(config), scenario="tiny-dril") == 2
    err = capsys.readouterr().err
    assert "tiny-dril" in err and "tiny-drill" in err


async def test_rehearse_this_plan_applies_nothing(tmp_path: Path) -> None:
    """On the plan review, "plan: rehearse this plan" plays it against a simulated copy:
    REHEARSAL in the banner while it plays, the result shown, no switch changed."""
    from tests.tui.flow_helpers import pick_runbook

    config = write_fake_config(tmp_path, 2, backend="sandbox = true")
    app = make_app(config, mode="exercise")
    shown: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        def seen(value: str) -> None:
            shown.append(value)

        app.watch(app, "drill_banner", seen)
        before = switches()
        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await palette(pilot, "rehearse", "plan: rehearse this plan")
        await wait_screen(pilot, "RehearsalModal")
        assert app.screen.text.startswith("REHEARSAL")
        assert "REHEARSAL kill-switch" in shown and app.drill_banner == ""
        assert switches() == before
        await pilot.press("escape")
        await wait_screen(pilot, "PlanScreen")
