"""Shared-store benchmark (issue 14): durable append rate of the audit trail on PostgreSQL
(1 and 8 writer processes, single events and batches of 8), SQLite for comparison, and lock
acquire latency on both.

It starts its own PostgreSQL 15 (``tests/pgserver.py``: Debian's binaries, a temporary
cluster on a free loopback port) and restarts it with ``fsync`` on, which the test clusters
leave off: every figure here is durable (``synchronous_commit = on``; SQLite WAL with
``synchronous = FULL``) on the machine's real disk.

* append: ``PgAuditLog`` / ``AuditLog`` appending ``--events`` events per writer, either one
  transaction per event (``append``, durable when it returns) or ``append_batch`` of 8 events
  per transaction, after two untimed warm-up appends; with 8 writers, 8 forked processes (one
  connection each, the way several consoles on several hosts share one trail) released
  together by a barrier: events/s over the wall time from the first start to the last end.
  Each trail is verified afterwards (one gap-free chain holding every event).
* lock acquire: ``PgLockTable.acquire`` (and SQLite's ``LockTable``) of one integration, then
  ``release``; the acquire alone is timed, ``--locks`` times: median and p95. With 8
  processes, each takes and releases its own integration at once (the table serialises every
  acquire).

Run: ``.venv/bin/python benchmarks/store.py [--events 400] [--locks 100] [--writers 8]``
(about 40 s on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.audit import _processes, event  # noqa: E402


def _open(target: str) -> Any:
    if target.startswith("postgresql://"):
        from console.store.pg_audit import PgAuditLog
        return PgAuditLog(target)
    from console.audit import AuditLog
    return AuditLog(target)


def _appender(target: str, n: int, batch: int, idx: int, barrier: Any, out: Any) -> None:
    """One writer process: ``n`` events, ``batch`` per transaction (after one untimed append
    of each kind: imports and prepared statements are not what is measured)."""
    try:
        log = _open(target)
        log.append(**event(-1))
        log.append_batch([event(-2)])
        barrier.wait(timeout=300)
        start = time.monotonic()
        sizes = []
        for first in range(0, n, batch):
            size = min(batch, n - first)
            if batch == 1:
                log.append(**event(idx * n + first))
            else:
                log.append_batch(event(idx * n + i) for i in range(first, first + size))
            sizes.append(size)
        out.put((idx, start, time.monotonic(), sizes, ""))
        log.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        out.put((idx, 0.0, 0.0, [], f"{type(exc).__name__}: {exc}"))


def bench_append(target: str, writers: int, n: int, batch: int) -> str:
    """``writers`` processes appending ``n`` events each to ``target``: one result line."""
    log = _open(target)  # created before the writers start; closed before forking
    log.close()
    wall, sizes, errors = _processes(_appender, [(target, n, batch)] * writers)
    total = sum(map(sum, sizes))
    with _open(target) as log:
        report = log.verify()
    ok = report.ok and report.count == writers * (n + 2)
    text = (f"{total / wall:8,.0f} events/s  ({total:,} events, {sum(map(len, sizes)):,} "
            f"transactions, {wall:.2f} s; chain {'verifies' if ok else 'DOES NOT VERIFY'})")
    return text + (f"  {len(errors)} writers failed: {errors[0]}" if errors else "")


def _locker(kind: str, target: str, n: int, idx: int, barrier: Any, out: Any) -> None:
    """Acquire and release integration ``app-<idx>`` ``n`` times; the acquire times (ms)."""
    try:
        table = _locks(kind, target)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        table.acquire([f"app-{idx}"], f"warm-{idx}", "bench", since)
        table.release(f"warm-{idx}")
        barrier.wait(timeout=300)
        start = time.monotonic()
        took: list[float] = []
        for i in range(n):
            t0 = time.perf_counter()
            table.acquire([f"app-{idx}"], f"run-{idx}-{i}", "bench", since)
            took.append((time.perf_counter() - t0) * 1000)
            table.release(f"run-{idx}-{i}")
        out.put((idx, start, time.monotonic(), took, ""))
        if hasattr(table, "close"):
            table.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put((idx, 0.0, 0.0, [], f"{type(exc).__name__}: {exc}"))


def _locks(kind: str, target: str) -> Any:
    if kind == "postgresql":
        from console.store.pg_locks import PgLockTable
        return PgLockTable(target)
    from console.engine.locks import LockTable
    return LockTable(target)


def bench_locks(kind: str, target: str, processes: int, n: int) -> str:
    """Acquire latency with ``processes`` acquirers at once: one result line."""
    _, times, errors = _processes(_locker, [(kind, target, n)] * processes)
    flat = sorted(t for ts in times for t in ts)
    if not flat:
        return f"failed: {errors[0] if errors else 'no result'}"
    p95 = statistics.quantiles(flat, n=20)[18] if len(flat) >= 20 else flat[-1]
    text = (f"median {statistics.median(flat):6.2f} ms, p95 {p95:6.2f} ms  "
            f"({len(flat):,} acquires)")
    return text + (f"  {len(errors)} failed: {errors[0]}" if errors else "")


def _restart_durable(server: Any) -> list[str]:
    """Restart the test cluster with ``fsync`` on (``start_pg`` runs it with ``-c
    fsync=off``, which no reload can undo); returns the ``pg_ctl`` command that stops it."""
    from console.sandbox import unleash as sb

    data, port = server.paths.pg_dir / "data", server.port
    sb.stop_postgres(server.paths)
    pg_ctl = str(sb.pg_bindir() / "pg_ctl")
    subprocess.run(sb._as_postgres([
        pg_ctl, "-D", str(data), "-l", str(server.paths.pg_dir / "durable.log"), "-w", "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {server.paths.pg_dir} -c fsync=on",
        "start"]), check=True, capture_output=True)
    return sb._as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])


def _settings(server: Any) -> str:
    """What the server does with a commit."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('fsync'), "
                           "current_setting('synchronous_commit'), "
                           "current_setting('wal_sync_method'), "
                           "current_setting('server_version')").fetchone()
    assert row is not None
    return (f"PostgreSQL {row[3]} on 127.0.0.1:{server.port}: fsync={row[0]}, "
            f"synchronous_commit={row[1]}, wal_sync_method={row[2]}")


