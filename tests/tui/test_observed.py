"""The one store of observed states (``app.observed``): progress, Escape, superseding.

A gate on the fake backend's ``plan`` holds chosen keys' observations in their thread until
the test opens it, so "a refresh is stuck on a backend" is certain, not a race. The gate reads
the switch first and answers after it opens: what the backend said when it was asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Label, Static

from adapters.fake import FakeAdapter
from console.tui.app import KillswitchApp, make_app
from console.tui.screens.detail import DetailScreen
from console.tui.screens.inventory import InventoryScreen
from tests.tui.flow_helpers import wait_for
from tests.tui.test_inventory import cell, set_switch, settle, status


class Gate:
    """Holds the fake's observations of ``keys`` until :meth:`open`."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.answered = threading.Event()

    def hold(self, *keys: str) -> None:
        """Hold observations of these keys that start from now on."""
        self.keys = set(keys)
        self.opened.clear()
        self.entered.clear()
        self.answered.clear()

    def open(self) -> None:
        """Let the held observations answer."""
        self.keys = set()
        self.opened.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    real = FakeAdapter.plan

    def plan(self: FakeAdapter, action: str, ref: Any, ctx: Any) -> Any:
        held = ref.get("key") in gate.keys
        changes = real(self, action, ref, ctx)  # read now, answer when the gate opens
        if held:
            gate.entered.set()
            assert gate.opened.wait(30), "the test never opened the gate"
            gate.answered.set()
        return changes

    monkeypatch.setattr(FakeAdapter, "plan", plan)
    yield gate
    gate.open()


def detail_points(app: KillswitchApp) -> str:
    return str(app.screen.query_one("#detail-points", Static).render())


async def test_escape_cancels_a_stuck_refresh_and_says_what_is_unknown(
        tui_config: Path, gate: Gate) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert cell(app, "support-bot", "keys") == "live"
        gate.hold("support-key")
        await pilot.press("R")
        # feedback at once, then what it waits on, with a running count
        assert "states: observing 0/5" in status(app)
        await wait_for(pilot, gate.entered.is_set, what="support-key observation in flight")
        await wait_for(pilot, lambda: "waiting on sim" in status(app), what="progress")
        line = status(app)
        assert "observing 0/5 \u00b7 waiting on sim (Esc cancels)" in line, line
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.observed.busy, what="refresh cancelled")
        await pilot.pause()
        assert not gate.answered.is_set()  # the backend never answered: cancelled anyway
        assert [cell(app, r, "keys") for r in ("support-bot", "claims-summariser")] == \
            ["unknown", "unknown"]
        assert cell(app, "search-embeddings", "keys") == "-"  # none listed stays none listed
        assert "states: refresh cancelled, 5 not observed (unknown)" in status(app)
        why = inventory_line(app)
        assert why.startswith("support-bot: keys unknown (not observed: refresh cancelled "
                              "(last observed live at "), why
        gate.open()
        await wait_for(pilot, gate.answered.is_set, what="the late answer")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert cell(app, "support-bot", "keys") == "unknown"  # the late answer is dropped
        await pilot.press("R")
        await settle(pilot)
        assert cell(app, "support-bot", "keys") == "live"
        assert "states: observed" in status(app)


def inventory_line(app: KillswitchApp) -> str:
    screen = app.screen
    assert isinstance(screen, InventoryScreen)
    return screen.table.detail_text


async def test_escape_in_the_filter_leaves_it_and_does_not_cancel(
        tui_config: Path, gate: Gate) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        gate.hold("support-key")
        await pilot.press("R", "slash")
        await wait_for(pilot, gate.entered.is_set, what="observation in flight")
        await wait_for(pilot, lambda: "(Esc, Esc cancels)" in status(app), what="hint")
        await pilot.press("escape")
        assert app.screen.query_one("#inventory-table").has_focus
        assert app.observed.busy and "(Esc cancels)" in status(app)
        gate.open()
        await settle(pilot)
        assert cell(app, "support-bot", "keys") == "live"
        assert "states: observed" in status(app)


async def test_a_newer_refresh_wins_over_an_older_one_that_answers_late(
        tui_config: Path, gate: Gate) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        gate.hold("support-key")
        app.observed.refresh()  # the older: reads "live", then is held
        await wait_for(pilot, gate.entered.is_set, what="older refresh in flight")
        set_switch(tui_config, "support-key", "off")
        gate.keys = set()  # the newer refresh is not held
        app.observed.refresh(["support-bot"])
        await wait_for(pilot, lambda: cell(app, "support-bot", "keys") == "off",
                       what="the newer refresh")
        gate.open()
        await wait_for(pilot, gate.answered.is_set, what="the older refresh's late answer")
        await settle(pilot)
        assert cell(app, "support-bot", "keys") == "off"  # not the older "live"
        assert cell(app, "claims-summariser", "keys") == "off"  # the older did the rest
        assert "states: observed" in status(app)


async def test_escape_on_the_detail_cancels_its_refresh_then_goes_back(
        tui_config: Path, gate: Gate) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        gate.hold("support-key")
        await pilot.press("R")
        await wait_for(pilot, gate.entered.is_set, what="observation in flight")
        await wait_for(pilot, lambda: "waiting on sim (Esc cancels)" in detail_points(app),
                       what="progress on the detail")
        await pilot.press("escape")
        await wait_for(pilot, lambda: "refresh cancelled" in detail_points(app),
                       what="cancelled")
        assert isinstance(app.screen, DetailScreen)  # the first Escape only cancelled
        shown = detail_points(app)
        assert "credentials unknown  (not observed: refresh cancelled (last observed live at" \
            in shown, shown
        assert "live" not in shown.replace("last observed live", "")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen), what="back")
        assert cell(app, "support-bot", "keys") == "unknown"  # the same store
        assert cell(app, "claims-summariser", "keys") == "off"  # not part of that refresh
        gate.open()


async def test_every_key_gets_feedback_while_observing(tui_config: Path, gate: Gate) -> None:
    """The status line moves within a frame of R, before any backend answered."""
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        gate.hold("support-key", "claims-key")
        before = str(app.screen.query_one("#inventory-status", Label).content)
        await pilot.press("R")
        after = str(app.screen.query_one("#inventory-status", Label).content)
        assert "states: observed" in before and "observing" in after, (before, after)
        await wait_for(pilot, gate.entered.is_set, what="observation in flight")
        await pilot.press("down")  # the table still answers while a backend is stuck
        screen = app.screen
        assert isinstance(screen, InventoryScreen)
        assert screen.table.cursor_id == "claims-summariser"
        gate.open()
        await settle(pilot)
