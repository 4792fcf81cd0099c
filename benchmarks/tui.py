"""TUI benchmark: 10,000 generated integrations on the fake backend.

Measures
  * first screen: from process start (a fresh interpreter: imports, config load, app start)
    until the inventory table has rows and takes keys (headless, ``App.run_test``);
  * filter keystroke: from a key press until the table shows the new filter result
    (``pilot.press`` wall time, which includes Pilot's wait for the app to go idle), and the
    filter-and-table-update work alone, median and p95 over 20 keystrokes.

Goals: first screen < 1.0 s, keystroke < 50 ms.

Run: ``.venv/bin/python benchmarks/tui.py [--n 10000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROVIDERS = ("openai", "anthropic", "bedrock", "vertex")
ENVS = ("prod", "staging", "dev")
DATA = ('["customer", "personal"]', '["internal"]', '["public"]', '["regulated"]')


def write_inventory(root: Path, n: int) -> Path:
    """A config with ``n`` integrations (one flag, one key each) on a fake backend."""
    lines = ["[settings]", 'audit_db = "audit.db"', 'operator = "bench"', "",
             "[backends.sim]", 'type = "fake"', ""]
    for i in range(n):
        lines += ["[[integrations]]", f'id = "app-{i:05d}"', f'name = "Application {i}"',
                  f'owner = "team-{i % 97:02d}"', f'environment = "{ENVS[i % 3]}"',
                  f'provider = "{PROVIDERS[i % 4]}"', f"data_classes = {DATA[i % 4]}",
                  "[[integrations.flags]]", 'backend = "sim"', f'key = "app-{i}-flag"',
                  "[[integrations.credentials]]", 'backend = "sim"', f'key = "app-{i}-key"', ""]
    path = root / "config.toml"
    path.write_text("\n".join(lines))
    return path


async def _first_screen(config: Path) -> None:
    from console.tui.app import make_app

    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        while True:
            screen = app.screen
            table = getattr(screen, "table", None) if type(screen).__name__ == \
                "InventoryScreen" else None
            if table is not None and table.row_count and table.has_focus:
                break
            await pilot.pause(0.005)
        print(f"READY {time.perf_counter() - START:.3f} rows={table.row_count}", flush=True)
    # the background observation (a thread) would keep the process alive: leave now
    os._exit(0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _keystrokes(config: Path, text: str
                      ) -> tuple[list[float], list[float], list[float], int]:
    from console.tui.app import make_app
    from console.tui.screens.inventory import InventoryScreen

    app = make_app(config)
    press: list[float] = []
    work: list[float] = []
    updated: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()  # states observed: measure typing alone
        screen = app.screen
        assert isinstance(screen, InventoryScreen)
        await pilot.press("slash")
        for char in text:
            t0 = time.perf_counter()
            await pilot.press("space" if char == " " else char)
            press.append(time.perf_counter() - t0)
            work.append(screen.filter_seconds)
            updated.append(screen.filter_done_at - t0)
        shown = len(screen.visible)
    return press, work, updated, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--child-first-screen", metavar="CONFIG")
    args = parser.parse_args()
    if args.child_first_screen:
        import gc

        gc.disable()  # exactly what `killswitch` does before importing the console
        asyncio.run(_first_screen(Path(args.child_first_screen)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        config = write_inventory(Path(tmp), args.n)
        print(f"inventory: {args.n} integrations written in {time.perf_counter() - t0:.2f} s")

        firsts = []
        for _ in range(5):  # states are observed in the background; the child exits at once
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child-first-screen",
                                  str(config)], capture_output=True, text=True, check=True,
                                 cwd=ROOT).stdout
            total = time.perf_counter() - t0
            ready = next(line for line in out.splitlines() if line.startswith("READY"))
            firsts.append((total, float(ready.split()[1])))
        best_total = min(t for t, _ in firsts)
        best_inside = min(i for _, i in firsts)
        median_total = statistics.median(t for t, _ in firsts)
        print(f"first screen (process start -> table has rows and focus), 5 runs: "
              f"best {best_total:.3f} s, median {median_total:.3f} s wall "
              f"(best {best_inside:.3f} s inside the interpreter)  "
              f"goal < 1.0 s: {'OK' if median_total < 1.0 else 'MISSED'} (median)")

        from console.config import load_config

        t0 = time.perf_counter()
        load_config(config)
        print(f"  of which config + inventory load: {time.perf_counter() - t0:.3f} s")

        text = "app-0 env=prod team-1"  # free text, a selector, more free text: 21 keys
        press, work, updated, shown = asyncio.run(_keystrokes(config, text))
        print(f"filter keystroke ({len(press)} keys typing {text!r}, {shown} rows left):")
        for label, values in (("key sent -> table rows replaced   ", updated),
                              ("  of which filter + table update  ", work),
                              ("pilot.press incl. idle detection  ", press)):
            print(f"  {label} median {statistics.median(values)*1e3:6.1f} ms, "
                  f"p95 {pct(values, 0.95)*1e3:6.1f} ms")
        print(f"  goal < 50 ms (key -> table updated, p95): "
              f"{'OK' if pct(updated, 0.95) < 0.05 else 'MISSED'}; the repaint after it is "
              "not included (Pilot's idle wait is a heuristic upper bound)")


if __name__ == "__main__":
    main()
