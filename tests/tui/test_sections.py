"""Top-level sections as Textual modes, and screens that post what the operator asked for.

Inventory, audit and help are ``App.MODES``, each with its own screen stack: ``A`` shows the
audit trail where it was left, Escape on a section's first screen goes back to where the
operator came from, ``i`` closes every screen above the inventory. Screens post messages
(:mod:`console.tui.messages`) that bubble up to the app, which opens the screen.
"""

from __future__ import annotations

from pathlib import Path

from console.tui.app import OPERATING_MODES, make_app
from console.tui.messages import DetailRequested, PlanReviewRequested, RunConfirmed
from console.tui.widgets.banner import ModeBanner
from tests.tui.flow_helpers import (
    open_plan,
    switches,
    wait_for,
    wait_screen,
    write_fake_config,
)

SIZE = (120, 40)


def test_operating_modes_are_not_textual_modes(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1))
    assert OPERATING_MODES == ("dry-run", "live", "exercise")
    assert set(app.MODES) == {"inventory", "audit", "team", "help"}
    assert app.DEFAULT_MODE == "inventory"


async def test_sections_keep_their_place_and_escape_goes_back(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        assert app.current_mode == "inventory" and len(app.screen_stack) == 1
        session = app.session()
        plan = await session.plan("kill-switch", ["app-0"])
        await session.apply(plan, reason="sections test")

        await pilot.press("A")
        await wait_screen(pilot, "AuditScreen")
        assert app.current_mode == "audit" and app.screen.query(ModeBanner)
        await wait_for(pilot, lambda: bool(app.screen.runs), what="runs listed")
        await pilot.press("o")
        await wait_screen(pilot, "ReportScreen")

        await pilot.press("i")
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("A")  # the audit section as it was left: the report
        await wait_screen(pilot, "ReportScreen")
        assert plan.run_id in app.screen.markdown

        await pilot.press("question_mark")
        await wait_screen(pilot, "HelpScreen")
        assert app.current_mode == "help" and app.screen.query(ModeBanner)
        await pilot.press("escape")  # back where we came from
        await wait_screen(pilot, "ReportScreen")
        await pilot.press("escape")
        await wait_screen(pilot, "AuditScreen")
        await pilot.press("escape")  # the audit section's first screen: back again
        await wait_screen(pilot, "InventoryScreen")
        assert app.current_mode == "inventory"


async def test_i_closes_every_screen_above_the_inventory(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await open_plan(pilot, "kill-switch", ["app-0"])
        assert [type(s).__name__ for s in app.screen_stack] == [
            "InventoryScreen", "RunbookScreen", "PlanScreen"]
        await pilot.press("i")
        await wait_screen(pilot, "InventoryScreen")
        assert len(app.screen_stack) == 1
    assert switches() == {}


async def test_screens_post_what_the_operator_asked_for_and_the_app_opens_it(
        tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        inventory = app.screen
        inventory.post_message(DetailRequested("app-0"))  # bubbles from the screen
        await wait_screen(pilot, "DetailScreen")
        assert app.screen.integration_id == "app-0"
        # the detail observes the integration on open; Escape would first cancel that
        await wait_for(pilot, lambda: not app.observed.busy, what="the detail's observation")
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")

        plan = await app.session().plan("kill-switch", ["app-0"])
        inventory.post_message(PlanReviewRequested(plan))
        await wait_screen(pilot, "PlanScreen")
        assert app.screen.plan is plan
        app.screen.post_message(RunConfirmed(plan, "routed by a message", False))
        await wait_screen(pilot, "RunScreen")
        run = app.screen
        await wait_for(pilot, lambda: run.result is not None and not run.running,
                       what="run end")
        assert run.reason == "routed by a message"
    assert switches() == {"app-0-flag": "off", "app-0-key": "off"}
