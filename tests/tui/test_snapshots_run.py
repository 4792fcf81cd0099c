"""Snapshots of the runbook picker, plan review, confirmation, run, audit and report screens.

Fake backend, fixed config, and plans made by the real planner with a fixed run id and
creation time, so that everything on screen is deterministic (the elapsed time of a run on
the instant fake backend shows 00:00; the audit screen shows no timestamps; the report's
trail is written with a fixed clock and host name).

At 80x24 each test also reads the rendered screen and checks that what decides is on it
(IRREVERSIBLE and the status, the outcome and verify, the report's outcomes): a picture that
did not change is not enough.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.engine.model import Plan
from console.tui.app import make_app
from tests.tui.flow_helpers import wait_for, wait_screen, write_fake_config
from tests.tui.screen_helpers import fits, line_with, screen_text, write_incident_config

SIZES = [(80, 24), (120, 40)]
MODES = ["live", "dry-run"]
RUN_ID = "r-20250101-000000-snap"


async def fixed_plan(app: Any, runbook: str, ids: list[str], run_id: str = RUN_ID) -> Plan:
    """A real plan (observed on the fake backend) with deterministic id, time and path."""
    from console.engine.planner import make_plan
    from console.engine.runtime import Runtime
    from console.inventory import select
    from console.runbook import load_runbook

    rt = Runtime(app.config)
    try:
        plan = await make_plan(rt, load_runbook(runbook, app.config),
                               select(app.config.integrations, ids), ids,
                               incident="INC-7", run_id=run_id)
    finally:
        rt.close()
    plan.created = "2025-01-01T00:00:00.000Z"
    plan.config = "config.toml"
    return plan


def build(tmp_path: Path, mode: str, n: int = 2) -> Any:
    return make_app(write_fake_config(tmp_path, n), mode=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runbook_picker(snap_compare: Any, tmp_path: Path, mode: str,
                        size: tuple[int, int]) -> None:
    app = build(tmp_path, mode)

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0", "app-1"])
        await wait_screen(pilot, "RunbookScreen")
        await wait_for(pilot, lambda: bool(app.screen.runbooks) and app.screen.ready)
        # kill-switch (listed first), destroy-keys, evidence, flags-off: flags-off's steps on
        # the right
        await pilot.press("down", "down", "down")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def shown(pilot: Any, table: str, seen: dict[str, Any]) -> None:
    """Record what the terminal shows, and whether ``table`` fits it, in ``seen``."""
    await pilot.pause()
    seen["text"] = screen_text(pilot.app)
    seen["fits"] = fits(pilot.app, pilot.app.screen.query_one(table))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plan_review_with_irreversible_rows(snap_compare: Any, tmp_path: Path, mode: str,
                                            size: tuple[int, int]) -> None:
    app = build(tmp_path, mode)
    seen: dict[str, Any] = {}

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        app.open_plan(await fixed_plan(app, "destroy-keys", ["app-0", "app-1"]))
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("down", "down", "down")  # the pane: app-0's key, in full
        await shown(pilot, "#plan-table", seen)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
    screen = seen["text"]
    assert seen["fits"]
    assert line_with(screen, "IRREVERSIBLE", "observed", "sim:app-0-key")
    assert line_with(screen, "reversible", "observed", "sim:app-1-flag")
    assert "IRREVERSIBLE: cannot be undone" in screen and "switch: on -> off" in screen
    assert ("DRY-RUN changes nothing anywhere" if mode == "dry-run" else "LIVE PLAN") in screen


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_confirm_modal(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = build(tmp_path, "live")

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        app.open_plan(await fixed_plan(app, "destroy-keys", ["app-0", "app-1"]))
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await wait_screen(pilot, "ConfirmRunModal")
        await pilot.press("3", "tab", "x", "enter")  # wrong count: refused, shown in red

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_run_screen_after_finish(snap_compare: Any, tmp_path: Path,
                                 size: tuple[int, int]) -> None:
    app = build(tmp_path, "live", n=1)
    seen: dict[str, Any] = {}

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        app.open_run(await fixed_plan(app, "kill-switch", ["app-0"]),
                     "snapshot: key pasted in a ticket", False)
        await wait_screen(pilot, "RunScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: app.screen.result is not None)
        await shown(pilot, "#run-table", seen)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
    screen = seen["text"]
    assert seen["fits"]
    assert line_with(screen, "done (applied)", "dead", "sim:app-0-key")
    assert "OK — every change applied and verified" in screen
    assert "app-0: 2 now off · 0 STILL LIVE · 0 not checked · 0 cannot come back" in screen


def test_run_screen_with_a_failure_and_a_live_key(snap_compare: Any, tmp_path: Path) -> None:
    """80x24 only: the log, whose order across integrations varies, is hidden there."""
    app = make_app(write_incident_config(tmp_path), mode="live")
    seen: dict[str, Any] = {}

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        app.open_run(await fixed_plan(app, "destroy-keys",
                                      ["support-assistant-prod", "claims-bot", "leaky-bot"]),
                     "snapshot: runaway agent", True)
        await wait_screen(pilot, "RunScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: app.screen.result is not None)
        await pilot.press("down", "down")  # the pane: the failed operation
        await shown(pilot, "#run-table", seen)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    screen = seen["text"]
    assert seen["fits"]
    assert line_with(screen, "FAILED", "down:claims-bot-key")
    assert "could not be planned: fake: 503" in screen
    assert "NOT VERIFIED — key STILL LIVE" in screen and "exit code 4" in screen
    assert line_with(screen, "claims-bot:", "1 STILL LIVE")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_audit_screen(snap_compare: Any, tmp_path: Path, mode: str,
                      size: tuple[int, int]) -> None:
    app = build(tmp_path, mode, n=1)  # one integration: the event order is fixed

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        session = app.session()
        plan = await fixed_plan(app, "kill-switch", ["app-0"])
        await session.apply(plan, reason="snapshot")
        app.action_audit()
        await wait_screen(pilot, "AuditScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: any("Chain OK" in str(w.render())
                                          for w in app.screen.query("#audit-chain")))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_report_screen(snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       size: tuple[int, int]) -> None:
    monkeypatch.setattr("console.audit.utc_now", lambda: "2025-01-01T00:00:00.000000Z")
    monkeypatch.setattr("socket.gethostname", lambda: "ir-host")
    app = build(tmp_path, "live", n=1)  # one integration: the event order is fixed
    seen: dict[str, Any] = {}

    async def run_before(pilot: Any) -> None:
        await wait_screen(pilot, "InventoryScreen")
        await app.session().apply(await fixed_plan(app, "kill-switch", ["app-0"]),
                                  reason="snapshot")
        app.action_audit()
        await wait_screen(pilot, "AuditScreen")
        await wait_for(pilot, lambda: app.screen.ready and bool(app.screen.runs))
        await pilot.press("o")
        await wait_screen(pilot, "ReportScreen")
        # the pane: flag.disable applied (after the evidence's start, seal and end, and the
        # flag's start)
        await pilot.press(*["down"] * 5)
        await shown(pilot, "#report-timeline", seen)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
    screen = seen["text"]
    assert seen["fits"]
    assert "run r-20250101-000000-snap — finished" in screen
    assert line_with(screen, "applied", "app-0 flag.disable sim:app-0-flag")
    assert line_with(screen, "verified", "app-0 credential.disable sim:app-0-key")
    assert "outcome: applied" in screen and "target: sim:app-0-flag" in screen
