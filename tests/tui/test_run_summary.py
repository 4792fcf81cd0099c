"""The end of a run or a restore, per integration, and keys that say why they do nothing.

The run screen ends with one block per integration: what is now off (back on, after a
restore), what is STILL LIVE, what could not be checked, and what cannot come back, from the
engine's own outcomes, with the exit code the CLI gives the same result. A key whose action
cannot run (``a`` in DRY-RUN, ``t``/``u``/``c`` on a finished run) says why when pressed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.engine.model import Plan
from console.render import render_result
from console.tui.app import make_app
from console.tui.messages import RestoreRequested
from tests.tui.flow_helpers import text, wait_for, wait_screen, write_fake_config
from tests.tui.screen_helpers import LONG_KEY, line_with, screen_text, write_incident_config
from tests.tui.test_snapshots_run import fixed_plan

SIZE = (120, 40)
IDS = ["support-assistant-prod", "claims-bot", "leaky-bot"]


async def _run(pilot: Any, app: Any, plan: Plan, consent: bool = True) -> Any:
    app.open_run(plan, "summary test", consent)
    await wait_screen(pilot, "RunScreen")
    run = app.screen
    await wait_for(pilot, lambda: run.result is not None, what="run result")
    await pilot.pause()
    return run


def notified(app: Any) -> list[str]:
    """Every notification shown so far."""
    return [n.message for n in app._notifications]


async def test_the_end_lists_what_is_off_still_live_and_cannot_come_back(
        tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        refreshed: list[list[str] | None] = []
        store = app.observed
        real = store.refresh

        def spy(ids: list[str] | None = None) -> None:
            refreshed.append(ids)
            real(ids)

        store.refresh = spy  # type: ignore[method-assign]
        run = await _run(pilot, app, await fixed_plan(app, "destroy-keys", IDS))
        result = run.result
        summary = text(app, "#run-summary-text")
        lines = summary.splitlines()
        # the same exit code, and the same verdict word, as the CLI
        assert result.exit_code() == 4
        assert lines[0] == "Run ended (exit code 4, as the CLI reports this run):"
        assert "NOT VERIFIED" in render_result(result).splitlines()[-1]
        assert text(app, "#run-verdict").startswith("NOT VERIFIED")
        # integrations with something still live come first
        heads = [line.split(":")[0] for line in lines if not line.startswith(("  ", "Run"))]
        assert heads == ["claims-bot", "leaky-bot", "support-assistant-prod"]
        assert "claims-bot: 0 now off · 1 STILL LIVE · 0 not checked · 0 cannot come back" \
            in lines
        assert "  STILL LIVE: down:claims-bot-key (failed: could not be planned: fake: 503 " \
            "Service Unavailable)" in lines
        assert "leaky-bot: 2 now off · 1 STILL LIVE · 0 not checked · 2 cannot come back" \
            in lines
        assert line_with(summary, "STILL LIVE: key at its provider: STILL LIVE")
        assert "support-assistant-prod: 2 now off · 0 STILL LIVE · 0 not checked · " \
            "1 cannot come back" in lines
        assert f"  cannot come back: sim:{LONG_KEY} (credential.destroy)" in lines
        # the inventory's observed states are read again for exactly these integrations
        assert refreshed == [sorted(IDS)]


async def test_a_key_that_could_not_be_checked_is_listed_and_not_success(
        tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path, probe="unknown"), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        run = await _run(pilot, app, await fixed_plan(app, "destroy-keys", ["leaky-bot"]))
        summary = text(app, "#run-summary-text")
        assert run.result.exit_code() == 4 and "exit code 4" in summary
        assert "leaky-bot: 2 now off · 0 STILL LIVE · 1 not checked · 2 cannot come back" \
            in summary.splitlines()
        assert line_with(summary, "not checked: key at its provider: unknown")
        assert not text(app, "#run-verdict").startswith("OK")


async def test_a_restore_that_leaves_things_dead_never_reads_as_success(
        tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        killed = await _run(pilot, app, await fixed_plan(app, "destroy-keys", ["app-0"]))
        assert killed.result.exit_code() == 0
        assert "app-0: 2 now off · 0 STILL LIVE · 0 not checked · 1 cannot come back" \
            in text(app, "#run-summary-text").splitlines()

        restore = app.session().restore_plan(killed.plan.run_id)
        restored = await _run(pilot, app, restore)
        result = restored.result
        summary = text(app, "#run-summary-text").splitlines()
        verdict = text(app, "#run-verdict")
        assert result.exit_code() == 1
        assert verdict.startswith("INCOMPLETE — restored what could be undone; stays dead")
        assert summary[0] == "Restore ended (exit code 1, as the CLI reports this run):"
        assert "app-0: 1 back on · 0 STILL OFF · 0 not checked · 1 cannot come back" in summary
        assert line_with("\n".join(summary), "cannot come back: sim:app-0-key:",
                         "cannot be undone")
        assert "INCOMPLETE" in render_result(result).splitlines()[-1]


async def test_apply_in_dry_run_says_why_it_does_nothing(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="dry-run")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_plan(await fixed_plan(app, "kill-switch", ["app-0"]))
        await wait_screen(pilot, "PlanScreen")
        plan_screen = app.screen
        assert plan_screen.check_action("apply_plan", ()) is None  # greyed in the footer
        await pilot.press("a")
        await pilot.pause()
        assert app.screen is plan_screen
        assert any(m.startswith("DRY-RUN changes nothing: switch mode with ctrl+l (type LIVE)")
                   for m in notified(app)), notified(app)
        count = len(notified(app))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is plan_screen and len(notified(app)) == count + 1


async def test_keys_on_a_finished_run_say_why_they_do_nothing(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        run = await _run(pilot, app, await fixed_plan(app, "kill-switch", ["app-0"]), False)
        assert text(app, "#run-verdict").startswith("OK")
        for key, action, why in (
                ("t", "retry_failed", "Nothing failed: nothing to retry."),
                ("u", "resume_run", "The run has finished: nothing to resume."),
                ("c", "cancel_run", "The run has finished: nothing to cancel.")):
            assert run.check_action(action, ()) is None  # greyed in the footer
            await pilot.press(key)
            await pilot.pause()
            assert notified(app)[-1] == why
            assert app.screen is run and not run.running


async def test_keys_while_a_run_is_going_say_why(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = write_fake_config(tmp_path, 1, backend=f'gate_file = "{gate}"')
    app = make_app(config, mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_run(await fixed_plan(app, "flags-off", ["app-0"]), "held", False)
        await wait_screen(pilot, "RunScreen")
        run = app.screen
        await wait_for(pilot, (tmp_path / "gate.entered").exists, what="apply held")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is run
        assert notified(app)[-1].startswith("A run is in progress: cancel it with c first")
        await pilot.press("u")
        await pilot.pause()
        assert notified(app)[-1] == "The run is still going: nothing to resume."
        gate.touch()
        await wait_for(pilot, lambda: run.result is not None, what="run result")


async def test_restore_of_a_run_that_changed_nothing_says_why(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="dry-run")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await app.session().plan("kill-switch", ["app-0"])  # DRY-RUN: a plan-only run
        app.action_audit()
        await wait_screen(pilot, "AuditScreen")
        audit = app.screen
        await wait_for(pilot, lambda: audit.ready and bool(audit.runs), what="trail listed")
        run_id = audit.runs[0]["run_id"]
        await pilot.press("u")
        await pilot.pause()
        assert app.screen is audit
        assert notified(app)[-1] == (f"Nothing to restore in {run_id}: it applied no change "
                                     "that can be undone.")


async def test_restore_of_a_leak_says_before_it_runs_that_the_key_stays_dead(
        tmp_path: Path) -> None:
    """Issue 13 §4: the restore plan of a leak shows the credentials held back, with the
    advice to rotate, before anything runs; the flag comes back, the key does not."""
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.cause = "leak"
        killed = await _run(pilot, app, await fixed_plan(app, "kill-switch", ["app-0"]))
        assert killed.result.exit_code() == 0 and killed.plan.cause == "leak"
        app.post_message(RestoreRequested(killed.plan.run_id))
        await wait_screen(pilot, "PlanScreen")
        await wait_for(pilot, lambda: "held back" in screen_text(app), what="held back row")
        shown = screen_text(app)
        assert "rotate" in shown, shown
        restore = app.screen.plan
        assert [c.target for c in restore.changes if c.actionable] == ["sim:app-0-flag"]
