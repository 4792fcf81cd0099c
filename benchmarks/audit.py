"""Audit trail benchmark: durable append rate of one writer, and ``verify`` on a big trail,
each against its floor measured in the same run.

* append: one writer calling ``AuditLog.append`` once per event (each event durable when the
  call returns, as the journal needs before a side effect), for ``--appends`` events; floor:
  the same number of single-row INSERT + COMMIT transactions on a bare SQLite file with the
  same journal mode and synchronous setting.
* verify: ``AuditLog.verify()`` over ``--events`` events (default 1,000,000; the trail is
  built with ``append_many`` in batches first, not timed); floor: reading every row and
  hashing it with nothing else (SHA-256 of the joined columns).

Goals (issue 11 §3): verify 1M events in <= 5 s and within 2x of its floor; one writer
>= 5,000 durable events/s.

Run: ``.venv/bin/python benchmarks/audit.py [--events 1000000] [--appends 2000]``
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

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
    """Measure and print both figures against their floors and goals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--appends", type=int, default=2_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours, floor = bench_append(Path(tmp), args.appends)
        print(f"append, one writer, durable: {ours:,.0f} events/s; bare SQLite "
              f"INSERT+COMMIT floor {floor:,.0f}/s (ratio {floor / ours:.2f}); goal >= 5,000/s: "
              f"{'met' if ours >= 5000 else 'MISSED'}")
        took, vfloor, ok = bench_verify(Path(tmp), args.events)
        rate = args.events / took
        scaled = took * 1_000_000 / args.events
        print(f"verify {args.events:,} events: {took:.2f} s ({rate:,.0f} events/s, chain "
              f"{'OK' if ok else 'NOT OK'}); read+hash floor {vfloor:.2f} s (ratio "
              f"{took / vfloor:.2f}); goals <= 5 s per 1M (here {scaled:.2f} s) and <= 2x "
              f"the floor: {'met' if scaled <= 5 and took <= 2 * vfloor else 'MISSED'}")


if __name__ == "__main__":
    main()
