"""Planning at scale: ``killswitch plan`` over 10,000 integrations on the fake backend.

Writes a config with ``--integrations`` integrations (each with 2 flags and 2 credentials on
one fake backend with no latency: the figure is Killswitch's own cost, not a provider's) and
a two-step runbook (``flag.disable`` then ``credential.disable``), so a plan has 4 changes
per integration. Then, ``--repeat`` times, runs the real command in a fresh process::

    killswitch --config CONFIG plan bench owner=bench --out plan.json  > /dev/null

which loads the config, observes every target, records the plan in the audit trail (one
event per change), saves the signed-or-hashed plan file and renders the plan table (scrubbed)
to standard output. It prints the median wall time and the child's peak RSS (``ru_maxrss``
from ``wait4``) against the goals (issue 11 §4): <= 5 s and <= 150 MB.

``--phases`` also runs the same work in one more child process, timing each phase (config,
observe, record, save, render) and the peak RSS after each; ``--profile FILE`` writes a
cProfile of that child to FILE.

Run: ``.venv/bin/python benchmarks/plan.py [--integrations 10000] [--repeat 3] [--phases]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KILLSWITCH = Path(sys.executable).parent / "killswitch"
GOAL_SECONDS = 5.0
GOAL_MB = 150.0
SELECTOR = "owner=bench"

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


def write_config(root: Path, n: int) -> Path:
    """A config with ``n`` integrations, each with 2 flags and 2 credentials on one backend."""
    (root / "runbooks").mkdir()
    (root / "runbooks" / "bench.toml").write_text(RUNBOOK)
    path = root / "config.toml"
    # written line by line: this process stays small, and a child started from it inherits
    # its peak RSS (Linux keeps the high-water mark across exec)
    with open(path, "w") as fh:
        fh.write("\n".join([
            "[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
            f"max_targets = {n}", "",
            "[backends.sim]", 'type = "fake"', "latency = 0", "max_concurrency = 64", "", ""]))
        for i in range(n):
            lines = [
                "[[integrations]]", f'id = "int-{i:05d}"', f'name = "Integration {i}"',
                'owner = "bench"', 'environment = "dev"', 'status = "approved"',
                'provider = "openai"',
            ]
            for kind, field in (("flags", "flag"), ("credentials", "key")):
                for j in range(2):
                    lines += [f"[[integrations.{kind}]]", 'backend = "sim"',
                              f'key = "int-{i:05d}-{field}-{j}"']
            fh.write("\n".join(lines) + "\n\n")
    return path


def run_cli(config: Path, out: Path) -> tuple[float, float]:
    """Run ``killswitch plan`` in a fresh process; return (wall seconds, peak RSS in MB)."""
    out.unlink(missing_ok=True)
    env = {**os.environ, "KILLSWITCH_OPERATOR": "bench"}
    env.pop("KILLSWITCH_AUDIT_KEY", None)
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(  # noqa: S603 - our own entry point
            [str(KILLSWITCH), "--config", str(config), "plan", "bench", SELECTOR,
             "--out", str(out)], stdout=devnull, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"killswitch plan exited {proc.returncode}:\n{err}")
    if not out.exists():
        raise SystemExit("killswitch plan saved no plan file")
    return wall, usage.ru_maxrss / 1024


def phases(config: str, out: str, profile: str | None) -> None:
    """Child: the CLI's plan work, phase by phase; prints one JSON line of figures."""

    def rss() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    figures: dict[str, list[float]] = {}
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    from console.config import load_config
    from console.engine.service import Session
    from console.render import render_plan
    from console.scrub import scrub_text

    figures["import"] = [time.perf_counter() - t0, rss()]
    t = time.perf_counter()
    cfg = load_config(config)
    figures["config"] = [time.perf_counter() - t, rss()]
    session = Session(cfg, operator="bench")
    t = time.perf_counter()

    async def observe() -> object:
        return await session._observe("bench", list(cfg.integrations), [SELECTOR],
                                      include_unlisted=False)

    plan = session.sync(observe())  # as the CLI runs it (not asyncio.run: see Session.sync)
    figures["observe"] = [time.perf_counter() - t, rss()]
    t = time.perf_counter()
    session.record_plan(plan, "plan")  # type: ignore[arg-type]
    figures["record"] = [time.perf_counter() - t, rss()]
    t = time.perf_counter()
    Path(out).write_text(plan.to_json())  # type: ignore[attr-defined]
    figures["save"] = [time.perf_counter() - t, rss()]
    t = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        devnull.write(scrub_text(render_plan(plan)))  # type: ignore[arg-type]
    figures["render"] = [time.perf_counter() - t, rss()]
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    print(json.dumps(figures))


def main() -> None:
    """Write the config, run the command, print the figures against the goals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--integrations", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    ap.add_argument("--phases", action="store_true",
                    help="also time each phase in one more child process")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the phases child to FILE")
    ap.add_argument("--child", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        phases(args.child[0], args.child[1], args.profile)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_config(root, args.integrations)
        out = root / "plan.json"
        runs = [run_cli(config, out) for _ in range(args.repeat)]
        size = out.stat().st_size
        with open(out, "rb") as fh:  # counted without parsing: this process stays small
            changes = sum(line.count(b'"op_id":') for line in fh)
        walls = sorted(r[0] for r in runs)
        rsss = sorted(r[1] for r in runs)
        wall, peak = statistics.median(walls), statistics.median(rsss)
        print(f"killswitch plan: integrations={args.integrations} changes={changes} "
              f"plan file {size / 1e6:.1f} MB")
        print(f"wall time   {wall:7.2f} s   goal <= {GOAL_SECONDS:.0f} s    "
              f"{'meets' if wall <= GOAL_SECONDS else 'MISSES'}  (median of {len(walls)}: "
              f"{', '.join(f'{w:.2f}' for w in walls)})")
        print(f"peak RSS    {peak:7.1f} MB  goal <= {GOAL_MB:.0f} MB  "
              f"{'meets' if peak <= GOAL_MB else 'MISSES'}  (median of {len(rsss)}: "
              f"{', '.join(f'{m:.1f}' for m in rsss)})")
        if args.phases or args.profile:
            cmd = [sys.executable, __file__, "--child", str(config), str(root / "p.json")]
            if args.profile:
                cmd += ["--profile", str(Path(args.profile).resolve())]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True,  # noqa: S603
                                  env={**os.environ, "KILLSWITCH_OPERATOR": "bench"})
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print("phases (one in-process run" + (", profiled" if args.profile else "") + "):")
            for name, (secs, mb) in figures.items():
                print(f"  {name:<8}{secs:7.2f} s   peak RSS so far {mb:6.1f} MB")


if __name__ == "__main__":
    main()
