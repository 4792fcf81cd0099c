"""Snapshots of the browse screens (inventory, detail, help) at 80x24 and 120x40, LIVE and
DRY-RUN. Content is deterministic: a fixed config on the fake backend with a state file, no
clocks or run ids on screen, background refreshes awaited before the shot.

Update with ``pytest tests/tui/test_snapshots_browse.py --snapshot-update`` after looking at
the new SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from console.tui.app import make_app

SIZES = [(80, 24), (120, 40)]
MODES = ["dry-run", "live"]
KEYS = {
    "inventory": ["down", "space", "down", "down", "space"],
    "detail": ["down", "enter"],
    "help": ["question_mark"],
}


async def _settle(pilot: Pilot[int]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("screen", list(KEYS))
def test_browse_screens(snap_compare, tui_config: Path, screen: str, mode: str,
                        size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press(*KEYS[screen])
        await _settle(pilot)

    assert snap_compare(make_app(tui_config, mode=mode), terminal_size=size,
                        run_before=run_before)


def test_inventory_filter_message(snap_compare, tui_config: Path) -> None:  # type: ignore[no-untyped-def]
    """An invalid selector: a gentle message, rows filtered by the other tokens."""
    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("slash", *"env=qa claims", "escape")
        await _settle(pilot)

    assert snap_compare(make_app(tui_config), terminal_size=(80, 24), run_before=run_before)


def test_confirm_live_modal(snap_compare, tui_config: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("ctrl+l", *"live", "enter")
        await _settle(pilot)

    assert snap_compare(make_app(tui_config), terminal_size=(80, 24), run_before=run_before)
