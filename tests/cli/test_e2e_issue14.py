"""Issue 14, done when: two commanders, two configs, two operators, one PostgreSQL.

Alice (host-a) and Bob (host-b) each have their own config folder (their own witness file)
whose ``[settings] store`` names the same PostgreSQL schema, and both act on one system (the
fake backend's shared state file). Through the real CLI:

1. Bob's run on an integration Alice's run holds is refused, naming Alice, her host and since
   when (exit 3).
2. Alice's console dies mid-run (SIGKILL); Bob's resume is refused while her lease runs, then
   finishes the run from host-b with nothing applied twice.
3. The shared trail verifies from both configs, and `audit show --incident` / `report
   --incident` from either one cover both commanders' runs.
4. The two-person rule: Alice's live run asks for approval (exit 3, ``approval_id``), her own
   approval is refused, Bob approves, and the approved plan applies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.engine.conftest import write_config

LEASE = 2.0
INCIDENT = "INC-14"


class Commander:
    """One operator on one host with their own config folder."""

    def __init__(self, root: Path, store: str, state: Path, operator: str, host: str) -> None:
        root.mkdir()
        backend = (f'state_file = "{state}"\nlatency = 0.01\napply_latency = 0.5\n'
                   "max_concurrency = 1")
        self.config = write_config(root, n=2, backend=backend)
        self.config.write_text(self.config.read_text().replace(
            "[settings]\n", f'[settings]\nstore = "{store}"\nlock_lease = {LEASE}\n'
                            f'incident = "{INCIDENT}"\n', 1))
        self.root, self.operator, self.host = root, operator, host

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")}
        env.update(KILLSWITCH_OPERATOR=self.operator, KILLSWITCH_HOST=self.host)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "console", "--config", str(self.config), *args]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, input="",
                              cwd=self.root, env=self.env(), timeout=120)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                cwd=self.root, env=self.env())

    def two_person(self, rule: str) -> None:
        self.config.write_text(self.config.read_text().replace(
            "[settings]\n", f'[settings]\ntwo_person = "{rule}"\n', 1))


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


def rows(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            return []
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def applied(state: Path) -> list[dict[str, str]]:
    return list(json.loads(state.read_text())["applied"]) if state.exists() else []


@pytest.fixture
def team(tmp_path: Path, pg_url: str,
         monkeypatch: pytest.MonkeyPatch) -> tuple[Commander, Commander, str, Path]:
    monkeypatch.delenv("KILLSWITCH_STORE", raising=False)  # the configs name the store
    state = tmp_path / "fake-state.json"
    alice = Commander(tmp_path / "alice", pg_url, state, "alice", "host-a")
    bob = Commander(tmp_path / "bob", pg_url, state, "bob", "host-b")
    return alice, bob, pg_url, state


def test_two_commanders_share_one_postgresql_store(
        team: tuple[Commander, Commander, str, Path]) -> None:
    alice, bob, url, state = team

    # 1. a lock held on host-a refuses host-b, naming the real holder
    a = alice.popen("run", "contain", "app-0", "--yes", "--reason", "key leaked")
    wait_until(lambda: bool(applied(state)), "alice's first change applied")
    r = bob("run", "contain", "app-0", "--yes", "--reason", "me too")
    assert r.returncode == 3, r.stdout + r.stderr
    for word in ("alice on host-a", f"pid {a.pid}", "since 20"):
        assert word in r.stderr, r.stderr

    # 2. alice's console dies mid-run; bob waits out her lease and finishes it
    a.send_signal(signal.SIGKILL)
    a.communicate()
    ((rid,),) = rows(url, "SELECT DISTINCT run_id FROM events WHERE phase = 'run' "
                          "AND outcome = 'started'")
    r = bob("resume", rid)
    assert r.returncode == 3 and "alice on host-a" in r.stderr, r.stdout + r.stderr
    wait_until(lambda: all(t < time.time() for (t,) in rows(url, "SELECT lease_until FROM locks")),
               "alice's lease ended", timeout=LEASE * 10)
    r = bob("resume", rid)
    assert r.returncode == 0, r.stdout + r.stderr
    ops = Counter(x["op"] for x in applied(state))
    assert len(ops) == 2 and set(ops.values()) == {1}, ops  # flag and key, each once
    hosts = {h for (h,) in rows(url, "SELECT DISTINCT host FROM events WHERE run_id = %s", rid)}
    assert hosts == {"host-a", "host-b"}

    # 3. one trail, verified from both configs; both commanders in the incident's views
    for who in (alice, bob):
        r = who("audit", "verify")
        assert r.returncode == 0 and "audit chain OK" in r.stdout, r.stdout + r.stderr
    r = alice("audit", "show", "--incident", INCIDENT)
    assert r.returncode == 0 and "alice@host-a" in r.stdout and "bob@host-b" in r.stdout
    r = bob("report", "--incident", INCIDENT)
    assert r.returncode == 0, r.stderr
    assert "alice" in r.stdout and "bob" in r.stdout and "host-a" in r.stdout

    # 4. the two-person rule: requested, self-approval refused, bob approves, it applies
    for who in (alice, bob):
        who.two_person("all")
    before = len(applied(state))
    r = alice("--json", "run", "contain", "app-1", "--yes", "--reason", "second key leaked")
    assert r.returncode == 3, r.stdout + r.stderr
    approval = json.loads(r.stdout)["approval_id"]
    assert len(applied(state)) == before  # nothing applied before the approval
    r = alice("approve", approval, "--reason", "looks right to me")
    assert r.returncode == 3 and "same operator" in r.stderr, r.stdout + r.stderr
    r = bob("approvals", "--json")
    assert [a["approval_id"] for a in json.loads(r.stdout)] == [approval]
    r = bob("approve", approval, "--reason", "checked the plan")
    assert r.returncode == 0, r.stdout + r.stderr
    r = alice("run", "--approval", approval, "--yes", "--reason", "go")
    assert r.returncode == 0, r.stdout + r.stderr
    changed = {x["key"] for x in applied(state)[before:]}
    assert changed == {"app-1-flag", "app-1-key"}, applied(state)[before:]
    for who in (alice, bob):
        assert who("audit", "verify").returncode == 0
