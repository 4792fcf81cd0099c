"""Resume never runs a live run twice: a holder that may be alive keeps its run."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter

from console.config import load_config
from console.engine.locks import Lock, process_start
from console.store import open_locks
from tests.cli.conftest import Cli, slow
from tests.cli.test_cli import ALL, run_id, wait_for


def test_resume_while_the_run_is_alive_is_refused_naming_the_holder(cli: Cli) -> None:
    slow(cli)
    proc = cli.popen("run", "contain", *ALL, "--yes", "--reason", "still running")
    try:
        wait_for(cli, "applied", 1)
        rid = run_id(cli)
        r = cli("resume", rid)
        assert r.returncode == 3, r.stdout + r.stderr
        assert f"pid {proc.pid}" in r.stderr and socket.gethostname() in r.stderr
        assert "since 20" in r.stderr and f"run {rid} is still running" in r.stderr
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    ops = Counter(a["op"] for a in cli.state["applied"])  # type: ignore[union-attr]
    assert len(ops) == 8 and set(ops.values()) == {1}, ops
    finished = cli.rows("SELECT count(*) FROM events WHERE run_id=? AND outcome='finished'", rid)
    assert finished == [(1,)]


def _lock(cli: Cli, rid: str, host: str, pid: int, start: str, lease_until: float) -> None:
    """Put a lock row on app-0 as that holder left it (in the store under test)."""
    table = open_locks(load_config(cli.config))
    table.plant(Lock("app-0", rid, "alice", host, pid, "2026-11-27T03:00:00Z", start,
                     lease_until), lambda _row: True)


def _crashed_run(cli: Cli) -> str:
    """A run whose process died after journaling its start (resume has work to do)."""
    slow(cli)
    proc = cli.popen("run", "contain", "app-0", "--yes", "--reason", "crash")
    wait_for(cli, "started", 2)
    proc.kill()
    proc.communicate()
    return run_id(cli)


def test_a_reused_pid_does_not_keep_a_dead_holders_lock(cli: Cli) -> None:
    rid = _crashed_run(cli)
    # the pid now belongs to a live process, but not the one that took the lock
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_start(other.pid)
        # while the lock names that very process (same start time), it is alive: refused
        _lock(cli, rid, socket.gethostname(), other.pid, process_start(other.pid), 0)
        r = cli("resume", rid)
        assert r.returncode == 3 and f"pid {other.pid}" in r.stderr
        # the lock was taken by an earlier process with the same pid: provably dead
        _lock(cli, rid, socket.gethostname(), other.pid, "boot:12345", 0)
        r = cli("resume", rid)
        assert r.returncode == 0, r.stderr
    finally:
        other.kill()
        other.wait()


def test_another_hosts_holder_keeps_the_run_until_its_lease_expires(cli: Cli) -> None:
    import time

    rid = _crashed_run(cli)
    _lock(cli, rid, "other-host.example", 4242, "", time.time() + 600)
    r = cli("resume", rid)
    assert r.returncode == 3 and "other-host.example" in r.stderr and "pid 4242" in r.stderr
    _lock(cli, rid, "other-host.example", 4242, "", time.time() - 1)
    r = cli("resume", rid)
    assert r.returncode == 0, r.stderr
    taken = cli.rows("SELECT detail FROM events WHERE run_id=? AND outcome='resumed'", rid)
    assert "other-host.example" in str(taken[-1][0])
