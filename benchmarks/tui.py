"""TUI benchmark: the console at 10,000 integrations, against a bare Textual app.

Goals (issue 10, section 5), at ``--n 10000``:

* first interactive screen <= 0.5 s (median over fresh processes);
* filter keystroke to painted rows: p95 <= 30 ms;
* peak RSS <= 150 MB.

What is measured, for the console and, in the same run, for a bare Textual app (an ``Input``
and a ``DataTable`` holding every row of the same inventory file, read with the same TOML
parser, no validation, filtered by clearing the table and adding every matching row):

* first screen: wall time from spawning a fresh interpreter until the first frame is
  rendered in which the table has rows and focus (headless ``App.run_test``; a frame is
  rendered when ``App._display`` is called with a compositor update). The console's child
  pauses the cyclic collector as ``killswitch`` does.
* filter keystroke: from sending a key to the first frame rendered after that key's filter
  finished (``filter_done_at``) in which the table's rows are exactly those matching the
  text (checked against an independent substring filter). Typed one key at a time, each key
  after the previous one is painted and the app is idle: the text, then backspaces back to
  an empty filter (widening is the expensive direction). The console is measured after its
  background observation of every integration finished.
* peak RSS: ``ru_maxrss`` of the session process (start, observation, typing).

Run: ``.venv/bin/python benchmarks/tui.py [--n 10000] [--runs 5]``

Refresh on a real config (section 5: refresh <= 1.0 s with the sandbox warm): from pressing
``R`` to the first frame saying ``states: observed``, after a first observation built the
clients: ``.venv/bin/python benchmarks/tui.py --refresh config.example.toml [--runs 5]``
(start the sandbox first: ``killswitch --config config.example.toml sandbox start``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROVIDERS = ("openai", "anthropic", "bedrock", "vertex")
ENVS = ("prod", "staging", "dev")
DATA = ('["customer", "personal"]', '["internal"]', '["public"]', '["regulated"]')
TEXT = "team-4 application 12"
"""Typed then erased key by key (free text: both apps filter it the same way)."""
GOALS = {"first": 0.5, "filter_p95": 0.030, "rss_mb": 150.0}


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


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def keystrokes(text: str) -> list[tuple[str, str]]:
    """(key, filter text after it): type ``text``, then erase it."""
    out = [("space" if c == " " else c, text[: n + 1]) for n, c in enumerate(text)]
    out += [("backspace", text[:n]) for n in range(len(text) - 1, -1, -1)]
    return out


def expected_ids(rows: list[tuple[str, ...]], text: str) -> list[str]:
    """Ids whose id, name, owner or provider contain every word of ``text`` (any case)."""
    words = text.lower().split()
    return [r[0] for r in rows
            if all(any(w in f.lower() for f in (r[0], r[1], r[2], r[3])) for w in words)]


def table_shows(table: Any, want: list[str]) -> bool:
    """True when ``table`` holds exactly the rows ``want`` and shows a screenful of them.

    The console's table keeps every row and draws those in view (``rows_on_screen``); the
    bare app's is a Textual ``DataTable``.
    """
    if table is None or table.row_count != len(want):
        return False
    if hasattr(table, "rows_on_screen"):
        on_screen = list(table.rows_on_screen)
    else:
        top = int(table.scroll_offset.y)
        rows = table.ordered_rows[top:top + max(table.size.height - 1, 1)]
        on_screen = [str(row.key.value) for row in rows]
    if not on_screen:
        return not want
    try:  # the rows in view: a run of the result (the cursor may keep its row in view)
        top = want.index(on_screen[0])
    except ValueError:
        return False
    return on_screen == want[top:top + len(on_screen)]


# ---------------------------------------------------------------------------- the apps
def bare_app(config: Path) -> Any:
    """A bare Textual app: filter box and a DataTable of every row of ``config``."""
    import tomli
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Input

    class Bare(App[None]):
        def __init__(self) -> None:
            super().__init__()
            doc = tomli.loads(config.read_text())
            self.rows = [(i["id"], i["name"], i["owner"], i["provider"], i["environment"],
                          ",".join(i["data_classes"]), i.get("status", "approved"))
                         for i in doc["integrations"]]
            self.filter_done_at = 0.0

        def compose(self) -> ComposeResult:
            yield Input(id="filter")
            yield DataTable(id="table", cursor_type="row")

        def on_mount(self) -> None:
            table: DataTable[str] = self.query_one(DataTable)
            table.add_columns("id", "name", "owner", "provider", "env", "data", "status")
            self._show(self.rows)
            table.focus()

        def _show(self, rows: list[tuple[str, ...]]) -> None:
            table: DataTable[str] = self.query_one(DataTable)
            table.clear()
            for row in rows:  # keyed by id, as the console's rows
                table.add_row(*row, key=row[0])

        def on_input_changed(self, event: Input.Changed) -> None:
            ids = set(expected_ids(self.rows, event.value))
            self._show([r for r in self.rows if r[0] in ids])
            self.filter_done_at = time.perf_counter()

    return Bare()


def console_app(config: Path) -> Any:
    """The console through its production factory."""
    from console.tui.app import make_app

    return make_app(config)


def _table(app: Any) -> Any:
    from textual.widgets import DataTable

    screen = app.screen
    if type(screen).__name__ == "InventoryScreen":
        return screen.table
    try:
        return screen.query_one("#table", DataTable)
    except Exception:  # noqa: BLE001 - not composed yet
        return None


def _filter_done_at(app: Any) -> float:
    return float(getattr(app, "filter_done_at", 0.0) or getattr(app.screen, "filter_done_at",
                                                                  0.0))


class Frames:
    """Calls ``check`` on every rendered frame (``App._display``) until it holds."""

    def __init__(self, app: Any) -> None:
        self.check: Callable[[], bool] | None = None
        self.at = 0.0
        self.done = asyncio.Event()
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            now = time.perf_counter()
            original(screen, renderable)
            if renderable is not None and self.check is not None and self.check():
                self.at, self.check = now, None
                self.done.set()

        app._display = display

    def arm(self, check: Callable[[], bool]) -> None:
        """From now on, look for a frame in which ``check()`` holds."""
        self.done.clear()
        self.check = check

    async def wait(self, check: Callable[[], bool] | None = None,
                   timeout: float = 10.0) -> float:
        """Wait for a frame in which ``check()`` holds (or the armed check); its time."""
        if check is not None:
            self.arm(check)
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.at


def _ready(app: Any) -> bool:
    table = _table(app)
    return table is not None and table.row_count > 0 and table.has_focus


async def _first_screen(make: Callable[[Path], Any], config: Path) -> None:
    app = make(config)
    frames = Frames(app)
    frames.arm(lambda: _ready(app))  # before the app runs: the first frame may be it
    async with app.run_test(size=(120, 40)):
        at = await frames.wait(timeout=60)
        print(f"READY {at - START:.4f}", flush=True)
    os._exit(0)  # background observation threads would keep the process alive


def _rows_of(app: Any) -> list[tuple[str, ...]]:
    """(id, name, owner, provider) of every row the app was given, in order."""
    if hasattr(app, "config"):
        return [(i.id, i.name, i.owner, i.provider) for i in app.config.integrations]
    return [row[:4] for row in app.rows]


async def _session(make: Callable[[Path], Any], config: Path, text: str) -> None:
    from textual import events

    app = make(config)
    rows = _rows_of(app)
    frames = Frames(app)
    frames.arm(lambda: _ready(app))
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await frames.wait(timeout=60)
        t0 = time.perf_counter()
        await app.workers.wait_for_complete()  # the console's background observation
        observed = getattr(app, "observed", None)
        while observed is not None and observed.busy:
            await asyncio.sleep(0.05)
        out["observation_s"] = time.perf_counter() - t0
        await pilot.pause()
        await pilot.press("slash" if hasattr(app.screen, "table") else "tab")
        await pilot.pause()
        latencies: list[float] = []
        for key, after in keystrokes(text):
            want = expected_ids(rows, after)
            sent = time.perf_counter()

            def painted(want: list[str] = want, sent: float = sent) -> bool:
                return _filter_done_at(app) > sent and table_shows(_table(app), want)

            char = " " if key == "space" else None if key == "backspace" else key
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)
            try:
                latencies.append(await frames.wait(painted) - sent)
            except TimeoutError:
                raise SystemExit(f"after {key!r} (filter {after!r}) the table never showed "
                                 f"the {len(want)} matching rows") from None
            await pilot.pause()
        out["latencies"] = latencies
    import resource

    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("SESSION " + json.dumps(out), flush=True)
    os._exit(0)


async def _refreshes(config: Path, times: int) -> tuple[list[float], dict[str, str]]:
    """Press R ``times`` on the inventory of ``config`` after a first (warming) observation;
    seconds from the key to the first frame that says ``states: observed``."""
    from textual import events
    from textual.widgets import Label

    app = console_app(config)
    frames = Frames(app)
    frames.arm(lambda: _ready(app))

    def observed() -> bool:
        screen = app.screen
        label = screen.query_one("#inventory-status", Label)
        return not app.observed.busy and "states: observed" in str(label.content)

    took: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await frames.wait(timeout=60)
        await frames.wait(observed, timeout=60)  # the first observation builds the clients
        await app.workers.wait_for_complete()
        for _ in range(times):
            await pilot.pause()
            sent, wall = time.perf_counter(), time.time()
            event = events.Key("R", "R")
            event.set_sender(app)
            frames.arm(lambda wall=wall: app.observed.busy or _refreshed(app, wall))
            app._driver.send_message(event)
            await frames.wait(timeout=30)  # the refresh started (or already ended)
            took.append(await frames.wait(observed, timeout=30) - sent)
        words = {f"{i.id}.{c}": str(app.screen.table.get_cell(i.id, c))
                 for i in app.config.integrations for c in ("keys", "flags", "batches",
                                                            "egress")}
    return took, words


def _refreshed(app: Any, since: float) -> bool:
    """Every integration was observed after ``since`` (``time.time()``)."""
    rows = [app.observed.get(i.id) for i in app.config.integrations]
    return all(r is not None and r.at >= since for r in rows)


# ---------------------------------------------------------------------------- the parent
def _child(kind: str, app: str, config: Path, text: str = "") -> tuple[float, str]:
    """Run one child; (seconds from spawn to its result line, that line)."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, "--app", app,
                             "--config", str(config), "--text", text],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(("READY", "SESSION")):
            took = time.perf_counter() - t0
            proc.wait()
            return took, line
    proc.wait()
    raise SystemExit(f"{app} {kind}: the child exited with {proc.returncode} and no result")


