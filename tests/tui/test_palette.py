"""The command palette's verbs (issue 10): run any runbook on the marked integrations,
restore a run, open a report, switch mode, reset the sandbox; every verb that would leave a
run in progress unwatched is refused by the run guard.

Built through the production factory on the fake backend (and a flag file for the sandbox
reset); keys drive the palette; waits on states, never sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList

from console.tui.app import make_app
from console.tui.commands import commands
from tests.tui.flow_helpers import (
    pick_runbook,
    switches,
    text,
    type_text,
    wait_for,
    wait_screen,
    write_fake_config,
)
from tests.tui.test_guards import gated_config, palette, start_run

SIZE = (120, 40)


async def palette_names(pilot: Any, query: str) -> list[str]:
    """Open the palette, type ``query``; the commands listed once the list settles."""
    await pilot.press("ctrl+p")
    await wait_screen(pilot, "CommandPalette")
    await type_text(pilot, query)
    found = pilot.app.screen.query_one(CommandList)
    await wait_for(pilot, lambda: found.option_count > 0, what="palette hits")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    names = [str(found.get_option_at_index(i).hit.text) for i in range(found.option_count)]
    await pilot.press("escape")
    return names


def notified(app: Any, words: str) -> bool:
    return any(words in str(n.message) for n in app._notifications)


async def finished_run(pilot: Any, ids: list[str]) -> str:
    """Run kill-switch on ``ids`` through the screens; back on the inventory; its run id."""
    app = pilot.app
    app.open_runbooks(ids)
    await pick_runbook(pilot, "kill-switch")
    await wait_screen(pilot, "PlanScreen")
    await pilot.press("a")
    await wait_screen(pilot, "ConfirmRunModal")
    await type_text(pilot, ids[0] if len(ids) == 1 else str(len(ids)))
    await pilot.press("tab")
    await type_text(pilot, "palette test")
    await pilot.press("enter")
    await wait_screen(pilot, "RunScreen")
    run = app.screen
    await wait_for(pilot, lambda: run.result is not None and not run.running, what="run end")
    await pilot.press("i")
    await wait_screen(pilot, "InventoryScreen")
    return str(run.plan.run_id)


async def test_one_run_verb_per_runbook_that_acts_on_the_marks(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 2), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await wait_for(pilot, lambda: app.screen.query_one("#inventory-table").row_count == 2,
                       what="the inventory's rows")
        await pilot.press("space", "down", "space")
        await wait_for(pilot, lambda: len(app.marked) == 2, what="two marks")
        names = [n for n in await palette_names(pilot, "run:") if n.startswith("run:")]
        assert sorted(names) == sorted(f"run: {rb} on 2 marked" for rb in (
            "kill-switch", "revoke-credentials", "flags-off", "destroy-keys", "evidence",
            "rotate")), names
        await wait_screen(pilot, "InventoryScreen")

        await palette(pilot, "run: flags", "run: flags-off on 2 marked")
        await wait_screen(pilot, "PlanScreen")  # planned at once: the review is next
        plan = app.screen.plan
        assert plan.runbook == "flags-off" and plan.integrations == ["app-0", "app-1"]
    assert switches() == {}  # a plan, nothing run


async def test_report_and_restore_verbs_list_recent_runs(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        run_id = await finished_run(pilot, ["app-0"])
        names = await palette_names(pilot, run_id[-4:])
        assert f"report: run {run_id}" in names and f"restore: run {run_id}" in names, names
        await wait_screen(pilot, "InventoryScreen")

        await palette(pilot, f"report {run_id[-4:]}", f"report: run {run_id}")
        await wait_screen(pilot, "ReportScreen")
        assert app.current_mode == "audit"
        assert run_id in app.screen.markdown
        await pilot.press("escape")
        await wait_screen(pilot, "AuditScreen")
        await pilot.press("escape")  # the audit section's first screen: back to where we were
        await wait_screen(pilot, "InventoryScreen")

        await palette(pilot, f"restore {run_id[-4:]}", f"restore: run {run_id}")
        await wait_screen(pilot, "PlanScreen")
        assert app.screen.plan.restore_of == run_id
        assert {c.action for c in app.screen.plan.changes} == {"flag.enable",
                                                               "credential.enable"}
    assert switches() == {"app-0-flag": "off", "app-0-key": "off"}  # reviewed, not run


async def test_a_plan_only_run_has_a_report_and_no_restore(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="dry-run")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        run_id = app.screen.plan.run_id
        await pilot.press("i")
        await wait_screen(pilot, "InventoryScreen")
        names = await palette_names(pilot, run_id[-4:])
        assert f"report: run {run_id}" in names
        assert f"restore: run {run_id}" not in names


async def test_the_mode_verb_asks_for_the_typed_word(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await palette(pilot, "mode", "mode: switch to live")
        await wait_screen(pilot, "ConfirmModeModal")
        assert app.mode == "dry-run"  # never silently
        await type_text(pilot, "LIVE")
        await pilot.press("enter")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "live"


def flag_sandbox_config(root: Path) -> Path:
    """A sandbox config: the fake backend and a flag file, both ``sandbox = true``."""
    path = write_fake_config(root, 1, backend="sandbox = true")
    flags = root / "flags.json"
    flags.write_text(json.dumps({"flags": {"app-0-enabled": {
        "state": "ENABLED", "variants": {"on": True, "off": False},
        "defaultVariant": "off", "targeting": {}}}}))  # turned off in the last round
    path.write_text(path.read_text().replace(
        "[[integrations]]", '[backends.flags]\ntype = "flagfile"\nsandbox = true\n'
        f'path = "{flags}"\n\n[[integrations]]', 1).replace(
        'key = "app-0-key"\n', 'key = "app-0-key"\n[[integrations.flags]]\n'
        'backend = "flags"\nflag = "app-0-enabled"\n', 1))
    return path


async def test_sandbox_reset_is_offered_only_on_a_sandbox_config_and_resets_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import console.sandbox as sandbox

    # no service process in a unit test: the flag file is this sandbox's whole state
    monkeypatch.setattr(sandbox, "_services", lambda config: [])
    (tmp_path / "real").mkdir()
    real = make_app(write_fake_config(tmp_path / "real", 1))
    assert "sandbox: reset" not in [name for name, _, _ in commands(real)]

    (tmp_path / "sb").mkdir()
    config = flag_sandbox_config(tmp_path / "sb")
    app = make_app(config, exercise=True)
    flags = tmp_path / "sb" / "flags.json"
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await palette(pilot, "sandbox", "sandbox: reset")
        await wait_for(pilot, lambda: notified(app, "flagfile:flags: running"),
                       what="the reset's report")
        assert notified(app, "Stopping every sandbox service")
    flag = json.loads(flags.read_text())["flags"]["app-0-enabled"]
    assert flag["defaultVariant"] == "on" and flag["state"] == "ENABLED"


async def test_every_verb_that_would_leave_a_run_is_refused(tmp_path: Path) -> None:
    config, gate, entered = gated_config(tmp_path, 2)
    config.write_text(config.read_text().replace('type = "fake"', 'type = "fake"\nsandbox = true'))
    app = make_app(config, mode="exercise")
    async with app.run_test(size=SIZE) as pilot:
        run = await start_run(pilot, 2)
        await wait_for(pilot, entered.exists, what="an apply held at the gate")
        for query, name in [("run: kill", "run: kill-switch on app-0"),
                            ("runbook: pick", "runbook: pick"),
                            ("detail app-1", "detail: open app-1"),
                            ("sandbox", "sandbox: reset"),
                            ("audit: open", "audit: open"),
                            ("help: keys", "help: keys"),
                            ("mode", "mode: switch to dry-run")]:
            app._notifications.clear()
            await palette(pilot, query, name)
            await wait_for(pilot, lambda: notified(app, "A run is in progress"),
                           what=f"{name!r} refused")
            assert app.screen is run and app.current_mode == "inventory", name
        assert app.mode == "exercise" and run.running
        gate.touch()
        await wait_for(pilot, lambda: run.result is not None and not run.running,
                       what="the run's end")
        assert text(app, "#run-verdict").startswith("OK")
