"""The incident id (issue 10): asked for at the first LIVE or EXERCISE action when the console
has none, shown in the banner, and recorded with the run.

The first action is the switch to EXERCISE / LIVE (ctrl+l, after the typed word) or, for a
console opened straight in LIVE, the confirmation of a run. Built through the production
factory on the fake backend; waits on states, never sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import RadioSet

from console.audit import AuditLog
from console.tui.app import make_app
from console.tui.widgets.banner import ModeBanner
from console.tui.widgets.incident_prompt import incident_problem
from tests.tui.flow_helpers import (
    pick_runbook,
    switches,
    text,
    type_text,
    wait_for,
    wait_screen,
    write_fake_config,
)

SIZE = (120, 40)


def no_incident_config(root: Path, n: int = 1, backend: str = "") -> Path:
    """The fake config without ``settings.incident``."""
    path = write_fake_config(root, n, backend=backend)
    path.write_text(path.read_text().replace('incident = "INC-7"\n', ""))
    return path


def banner(app: Any) -> str:
    return str(app.screen.query_one(ModeBanner).text)


def trail(root: Path) -> list[dict[str, Any]]:
    if not (root / "audit.db").exists():
        return []
    log = AuditLog(root / "audit.db")
    try:
        return log.events()
    finally:
        log.close()


async def confirm_run(pilot: Any, typed: str, reason: str) -> None:
    await wait_screen(pilot, "ConfirmRunModal")
    await type_text(pilot, typed)
    await pilot.press("tab")
    await type_text(pilot, reason)
    await pilot.press("enter")


async def test_switching_to_exercise_asks_for_the_incident_and_the_run_records_it(
        tmp_path: Path) -> None:
    app = make_app(no_incident_config(tmp_path, 1, backend="sandbox = true"), exercise=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        assert "no incident" in banner(app)
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        assert "Next: the incident id" in text(app, "#confirm-mode-incident")
        await type_text(pilot, "EXERCISE")
        await pilot.press("enter")
        await wait_screen(pilot, "IncidentPromptModal")
        assert app.mode == "dry-run"  # not before the id is given
        assert "EXERCISE" in text(app, "#incident-title")

        await type_text(pilot, "none")
        await pilot.press("enter")
        assert type(app.screen).__name__ == "IncidentPromptModal"
        assert "says there is no incident" in str(app.screen.query_one("#incident-error")
                                                  .render())
        app.screen.query_one("#incident-input").value = ""
        await type_text(pilot, "EX-2031-1")
        await pilot.press("enter")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "exercise" and app.incident == "EX-2031-1"
        assert "EX-2031-1" in banner(app)

        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        assert "EX-2031-1" in banner(app)
        await pilot.press("a")
        await confirm_run(pilot, "app-0", "round one")  # no second question
        await wait_screen(pilot, "RunScreen")
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
    runs = [e for e in trail(tmp_path) if e["phase"] in ("run", "apply")]
    assert runs and {e["incident"] for e in runs} == {"EX-2031-1"}
    assert {e["mode"] for e in runs} == {"exercise"}


async def test_escape_at_the_incident_question_keeps_dry_run(tmp_path: Path) -> None:
    app = make_app(no_incident_config(tmp_path, 1, backend="sandbox = true"), exercise=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        await type_text(pilot, "EXERCISE")
        await pilot.press("enter")
        await wait_screen(pilot, "IncidentPromptModal")
        await pilot.press("escape")
        await wait_screen(pilot, "ConfirmModeModal")
        assert "No incident id: still DRY-RUN" in str(
            app.screen.query_one("#confirm-mode-error").render())
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "dry-run" and app.incident == ""
        assert "no incident" in banner(app)


async def test_a_console_opened_in_live_asks_when_the_run_is_confirmed(tmp_path: Path) -> None:
    app = make_app(no_incident_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await wait_screen(pilot, "ConfirmRunModal")
        assert text(app, "#confirm-incident").startswith("Incident: none yet")
        await confirm_run(pilot, "app-0", "key in a public repo")
        await wait_screen(pilot, "IncidentPromptModal")
        await pilot.press("escape")  # no id: nothing runs
        await wait_screen(pilot, "ConfirmRunModal")
        assert "No incident id: nothing was run" in text(app, "#confirm-error")
        assert switches() == {}
        assert not [e for e in trail(tmp_path) if e["phase"] in ("run", "apply")]

        await pilot.press("ctrl+r")  # confirm again: asked again
        await wait_screen(pilot, "IncidentPromptModal")
        await type_text(pilot, "INC-4711")
        await pilot.press("enter")
        await wait_screen(pilot, "RunScreen")
        assert "INC-4711" in banner(app)
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
    assert switches() == {"app-0-flag": "off", "app-0-key": "off"}
    runs = [e for e in trail(tmp_path) if e["phase"] in ("run", "apply")]
    assert runs and {e["incident"] for e in runs} == {"INC-4711"}


async def test_no_question_when_the_incident_is_known(tmp_path: Path) -> None:
    """``--incident`` (or ``settings.incident``) is never asked for again."""
    app = make_app(no_incident_config(tmp_path, 1, backend="sandbox = true"),
                   incident="INC-1")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        assert "INC-1" in banner(app)
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        assert not app.screen.query("#confirm-mode-incident")
        await type_text(pilot, "EXERCISE")
        await pilot.press("enter")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "exercise" and app.incident == "INC-1"


@pytest.mark.parametrize(("typed", "ok"), [
    ("INC-42", True), ("SEV1/2031-03-12", True), ("", False), ("two words", False),
    ("-", False), ("None", False), ("n/a", False), ("x" * 65, False), ("INC\x07", False),
])
def test_what_counts_as_an_incident_id(typed: str, ok: bool) -> None:
    assert (incident_problem(typed) == "") is ok


async def test_the_cause_is_asked_with_the_incident_shown_and_recorded(tmp_path: Path) -> None:
    """Issue 13 §1: the console asks why (leak, cost, ...) with the incident id; the banner
    says it and the run records it, so that a later restore keeps a leaked key dead."""
    app = make_app(no_incident_config(tmp_path, 1), mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await confirm_run(pilot, "app-0", "key in a public repo")
        await wait_screen(pilot, "IncidentPromptModal")
        assert app.screen.query_one("#incident-cause").region.bottom <= 23  # fits at 80x24
        await type_text(pilot, "INC-99")
        await pilot.press("tab")  # to the causes: "other" is chosen, "leak" is the first
        causes = app.screen.query_one("#incident-cause", RadioSet)
        assert causes.pressed_button is not None and causes.pressed_button.name == "other"
        await pilot.press("space")
        await wait_for(pilot, lambda: causes.pressed_index == 0, what="leak chosen")
        await pilot.press("enter")
        await wait_screen(pilot, "RunScreen")
        assert app.cause == "leak" and "INC-99 leak" in banner(app)
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
    start = next(e for e in trail(tmp_path)
                 if e["phase"] == "run" and e["outcome"] == "started")
    assert start["detail"]["cause"] == "leak" and start["incident"] == "INC-99"
