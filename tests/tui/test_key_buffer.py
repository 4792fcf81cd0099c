"""Keys typed while a screen loads are applied once it is ready, in order (issue 10, §5).

The runbook picker loads its runbook files in a worker; the test holds that worker on a gate
it releases itself, so "typed before the picker was ready" is certain, not a race.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import console.runbook
from console.tui.app import make_app
from tests.tui.flow_helpers import wait_for, wait_screen, write_fake_config

SIZE = (120, 40)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """While unset, listing the runbook files blocks (the picker stays loading)."""
    event = threading.Event()
    real = console.runbook.runbook_paths

    def gated(*args: Any, **kw: Any) -> Any:
        assert event.wait(30), "the test never opened the gate"
        return real(*args, **kw)

    monkeypatch.setattr(console.runbook, "runbook_paths", gated)
    return event


async def test_keys_typed_while_the_picker_loads_plan_the_fourth_runbook_shown(
        tmp_path: Path, gate: threading.Event) -> None:
    app = make_app(write_fake_config(tmp_path, 1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("r", "down", "down", "down", "enter")
        picker: Any = app.screen
        assert type(picker).__name__ == "RunbookScreen"
        assert not picker.ready and picker.runbooks == []
        assert picker.keys_held == ["down", "down", "down", "enter"]

        gate.set()
        await wait_screen(pilot, "PlanScreen")
        shown = [rb.name for rb in picker.runbooks]
        assert len(shown) >= 4 and shown[0] == "kill-switch", shown
        assert app.screen.plan.runbook == shown[3], (app.screen.plan.runbook, shown)
        assert picker.keys_held == []


async def test_the_picker_opens_on_kill_switch_even_after_another_runbook_was_used(
        tmp_path: Path, gate: threading.Event) -> None:
    gate.set()
    app = make_app(write_fake_config(tmp_path, 1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("r")
        await wait_screen(pilot, "RunbookScreen")
        picker: Any = app.screen
        await wait_for(pilot, lambda: picker.ready, what="picker ready")
        assert picker.selected.name == "kill-switch"
        await pilot.press("down", "down", "enter")
        await wait_screen(pilot, "PlanScreen")
        used = app.screen.plan.runbook
        assert used != "kill-switch"
        await pilot.press("escape")
        await wait_screen(pilot, "RunbookScreen")
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")

        await pilot.press("r")
        await wait_screen(pilot, "RunbookScreen")
        again: Any = app.screen
        assert again is not picker
        await wait_for(pilot, lambda: again.ready, what="picker ready again")
        assert again.selected.name == "kill-switch"


async def test_escape_is_not_held_while_loading(tmp_path: Path,
                                                gate: threading.Event) -> None:
    app = make_app(write_fake_config(tmp_path, 1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("r", "down", "escape")
        await wait_screen(pilot, "InventoryScreen")
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "InventoryScreen"


async def test_keys_typed_while_the_audit_trail_loads_filter_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/`` then text, typed before the trail was read, ends up in the filter, in order."""
    from textual.widgets import Input

    from console.audit import TrailBase  # either store's trail

    gate = threading.Event()
    real = TrailBase.runs

    def gated(self: TrailBase, *args: Any, **kw: Any) -> Any:
        assert gate.wait(30), "the test never opened the gate"
        return real(self, *args, **kw)

    monkeypatch.setattr(TrailBase, "runs", gated)
    app = make_app(write_fake_config(tmp_path, 1))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("A", "slash", "z", "q")
        audit: Any = app.screen
        assert type(audit).__name__ == "AuditScreen"
        assert audit.keys_held == ["slash", "z", "q"]  # q typed into the filter, not a quit

        gate.set()
        await wait_for(pilot, lambda: audit.ready, what="audit trail listed")
        await pilot.pause()
        box = audit.query_one("#audit-filter", Input)
        assert box.has_focus and box.value == "zq", box.value
        assert app.is_running and app.screen is audit
