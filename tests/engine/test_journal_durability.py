"""Durability where it matters (issue 11 §3): the intent to act is durable before the side
effect; outcomes and verdicts are group-committed without waiting, and losing one to a crash
repeats nothing on resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from console.audit import AuditLog
from console.engine.journal import Journal
from console.errors import AuditError
from tests.cli.conftest import Cli
from tests.engine.conftest import write_config

BASE = {"run_id": "r-1", "incident": "INC-1", "operator": "tester", "mode": "live"}


class Sink:
    """An audit sink that records every transaction and can be made to fail."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.fail_when: Callable[[list[dict[str, Any]]], bool] = lambda events: False
        self.raised = threading.Event()

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.fail_when(events):
            self.raised.set()
            raise AuditError("disk full")
        self.transactions.append([e["outcome"] for e in events])
        return [{**e, "seq": i, "hash": f"h{i}"} for i, e in enumerate(events, 1)]

    @property
    def written(self) -> list[str]:
        return [o for t in self.transactions for o in t]


async def test_posted_events_ride_with_the_next_durable_write_in_order() -> None:
    sink = Sink()
    journal = Journal(sink, BASE)
    await journal.record(outcome="started-1")
    journal.post(outcome="applied-1")
    journal.post(outcome="ok-1")
    assert sink.written == ["started-1"]  # posting does not write
    await journal.record(outcome="started-2")  # durable: and everything queued before it
    assert sink.transactions[-1] == ["applied-1", "ok-1", "started-2"]
    journal.post(outcome="applied-2")
    await journal.aclose()  # aclose commits what is left
    assert sink.written == ["started-1", "applied-1", "ok-1", "started-2", "applied-2"]


async def test_flush_waits_for_posted_events() -> None:
    sink = Sink()
    journal = Journal(sink, BASE)
    journal.post(outcome="a")
    journal.post(outcome="b")
    await journal.flush()
    assert sink.written == ["a", "b"]
    await journal.aclose()
    await journal.aclose()  # idempotent


async def test_a_lost_posted_event_fails_the_next_awaited_write_and_nothing_after_it() -> None:
    sink = Sink()
    sink.fail_when = lambda events: any(e["outcome"] == "applied-1" for e in events)
    journal = Journal(sink, BASE)
    await journal.record(outcome="started-1")
    journal.post(outcome="applied-1")
    await failed(sink)  # the writer takes the posted event on its own and fails
    with pytest.raises(AuditError, match="disk full"):
        await journal.record(outcome="started-2")  # fail closed: no second side effect
    with pytest.raises(AuditError):
        journal.post(outcome="anything")
    await journal.aclose()  # already told a caller: aclose does not raise it again
    assert sink.written == ["started-1"]


async def test_aclose_raises_a_failure_nobody_was_told_about() -> None:
    sink = Sink()
    sink.fail_when = lambda events: any(e["outcome"] == "ok" for e in events)
    journal = Journal(sink, BASE)
    await journal.record(outcome="started")
    journal.post(outcome="applied")
    journal.post(outcome="ok")
    with pytest.raises(AuditError, match="disk full"):
        await journal.aclose()
    assert sink.written == ["started"]


async def test_no_event_queued_after_a_failure_is_written() -> None:
    sink = Sink()
    fail = threading.Event()
    sink.fail_when = lambda events: fail.is_set()
    journal = Journal(sink, BASE)
    await journal.record(outcome="started")
    fail.set()
    journal.post(outcome="lost")
    await failed(sink)
    fail.clear()  # the disk recovers: still, nothing after the lost event may be stored
    with pytest.raises(AuditError):
        await journal.flush()
    assert sink.written == ["started"]
    await journal.aclose()


