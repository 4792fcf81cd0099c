"""Every key gets visible feedback within 100 ms (issue 10, section 5), at 10,000 integrations.

A key counts as answered when a frame is rendered (``App._display`` with a compositor update)
that shows its filter's result: the rows on screen are the first matching integrations.
Typed while the states of all 10,000 are still being observed in the background, as an
operator would right after start-up. The benchmark (``benchmarks/tui.py``) measures the same
thing against the 30 ms p95 goal on an idle machine; this test keeps the wide margin a
shared test machine needs and catches the regressions that matter (a table that renders
every row, a filter that blocks on the observation).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from textual import events

from console.tui.app import make_app
from console.tui.screens.inventory import InventoryScreen
from tests.tui.flow_helpers import wait_for, write_fake_config

N = 10_000
TEXT = "app-12"


async def test_filter_keys_paint_within_100_ms_at_ten_thousand_rows(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, N))
    painted: dict[str, Any] = {"check": None, "at": 0.0, "event": asyncio.Event()}
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        original(screen, renderable)
        check = painted["check"]
        if renderable is not None and check is not None and check():
            painted["check"], painted["at"] = None, time.perf_counter()
            painted["event"].set()

    app._display = display  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen), what="inventory")
        screen = app.screen
        assert isinstance(screen, InventoryScreen)
        await wait_for(pilot, lambda: app.observed.busy, what="observation under way")
        await pilot.press("slash")
        ids = [i.id for i in app.config.integrations]
        keys = [*TEXT, *["backspace"] * len(TEXT)]
        texts = [TEXT[:n + 1] for n in range(len(TEXT))] + \
            [TEXT[:n] for n in range(len(TEXT) - 1, -1, -1)]
        took: list[float] = []
        for key, text in zip(keys, texts, strict=True):
            want = [i for i in ids if text in i]
            sent = time.perf_counter()

            def shows(want: list[str] = want, sent: float = sent) -> bool:
                table = screen.table
                return screen.filter_done_at > sent and table.row_ids == want \
                    and table.rows_on_screen == want[:len(table.rows_on_screen)]

            painted["event"].clear()
            painted["check"] = shows
            event = events.Key(key, key if len(key) == 1 else None)
            event.set_sender(app)
            app._driver.send_message(event)  # type: ignore[union-attr]
            await asyncio.wait_for(painted["event"].wait(), 10)
            took.append(painted["at"] - sent)
            await pilot.pause()
        assert statistics.median(took) < 0.100, [round(t * 1000) for t in took]
        assert screen.table.row_count == N and not screen.query_one("#inventory-filter").value