def main() -> None:
    """Start PostgreSQL, measure, print every figure, stop it."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=400, help="events per writer (default 400)")
    ap.add_argument("--locks", type=int, default=100,
                    help="lock acquires per process (default 100)")
    ap.add_argument("--writers", type=int, default=8, help="processes of the many-writer "
                    "figures (default 8)")
    args = ap.parse_args()
    from tests.pgserver import start_pg, stop_pg

    print("$ " + " ".join([Path(sys.executable).name, *sys.argv]), flush=True)
    began = time.monotonic()
    server = start_pg()
    stop = _restart_durable(server)
    try:
        print(_settings(server), flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            print("audit append (durable):", flush=True)
            for writers in (1, args.writers):
                for batch in (1, 8):
                    what = "single events " if batch == 1 else "batches of 8  "
                    for kind in ("postgresql", "sqlite"):
                        target = (server.fresh_url("bench") if kind == "postgresql"
                                  else str(Path(tmp) / f"a-{writers}-{batch}.db"))
                        line = bench_append(target, writers, args.events, batch)
                        print(f"  {kind:10} {writers} writer{'s' if writers > 1 else ' '} "
                              f"{what} {line}", flush=True)
            print("lock acquire latency:", flush=True)
            for processes in (1, args.writers):
                for kind in ("postgresql", "sqlite"):
                    target = (server.fresh_url("locks") if kind == "postgresql"
                              else str(Path(tmp) / f"locks-{processes}.db"))
                    line = bench_locks(kind, target, processes, args.locks)
                    print(f"  {kind:10} {processes} process{'es' if processes > 1 else '  '} "
                          f"{line}", flush=True)
    finally:
        subprocess.run(stop, check=False, capture_output=True)
        stop_pg(server)
    print(f"took {time.monotonic() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
