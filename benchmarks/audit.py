"""Audit trail benchmark: durable append rates (one writer, 64 writers) and ``verify`` on a
big trail, each against its floor measured in the same run.

* append, per call: one writer calling ``AuditLog.append`` once per event (each event durable
  when the call returns), for ``--appends`` events; floor: the same number of single-row
  INSERT + COMMIT transactions on a bare SQLite file with the same journal mode and
  synchronous setting.
* append, one writer through the journal (how a run really writes): one run, ``--ops``
  operations with ``--inflight`` of them in flight at a time (8: the default
  ``max_concurrency`` of one backend; 64: a run over several backends), each writing its
  ``started`` event with ``Journal.record`` (durable before the side effect), then making an
  instant side effect (the fewest events per commit), then its outcome and verify events
  with ``Journal.post`` (group-committed, not waited for); timed until ``Journal.aclose`` has
  committed everything; median of 3 rounds. Floor: bare SQLite writing the same number of
  rows in the same transactions (the batch sizes the journal used), nothing else, measured
  right after each round.
* append, ``--writers`` (64) writers: that many console processes (forked, one
  ``AuditLog`` connection and one run journal each, the way several ``killswitch`` processes
  share one ``audit_db``) running the same workload (``--writer-ops`` operations,
  ``--writer-inflight`` in flight) at once against one trail file, released together by a
  barrier; events/s over the wall time from the first start to the last finish; the trail
  is verified afterwards (one chain, every event). Floor: as many bare SQLite processes writing
  the same transactions to one file.
* verify: ``AuditLog.verify()`` over ``--events`` events (default 1,000,000; the trail is
  built with ``append_many`` in batches first, not timed); floor: reading every row and
  hashing it with nothing else (SHA-256 of the joined columns).

Goals (issue 11 §3): verify 1M events in <= 5 s and within 2x of its floor; one writer
>= 5,000 durable events/s.

Run: ``.venv/bin/python benchmarks/audit.py [--events 1000000] [--appends 2000] [--ops 3000]
[--inflight 8,64] [--writers 64] [--writer-ops 100] [--writer-inflight 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def event(i: int) -> dict[str, object]:
    """A realistic apply event (what a run writes most)."""
    return {"run_id": f"r-{i // 100}", "integration": f"app-{i % 1000}", "phase": "apply",
            "action": "flag.disable", "target": f"sim:app-{i % 1000}-flag",
            "outcome": "applied", "op_id": f"app-{i % 1000}/flags-off/0",
            "detail": {"message": "", "attempts": 1, "undo": {"switch": "on"},
                       "elapsed": 0.012}}


def bench_append(folder: Path, n: int) -> tuple[float, float]:
    """(events/s of AuditLog.append, events/s of the bare INSERT+COMMIT floor)."""
    from console.audit import AuditLog

    log = AuditLog(folder / "append.db")
    try:
        log.append(**event(0))
        start = time.perf_counter()
        for i in range(1, n + 1):
            log.append(**event(i))
        ours = n / (time.perf_counter() - start)
        mode = log._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = log._conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        log.close()
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={mode}")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT)")
    body = str(event(0))
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
    floor = n / (time.perf_counter() - start)
    conn.close()
    return ours, floor


class _Counting:
    """An audit sink that remembers the size of every transaction it wrote."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.batches: list[int] = []

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stored: list[dict[str, Any]] = self.log.append_many(events)
        self.batches.append(len(events))
        return stored


async def _journal_run(log: Any, ops: int, inflight: int,
                       run_id: str) -> tuple[list[int], float]:
    """One run's journal writes: per operation ``started`` (awaited: durable before the side
    effect), then its outcome and its verdict (posted). Returns the transaction sizes and the
    seconds until ``aclose`` had committed everything."""
    from console.engine.journal import Journal

    sink = _Counting(log)
    journal = Journal(sink, {"run_id": run_id, "incident": "INC-bench", "operator": "bench",
                             "mode": "live"})
    gate = asyncio.Semaphore(inflight)

    async def op(i: int) -> None:
        e = event(i)
        ids = {"integration": e["integration"], "step": "flags-off",
               "op_id": f"{e['op_id']}-{i}", "action": e["action"], "target": e["target"]}
        async with gate:
            await journal.record(**ids, phase="apply", outcome="started", detail={})
            await asyncio.sleep(0)  # the side effect (instant: the fewest events per commit)
            journal.post(**ids, phase="apply", outcome="applied", detail=e["detail"])
            journal.post(**ids, phase="verify", outcome="ok",
                         detail={"state": "dead", "message": "switch is off"})

    start = time.perf_counter()
    await asyncio.gather(*(op(i) for i in range(ops)))
    await journal.aclose()
    return sink.batches, time.perf_counter() - start


