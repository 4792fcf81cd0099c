"""The shared store in the console: a live run the two-person rule covers is refused on screen
with the approval id, nothing changes, and the request shows up as pending for the other
commanders; the local way out of a dead shared store is said on screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import load_config
from console.store import open_approvals
from console.tui.app import make_app
from tests.tui.flow_helpers import (
    open_plan,
    switches,
    text,
    wait_for,
    wait_screen,
    write_fake_config,
)
from tests.tui.test_flows import confirm

SIZE = (80, 24)


async def test_a_live_run_under_the_rule_asks_for_approval_and_changes_nothing(
        tmp_path: Path) -> None:
    config = write_fake_config(tmp_path, 1)
    config.write_text(config.read_text().replace("[settings]", '[settings]\ntwo_person = "all"', 1))
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await open_plan(pilot, "flags-off", ["app-0"])
        await pilot.press("a")
        await confirm(pilot, "app-0", "key leaked")
        await wait_screen(pilot, "RunScreen")
        await wait_for(pilot, lambda: app.screen.failed_error is not None, what="refusal")
        verdict = text(app, "#run-verdict")
        assert verdict.startswith("REFUSED — nothing was changed"), verdict
        assert "second operator's approval" in verdict and "apr-" in verdict, verdict
        with open_approvals(load_config(config)) as store:
            (pending,) = store.pending()
        assert pending.id in verdict and pending.requester.operator == "ic-on-call"
        await wait_for(pilot, lambda: app.approvals_pending == 1, what="the banner's count")
    assert switches() == {}


@pytest.mark.sqlite_only  # sets its own store
async def test_the_local_way_out_of_a_shared_store_is_said_on_screen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_fake_config(tmp_path, 1)
    config.write_text(config.read_text().replace(
        "[settings]", '[settings]\nstore = "postgresql://alice@127.0.0.1:1/killswitch"', 1))
    monkeypatch.setenv("KILLSWITCH_STORE", "sqlite")
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await wait_for(pilot, lambda: any(n.title == "Not the shared store"
                                          for n in app._notifications), what="the warning")
        warning = next(n for n in app._notifications if n.title == "Not the shared store")
        assert "not seen" in warning.message and warning.severity == "warning"