def measure(app: str, config: Path, runs: int) -> dict[str, Any]:
    """First screen over ``runs`` fresh processes, then one typing session."""
    firsts = [_child("first", app, config)[0] for _ in range(runs)]
    _, line = _child("session", app, config, TEXT)
    session = json.loads(line.split(" ", 1)[1])
    lat = session["latencies"]
    return {"first": statistics.median(firsts), "first_all": firsts,
            "filter_p95": pct(lat, 0.95), "filter_median": statistics.median(lat),
            "filter_max": max(lat), "keys": len(lat), "rss_mb": session["rss_mb"],
            "observation_s": session["observation_s"]}


def main() -> None:
    """Measure both apps and print the figures, the goals and the ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="integrations (default 10000)")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per first screen")
    parser.add_argument("--child", choices=("first", "session"), help=argparse.SUPPRESS)
    parser.add_argument("--app", choices=("console", "bare"), default="console",
                        help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--text", default=TEXT, help=argparse.SUPPRESS)
    parser.add_argument("--refresh", metavar="CONFIG",
                        help="instead: time R (refresh every state) on CONFIG's inventory, "
                        "after a first observation warmed the clients (start its sandbox)")
    args = parser.parse_args()
    if args.refresh:
        took, words = asyncio.run(_refreshes(Path(args.refresh), args.runs))
        counts: dict[str, int] = {}
        for word in words.values():
            counts[word] = counts.get(word, 0) + 1
        print(f"refresh of {args.refresh} (R -> painted 'states: observed'), {len(took)} "
              f"runs: median {statistics.median(took):.3f} s, max {max(took):.3f} s  "
              f"goal <= 1.0 s: {'OK' if statistics.median(took) <= 1.0 else 'MISSED'}")
        print("states shown: " + ", ".join(f"{w} {n}" for w, n in sorted(counts.items())))
        os._exit(0)
    if args.child:
        make = console_app if args.app == "console" else bare_app
        if args.app == "console":
            import gc

            gc.disable()  # exactly what `killswitch` does before importing the console
        job = (_first_screen(make, Path(args.config)) if args.child == "first"
               else _session(make, Path(args.config), args.text))
        asyncio.run(job)
        return

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config = write_inventory(Path(tmp), args.n)
        print(f"{args.n} integrations; first screen: median of {args.runs} fresh processes; "
              f"filter: {len(keystrokes(TEXT))} keys typing and erasing {TEXT!r}")
        results = {name: measure(name, config, args.runs) for name in ("console", "bare")}
    con, bare = results["console"], results["bare"]
    rows = [("first screen (s, median)", "first", 1.0, "{:.3f}"),
            ("filter key -> painted p95 (ms)", "filter_p95", 1e3, "{:.1f}"),
            ("filter key -> painted median (ms)", "filter_median", 1e3, "{:.1f}"),
            ("filter key -> painted max (ms)", "filter_max", 1e3, "{:.1f}"),
            ("peak RSS (MB)", "rss_mb", 1.0, "{:.0f}")]
    print(f"{'':36}{'console':>10}{'bare':>10}{'ratio':>8}  goal")
    for label, key, scale, fmt in rows:
        goal = GOALS.get(key)
        verdict = "" if goal is None else (
            f"<= {fmt.format(goal * scale)}: {'OK' if con[key] <= goal else 'MISSED'}")
        print(f"{label:36}{fmt.format(con[key] * scale):>10}{fmt.format(bare[key] * scale):>10}"
              f"{con[key] / bare[key]:>8.2f}  {verdict}")
    print("first screens (s): console " + " ".join(f"{t:.3f}" for t in con["first_all"])
          + " | bare " + " ".join(f"{t:.3f}" for t in bare["first_all"]))
    print(f"console: every kill point of {args.n} integrations observed in "
          f"{con['observation_s']:.1f} s (in the background, before typing)")


if __name__ == "__main__":
    main()