def _bare_batches(path: Path, batches: list[int], mode: str, sync: int) -> float:
    """Seconds for bare SQLite to write ``batches`` (rows per transaction), nothing else."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute(f"PRAGMA journal_mode={mode}")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (seq INTEGER PRIMARY KEY, body TEXT)")
    body = str(event(0))
    start = time.perf_counter()
    for size in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(body,)] * size)
        conn.execute("COMMIT")
    took = time.perf_counter() - start
    conn.close()
    return took


def _settings(log: Any) -> tuple[str, int]:
    mode = str(log._conn.execute("PRAGMA journal_mode").fetchone()[0])
    sync = int(log._conn.execute("PRAGMA synchronous").fetchone()[0])
    return mode, sync


def bench_journal(folder: Path, ops: int, inflight: int,
                  rounds: int = 3) -> tuple[float, float, int, int]:
    """One run through the Journal, ``rounds`` times interleaved with its floor (the disk's
    fsync time drifts with the machine's load): medians of (events/s, floor events/s), and
    the events and transactions of the median round."""
    from console.audit import AuditLog

    measured: list[tuple[float, float, int, int]] = []
    for r in range(rounds):
        log = AuditLog(folder / f"journal-{inflight}-{r}.db")
        try:
            log.append(**event(0))
            batches, took = asyncio.run(_journal_run(log, ops, inflight, "r-bench"))
            mode, sync = _settings(log)
        finally:
            log.close()
        n = sum(batches)
        floor = _bare_batches(folder / f"journal-floor-{inflight}-{r}.db", batches, mode,
                              sync)
        measured.append((n / took, n / floor, n, len(batches)))
    rate = statistics.median(m[0] for m in measured)
    floor_rate = statistics.median(m[1] for m in measured)
    mid = sorted(measured)[len(measured) // 2]
    return rate, floor_rate, mid[2], mid[3]


def _writer(path: str, ops: int, inflight: int, idx: int, barrier: Any, out: Any) -> None:
    """A console process: its own AuditLog and run journal on the shared trail."""
    try:
        from console.audit import AuditLog

        log = AuditLog(path)
        barrier.wait(timeout=300)
        start = time.monotonic()
        batches, _ = asyncio.run(_journal_run(log, ops, inflight, f"r-writer-{idx}"))
        out.put((idx, start, time.monotonic(), batches, ""))
        log.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put((idx, 0.0, 0.0, [], f"{type(exc).__name__}: {exc}"))


def _bare_writer(path: str, batches: list[int], mode: str, sync: int, idx: int, barrier: Any,
                 out: Any) -> None:
    """A bare SQLite process writing ``batches`` to the shared file."""
    try:
        barrier.wait(timeout=300)
        start = time.monotonic()
        _bare_batches(Path(path), batches, mode, sync)
        out.put((idx, start, time.monotonic(), batches, ""))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put((idx, 0.0, 0.0, [], f"{type(exc).__name__}: {exc}"))


def _processes(target: Any, args: list[tuple[Any, ...]]) -> tuple[float, list[list[int]],
                                                                  list[str]]:
    """Run one process per ``args`` (forked, released together by a barrier); (wall seconds
    from the first start to the last end, each process's transaction sizes, errors)."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, i, barrier, out)) for i, a in enumerate(args)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=600) for _ in procs)
    for p in procs:
        p.join()
    errors = [r[4] for r in results if r[4]]
    ok = [r for r in results if not r[4]]
    wall = max(r[2] for r in ok) - min(r[1] for r in ok) if ok else float("nan")
    return wall, [r[3] for r in ok], errors


def bench_writers(folder: Path, writers: int, ops: int,
                  inflight: int) -> tuple[float, float, int, int, list[str], bool]:
    """``writers`` console processes appending to one trail at once:
    (events/s, floor events/s, events, transactions, errors, the trail verifies)."""
    from console.audit import AuditLog

    path = folder / "shared.db"
    log = AuditLog(path)
    log.append(**event(0))
    mode, sync = _settings(log)
    log.close()
    wall, sizes, errors = _processes(_writer, [(str(path), ops, inflight)] * writers)
    n = sum(map(sum, sizes))
    log = AuditLog(path, readonly=True)
    try:
        report = log.verify()
        verified = report.ok and report.count == n + 1
    finally:
        log.close()
    floor_path = folder / "shared-floor.db"
    _bare_batches(floor_path, [], mode, sync)  # create the file and its table
    fwall, fsizes, ferrors = _processes(_bare_writer,
                                        [(str(floor_path), s, mode, sync) for s in sizes])
    return (n / wall, sum(map(sum, fsizes)) / fwall, n, sum(map(len, sizes)),
            errors + ferrors, verified)


def bench_verify(folder: Path, n: int) -> tuple[float, float, bool]:
    """(seconds of verify, seconds of the read-and-hash floor, the chain verified)."""
    from console.audit import FIELDS, AuditLog

    path = folder / "verify.db"
    log = AuditLog(path)
    try:
        for first in range(0, n, 10_000):
            log.append_many([event(i) for i in range(first, min(n, first + 10_000))])
        start = time.perf_counter()
        report = log.verify()
        took = time.perf_counter() - start
    finally:
        log.close()
    conn = sqlite3.connect(path)
    start = time.perf_counter()
    for row in conn.execute(f"SELECT {', '.join(FIELDS)} FROM events ORDER BY seq"):
        hashlib.sha256("|".join(map(str, row)).encode()).hexdigest()
    floor = time.perf_counter() - start
    conn.close()
    return took, floor, report.ok and report.count == n


def main() -> None:
    """Measure and print every figure against its floor and goal."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--appends", type=int, default=2_000)
    ap.add_argument("--ops", type=int, default=3_000, help="operations of the one-writer run")
    ap.add_argument("--inflight", type=lambda v: [int(x) for x in v.split(",")],
                    default=[8, 64], help="operations in flight in the one-writer run "
                    "(comma-separated: one measurement each)")
    ap.add_argument("--writer-inflight", type=int, default=8,
                    help="operations in flight per writer of the many-writer run")
    ap.add_argument("--writers", type=int, default=64)
    ap.add_argument("--writer-ops", type=int, default=100, help="operations per writer")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours, floor = bench_append(Path(tmp), args.appends)
        print(f"append, one writer, per call (AuditLog.append, one transaction per event): "
              f"{ours:,.0f} events/s; bare SQLite single-row INSERT+COMMIT floor {floor:,.0f}/s "
              f"(ratio {floor / ours:.2f})", flush=True)
        for inflight in args.inflight:
            rate, jfloor, n, txns = bench_journal(Path(tmp), args.ops, inflight)
            print(f"append, one writer, through the journal ({args.ops:,} ops, {inflight} in "
                  f"flight; started awaited, outcome+verify posted; median of 3): {rate:,.0f} "
                  f"events/s ({n:,} events in {txns:,} transactions, {n / txns:.1f}/commit); "
                  f"bare SQLite floor, same transactions, {jfloor:,.0f}/s (ratio "
                  f"{jfloor / rate:.2f}); goal >= 5,000/s: {'met' if rate >= 5000 else 'MISSED'}",
                  flush=True)
        wrate, wfloor, wn, wtxns, errors, wok = bench_writers(
            Path(tmp), args.writers, args.writer_ops, args.writer_inflight)
        print(f"append, {args.writers} writers (processes, one run journal each, one trail "
              f"file; {args.writer_ops} ops each, {args.writer_inflight} in flight): "
              f"{wrate:,.0f} events/s ({wn:,} events in {wtxns:,} transactions, "
              f"{wn / max(wtxns, 1):.1f}/commit; trail {'verifies' if wok else 'DOES NOT VERIFY'}; "
              f"{len(errors)} failed writers{': ' + errors[0] if errors else ''}); bare "
              f"SQLite floor, {args.writers} processes, same transactions, {wfloor:,.0f}/s "
              f"(ratio {wfloor / wrate:.2f})", flush=True)
        took, vfloor, ok = bench_verify(Path(tmp), args.events)
        rate = args.events / took
        scaled = took * 1_000_000 / args.events
        print(f"verify {args.events:,} events: {took:.2f} s ({rate:,.0f} events/s, chain "
              f"{'OK' if ok else 'NOT OK'}); read+hash floor {vfloor:.2f} s (ratio "
              f"{took / vfloor:.2f}); goals <= 5 s per 1M (here {scaled:.2f} s) and <= 2x "
              f"the floor: {'met' if scaled <= 5 and took <= 2 * vfloor else 'MISSED'}")


if __name__ == "__main__":
    main()
