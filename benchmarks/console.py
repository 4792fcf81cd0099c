"""Console latency on the warm sandbox: plan, confirm, report and refresh, as an operator
feels them.

Starts the embedded sandbox for ``config.example.toml`` (``killswitch sandbox start``; a
running one is reused), opens the console headless (``App.run_test``) in EXERCISE at 80x24,
waits until the engine runtime is warm (every backend's client built), then times, over
``--rounds`` rounds (median and max printed):

* plan: Enter on kill-switch in the runbook picker (one marked integration) until the plan
  screen is painted: planning (every target observed) and the plan screen;
* confirm: ``a`` on the plan, until the confirmation dialog is on screen;
* report: ``o`` on the audit trail's newest run, until the report screen shows it;
* refresh: ``R`` on the inventory, until every integration's kill points are observed again.

Each figure is the wall time from the key press until the screen shows the result: the
state is reached and the screen has been refreshed with it (painted).

Goals (issue 10): plan of one integration <= 1.0 s, report and confirm <= 0.2 s,
refresh <= 1.0 s.

Run: ``.venv/bin/python benchmarks/console.py [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "config.example.toml"
GOALS = {"plan": 1.0, "confirm": 0.2, "report": 0.2, "refresh": 1.0}


def screen_name(app: Any) -> str:
    """The class name of the screen on top."""
    return type(app.screen).__name__


async def wait(pilot: Any, pred: Callable[[], bool], limit: float = 60.0) -> None:
    """Poll ``pred`` every 5 ms (a benchmark, not a test: it reports, never asserts)."""
    deadline = time.perf_counter() + limit
    while not pred():
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out waiting on line {pred.__code__.co_firstlineno}")
        await pilot.pause(0.005)


def observing(app: Any) -> bool:
    """True while the states store has a refresh in flight."""
    store = getattr(app, "observed", None)
    return bool(store is not None and store.busy)


async def timed(pilot: Any, key: str, pred: Callable[[], bool]) -> float:
    """Seconds from pressing ``key`` until ``pred`` holds and the screen has been painted
    with it (a ``call_after_refresh`` callback on the screen then on top)."""
    app = pilot.app
    painted: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    start = time.perf_counter()
    press = asyncio.create_task(pilot.press(key))
    deadline = start + 60
    while not pred():
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out after {key!r}")
        await asyncio.sleep(0.002)
    app.screen.call_after_refresh(
        lambda: painted.done() or painted.set_result(time.perf_counter()))
    end = await painted
    await press
    return end - start


def fresh(app: Any, integration_id: str, since: float) -> bool:
    """The integration's kill points were observed (not cancelled) after ``since``."""
    seen = app.observed.get(integration_id)
    return bool(seen is not None and not seen.cancelled and seen.at >= since)


async def measure(rounds: int) -> dict[str, list[float]]:
    """Drive the console and time each interaction ``rounds`` times."""
    from console.tui.app import make_app

    app = make_app(CONFIG, mode="exercise", incident="BENCH-1")
    out: dict[str, list[float]] = {k: [] for k in GOALS}
    async with app.run_test(size=(80, 24)) as pilot:
        await wait(pilot, lambda: screen_name(app) == "InventoryScreen")
        await asyncio.to_thread(app.runtime.warm)  # the console warms it after first paint
        await wait(pilot, lambda: not observing(app))
        for _ in range(rounds):
            # refresh: R until every integration was observed again
            ids = [i.id for i in app.config.integrations]
            t0 = time.time()
            out["refresh"].append(await timed(
                pilot, "R", lambda ids=ids, t0=t0: all(fresh(app, i, t0) for i in ids)))
            # plan: Enter on kill-switch in the picker until the plan screen is painted
            app.marked = frozenset({"support-bot"})
            await pilot.press("r")
            await wait(pilot, lambda: screen_name(app) == "RunbookScreen"
                       and bool(getattr(app.screen, "ready", True)))
            out["plan"].append(await timed(
                pilot, "enter", lambda: screen_name(app) == "PlanScreen"))
            # confirm: a on the plan until the dialog is painted
            out["confirm"].append(await timed(pilot, "a", lambda: "Confirm" in screen_name(app)))
            await app.pop_screen()  # the dialog; then "i" closes every screen above the inventory
            await pilot.press("i")
            await wait(pilot, lambda: screen_name(app) == "InventoryScreen")
            # report: o on the audit trail's newest run until the report is painted
            await pilot.press("A")
            await wait(pilot, lambda: screen_name(app) == "AuditScreen")
            await wait(pilot, lambda: getattr(app.screen, "selected_run", None) is not None)
            out["report"].append(await timed(
                pilot, "o", lambda: screen_name(app) == "ReportScreen"))
            await pilot.press("escape")
            await pilot.press("i")
            await wait(pilot, lambda: screen_name(app) == "InventoryScreen")
    return out


def main() -> None:
    """Start the sandbox, measure, print the figures against the goals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    subprocess.run([str(Path(sys.executable).parent / "killswitch"), "--config", str(CONFIG),
                    "sandbox", "start"], check=True, capture_output=True)
    figures = asyncio.run(measure(args.rounds))
    print(f"console latency on the warm sandbox, {args.rounds} rounds, 80x24")
    print(f"{'interaction':<12}{'median s':>10}{'max s':>10}{'goal s':>10}  verdict")
    for name, values in figures.items():
        med = statistics.median(values)
        verdict = "meets" if med <= GOALS[name] else "MISSES"
        print(f"{name:<12}{med:>10.3f}{max(values):>10.3f}{GOALS[name]:>10.1f}  {verdict}")


if __name__ == "__main__":
    main()
