"""Two commanders on two hosts, one store, through the real CLI: a run that crashed on host A is
refused to host B while A's lease runs (naming A), then finished by B with nothing applied
twice; a holder frozen past its lease loses its locks and its next change is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.engine.service import Session
from console.store import open_locks
from tests.engine.conftest import write_config

LEASE = 2.0


@dataclass
class Team:
    """One config (one store) used by commanders on several hosts."""

    root: Path
    config: Path

    def env(self, host: str, operator: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KILLSWITCH_") or k == "KILLSWITCH_STORE"}
        env.update(KILLSWITCH_HOST=host, KILLSWITCH_OPERATOR=operator)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "console", "--config", str(self.config), *args]

    def __call__(self, host: str, operator: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, input="",
                              cwd=self.root, env=self.env(host, operator), timeout=120)

    def popen(self, host: str, operator: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, cwd=self.root,
                                env=self.env(host, operator))

    def session(self) -> Session:
        return Session(load_config(self.config), operator="observer")

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.session().audit.events(run_id=run_id)
        return events

    @property
    def applied(self) -> list[dict[str, str]]:
        """Every side effect the fake backend saw (shared by all processes)."""
        path = self.root / "fake-state.json"
        data = json.loads(path.read_text()) if path.exists() else {"applied": []}
        return list(data["applied"])


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Team:
    """Two integrations on a slow fake backend (one apply at a time), leases of 2 s."""
    if request.param == "postgresql":
        monkeypatch.setenv("KILLSWITCH_STORE", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("KILLSWITCH_STORE", raising=False)
    backend = (f'state_file = "{tmp_path / "fake-state.json"}"\nlatency = 0.01\n'
               "apply_latency = 0.6\nmax_concurrency = 1")
    path = write_config(tmp_path, n=2, backend=backend)
    path.write_text(path.read_text().replace("[settings]\n", f"[settings]\nlock_lease = {LEASE}\n"))
    return Team(tmp_path, path)


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        time.sleep(0.02)


def run_of(team: Team) -> str:
    starts = [e for e in team.events() if e.get("phase") == "run" and e["outcome"] == "started"]
    return str(starts[0]["run_id"])


def applied_events(team: Team) -> int:
    return sum(1 for e in team.events() if e.get("phase") == "apply"
               and e["outcome"] == "applied")


def leases_ended(team: Team, monkeypatch: pytest.MonkeyPatch, host: str) -> Callable[[], bool]:
    """True once every lock in the store counts as a dead holder's, seen from ``host``."""
    monkeypatch.setenv("KILLSWITCH_HOST", host)
    table = open_locks(load_config(team.config))

    def check() -> bool:
        return all(table.holder_gone(lock) for lock in table.held())
    return check


def test_a_run_that_crashed_on_host_a_is_finished_on_host_b(
        team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    a = team.popen("host-a", "alice", "run", "contain", "app-0", "app-1", "--yes",
                   "--reason", "contain on a")
    wait_until(lambda: bool(team.applied))  # mid-apply: one change landed, the rest not yet
    a.send_signal(signal.SIGKILL)
    a.communicate()
    rid = run_of(team)

    # host B while A's lease runs: refused, naming the real holder and since when
    for args in (("resume", rid), ("run", "contain", "app-1", "--yes", "--reason", "mine")):
        r = team("host-b", "bob", *args)
        assert r.returncode == 3, r.stdout + r.stderr
        for word in (f"run {rid}", "alice on host-a", f"pid {a.pid}", "since 20"):
            assert word in r.stderr, r.stderr
    monkeypatch.setenv("KILLSWITCH_HOST", "host-b")
    assert team.session().interrupted_runs() == []  # someone may still be finishing it

    wait_until(leases_ended(team, monkeypatch, "host-b"))
    assert team.session().interrupted_runs() == [rid]
    r = team("host-b", "bob", "resume", rid)
    assert r.returncode == 0, r.stdout + r.stderr

    ops = Counter(x["op"] for x in team.applied)
    assert len(ops) == 4 and set(ops.values()) == {1}, ops  # every change exactly once
    events = team.events(rid)
    takeovers = [e["detail"] for e in events if e["outcome"] == "stale-lock-taken-over"]
    assert sorted(str(t["holder"]["run_id"]) for t in takeovers) == [rid, rid]
    for t in takeovers:
        assert (t["previous_holder"]["host"], t["previous_holder"]["operator"]) == \
            ("host-a", "alice")
        assert (t["holder"]["host"], t["holder"]["operator"]) == ("host-b", "bob")
        assert t["token"] > t["previous_holder"]["token"] and "lease expired" in t["why"]
    verdicts = [e["outcome"] for e in events if e.get("phase") == "verify"]
    assert verdicts == ["ok"] * 4
    assert [e["outcome"] for e in events if e.get("phase") == "run"][-1] == "finished"
    r = team("host-b", "bob", "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_holder_frozen_past_its_lease_is_fenced_off_while_host_b_resumes(
        team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    a = team.popen("host-a", "alice", "run", "contain", "app-0", "app-1", "--yes",
                   "--reason", "contain on a")
    b = None
    try:
        # freeze A inside its first apply (after the switch flipped, during the slow apply;
        # one apply at a time, so no other change sits between its fence and its call)
        wait_until(lambda: len(team.applied) == 1)
        a.send_signal(signal.SIGSTOP)
        rid = run_of(team)
        wait_until(leases_ended(team, monkeypatch, "host-b"))
        b = team.popen("host-b", "bob", "resume", rid)
        wait_until(lambda: any(e["outcome"] == "resumed" for e in team.events(rid)))
    finally:
        a.send_signal(signal.SIGCONT)  # A wakes up while B is finishing its run
    out, err = a.communicate(timeout=60)
    assert b is not None
    b_out, b_err = b.communicate(timeout=60)
    assert a.returncode == 3, out + err
    assert f"run {rid} lost its lock (resumed elsewhere)" in err, err
    assert f"locked by run {rid} (bob on host-b" in err, err
    assert b.returncode == 0, b_out + b_err

    events = team.events(rid)
    refused = [e for e in events if e.get("phase") == "run" and e["outcome"] == "refused"]
    assert refused and {e["action"] for e in refused} == {"lock"}
    assert all("not applied" in e["detail"]["message"] and "bob on host-b"
               in e["detail"]["message"] for e in refused), refused
    assert [e["outcome"] for e in events if e.get("phase") == "run"][-1] == "finished"
    ops = Counter(x["op"] for x in team.applied)
    assert len(ops) == 4 and set(ops.values()) == {1}, ops  # nothing applied twice
    r = team("host-b", "bob", "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
