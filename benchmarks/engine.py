"""Engine throughput: the fake adapter at 20 ms per call, 500 integrations x 4 operations.

Prints the wall time of a live apply (apply + verify, journaled to a real SQLite audit
trail), the lower bound max(critical path, calls / cap x latency), their ratio (goal <= 1.3,
median of ``--repeat`` runs), and, measured in the same run (interleaved with the engine's
runs), the same ratio for a bare floor: a tiny asyncio program making the same number of
20 ms calls through a ThreadPoolExecutor under the same cap (a semaphore), with no journal,
no engine and no dependencies between the calls: how close the engine gets to what asyncio
itself manages. Then the same run with a cap of 1 for comparison (``--skip-serial`` skips it).

    .venv/bin/python benchmarks/engine.py [--integrations 500] [--latency 0.02] [--cap 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose console.py is not the package

from adapters.fake import FakeAdapter  # noqa: E402
from console.config import load_config  # noqa: E402
from console.engine.model import Plan  # noqa: E402
from console.engine.service import Session  # noqa: E402

RUNBOOK = """
name = "bench"
description = "two dependent steps, two targets each"
[[steps]]
id = "flags-off"
action = "flag.disable"
[[steps]]
id = "revoke"
action = "credential.disable"
needs = ["flags-off"]
"""


def write_config(root: Path, n: int, latency: float, cap: int) -> Path:
    """A config with ``n`` integrations, each with 2 flags and 2 credentials on one backend."""
    (root / "runbooks").mkdir()
    (root / "runbooks" / "bench.toml").write_text(RUNBOOK)
    lines = [
        "[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
        f"max_targets = {n}", "",
        "[backends.sim]", 'type = "fake"', f"latency = {latency}", f"max_concurrency = {cap}",
        "",
    ]
    for i in range(n):
        lines += [
            "[[integrations]]", f'id = "int-{i:04d}"', f'name = "Integration {i}"',
            'owner = "bench"', 'environment = "dev"', 'status = "approved"',
            'provider = "openai"',
        ]
        for kind, field in (("flags", "flag"), ("credentials", "key")):
            for j in range(2):
                lines += [f"[[integrations.{kind}]]", 'backend = "sim"',
                          f'key = "int-{i:04d}-{field}-{j}"']
        lines.append("")
    path = root / "config.toml"
    path.write_text("\n".join(lines))
    return path


def measure(n: int, latency: float, cap: int) -> tuple[float, int, Plan]:
    """Plan, then time a live apply; return (seconds, adapter calls during apply, plan)."""
    FakeAdapter.reset()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), n, latency, cap))
        session = Session(config, operator="bench", incident="BENCH")
        plan = asyncio.run(session.plan("bench", [f"int-{i:04d}" for i in range(n)]))
        FakeAdapter.total_calls = 0
        start = time.perf_counter()
        result = asyncio.run(session.apply(plan, reason="benchmark", max_targets=n))
        wall = time.perf_counter() - start
        assert result.exit_code() == 0, result.failed[:3]
        assert session.audit.verify().ok
        return wall, FakeAdapter.total_calls, plan


def measure_floor(calls: int, latency: float, cap: int) -> float:
    """Seconds for ``calls`` blocking calls of ``latency`` each through asyncio and a thread
    pool of ``cap`` threads, at most ``cap`` in flight: the floor under the engine."""
    def call() -> None:
        time.sleep(latency)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(cap)

        async def one() -> None:
            async with limit:
                await loop.run_in_executor(pool, call)

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=cap) as pool:
        return asyncio.run(run())


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--integrations", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--cap", type=int, default=64)
    ap.add_argument("--skip-serial", action="store_true", help="skip the cap=1 comparison")
    ap.add_argument("--repeat", type=int, default=5,
                    help="runs at the cap; the median is reported (this machine is noisy)")
    args = ap.parse_args()
    runs: list[tuple[float, int, Plan]] = []
    floors: list[float] = []
    for _ in range(args.repeat):  # interleaved: both see the same machine load
        runs.append(measure(args.integrations, args.latency, args.cap))
        floors.append(measure_floor(runs[-1][1], args.latency, args.cap))
    walls = sorted(r[0] for r in runs)
    wall = statistics.median(walls)
    floors.sort()
    floor = statistics.median(floors)
    _, calls, plan = runs[0]
    ops = len(plan.changes)
    # each op: read + apply in the apply phase, then one verify read; 2 dependent steps
    critical = 2 * 3 * args.latency
    bound = max(critical, calls / args.cap * args.latency)
    print(f"integrations={args.integrations} operations={ops} adapter calls={calls} "
          f"latency={args.latency * 1000:.0f}ms cap={args.cap}")
    print(f"wall time            {wall:8.3f} s  (median of {len(walls)}: "
          f"{', '.join(f'{w:.3f}' for w in walls)})")
    print(f"lower bound          {bound:8.3f} s  (critical path {critical:.3f} s, "
          f"calls/cap x latency {calls / args.cap * args.latency:.3f} s)")
    print(f"ratio                {wall / bound:8.3f}   (goal <= 1.3)")
    print(f"floor wall time      {floor:8.3f} s  (bare asyncio + thread pool, {calls} calls, "
          f"cap {args.cap}; median of {len(floors)}: {', '.join(f'{w:.3f}' for w in floors)})")
    print(f"floor ratio          {floor / bound:8.3f}   (engine / floor: {wall / floor:.3f})")
    if not args.skip_serial:
        wall1, calls1, _ = measure(args.integrations, args.latency, 1)
        print(f"cap=1 wall time      {wall1:8.3f} s  ({calls1} calls; "
              f"speed-up x{wall1 / wall:.1f})")


if __name__ == "__main__":
    main()