async def test_the_chain_follows_the_queue_order_on_a_real_trail(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    journal = Journal(log, BASE)

    async def op(i: int) -> None:
        await journal.record(op_id=f"op-{i}", phase="apply", outcome="started")
        journal.post(op_id=f"op-{i}", phase="apply", outcome="applied")
        journal.post(op_id=f"op-{i}", phase="verify", outcome="ok")

    await asyncio.gather(*(op(i) for i in range(50)))
    await journal.aclose()
    events = log.events(run_id="r-1")
    assert len(events) == 150 and journal.transactions < 150
    for i in range(50):
        mine = [(e["phase"], e["outcome"]) for e in events if e["op_id"] == f"op-{i}"]
        assert mine == [("apply", "started"), ("apply", "applied"), ("verify", "ok")]
    assert journal.head == (events[-1]["seq"], events[-1]["hash"])
    assert log.verify().ok
    log.close()


async def failed(sink: Sink) -> None:
    """Wait until the sink has refused a write."""
    assert await asyncio.to_thread(sink.raised.wait, 30)


# -- a real process killed between a side effect and its outcome event ------------------

_CHILD = textwrap.dedent("""
    import os, sys, time, runpy
    from pathlib import Path
    import console.audit as audit

    marker = Path(os.environ["TEST_MARKER"])
    original = audit.TrailBase.append_many  # either store's trail

    def append_many(self, events):
        if any(e.get("phase") == "apply" and e.get("outcome") == "applied" for e in events):
            # the side effect happened and its outcome is queued, not yet durable: stop here
            marker.write_text(str(os.getpid()))
            time.sleep(600)
        return original(self, events)

    audit.TrailBase.append_many = append_many
    sys.argv = ["killswitch", *sys.argv[1:]]
    runpy.run_module("console", run_name="__main__")
""")


def _wait(what: str, check: Callable[[], bool], proc: subprocess.Popen[str],
          timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}: {out}{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.02)


def _applied(cli: Cli) -> list[dict[str, str]]:
    path = cli.root / "fake-state.json"
    try:
        return list(json.loads(path.read_text())["applied"]) if path.exists() else []
    except ValueError:  # being replaced: read again
        return []


@pytest.mark.parametrize("where", ["outcome-queued", "inside-apply"])
def test_sigkill_between_apply_and_its_outcome_event_resumes_without_repeating(
        tmp_path: Path, where: str) -> None:
    """``outcome-queued``: apply returned and its outcome event was posted, the commit that
    would carry it is held; ``inside-apply``: the switch flipped and apply has not returned
    (``apply_latency``). Either way the trail has the intent and no outcome when the process
    dies; resume must read the target, record it applied and not flip it again."""
    backend = f'state_file = "{tmp_path / "fake-state.json"}"'
    if where == "inside-apply":
        backend += "\napply_latency = 600"
    cli = Cli(tmp_path, write_config(tmp_path, n=1, backend=backend))
    marker = tmp_path / "stopped"
    argv = ["run", "contain", "app-0", "--yes", "--reason", "crash test"]
    if where == "outcome-queued":
        cmd = [sys.executable, "-c", _CHILD, "--config", str(cli.config), *argv]
    else:
        cmd = cli.argv(*argv)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, cwd=tmp_path,
                            env={**cli.env(), "TEST_MARKER": str(marker)})
    try:
        if where == "outcome-queued":
            _wait("the outcome event queued", marker.exists, proc)
        else:
            _wait("the side effect", lambda: len(_applied(cli)) == 1, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    # the crash landed in the window: the flag was flipped once, the trail has its intent
    # and no outcome, and nothing else was started
    assert [a["op"] for a in _applied(cli)] == ["app-0/flags-off/0"]
    flag = cli.rows("SELECT phase, outcome FROM events WHERE op_id = 'app-0/flags-off/0' "
                    "AND phase != 'plan' ORDER BY seq")
    assert flag == [("apply", "started")]
    (rid,) = cli.rows("SELECT DISTINCT run_id FROM events WHERE phase = 'run' "
                      "AND outcome = 'started'")[0]

    if where == "inside-apply":  # resume without the slow apply
        cli.config.write_text(cli.config.read_text().replace("apply_latency = 600", ""))
    r = cli("resume", str(rid))
    assert r.returncode == 0, r.stdout + r.stderr

    applied = [a["op"] for a in _applied(cli)]
    assert sorted(applied) == ["app-0/flags-off/0", "app-0/revoke/0"], applied  # once each
    state = json.loads((tmp_path / "fake-state.json").read_text())
    assert set(state["switches"].values()) == {"off"}
    flag = cli.rows("SELECT phase, outcome, detail FROM events WHERE op_id = "
                    "'app-0/flags-off/0' AND phase != 'plan' ORDER BY seq")
    # the crashed run's intent, the resumed attempt's intent, then the outcome found by
    # reading the target (not by applying again), and the verdict
    assert [(p, o) for p, o, _ in flag] == [("apply", "started"), ("apply", "started"),
                                            ("apply", "applied"), ("verify", "ok")]
    assert "confirmed by reading back" in str(flag[2][2])
    assert cli.rows("SELECT count(*) FROM events WHERE run_id = ? AND outcome = 'finished'",
                    rid) == [(1,)]
    v = cli("audit", "verify")
    assert v.returncode == 0, v.stdout + v.stderr


# -- many writers on one trail ------------------------------------------------------------

def test_a_writer_waits_for_the_lock_and_gives_up_after_busy_timeout(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "audit.db"
    AuditLog(path).append(phase="run", outcome="started")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing
    log = AuditLog(path, busy_timeout=0.3)
    start = time.monotonic()
    with pytest.raises(AuditError, match="locked"):
        log.append(phase="run", outcome="x")
    assert 0.3 <= time.monotonic() - start < 5
    released = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    patient = AuditLog(path, busy_timeout=30)
    released.start()
    patient.append(phase="run", outcome="y")  # waits for the holder, then writes
    released.join()
    assert [e["outcome"] for e in patient.events()] == ["started", "y"]
    assert patient.verify().ok
    for c in (log, patient):
        c.close()
    holder.close()


def _hammer(path: str, idx: int, n: int) -> None:
    log = AuditLog(path, busy_timeout=60)
    for i in range(n):
        log.append_many([{"run_id": f"w-{idx}", "phase": "apply", "outcome": "started",
                          "op_id": f"{idx}-{i}"}] * 3)
    log.close()


def test_many_processes_append_to_one_trail_without_locked_errors(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "audit.db"
    AuditLog(path).append(phase="run", outcome="started")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(path), i, 15)) for i in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 16
    log = AuditLog(path, readonly=True)
    report = log.verify()
    assert report.ok and report.count == 1 + 16 * 15 * 3
    log.close()
