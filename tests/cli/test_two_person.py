"""The two-person rule through the real `killswitch` entry point, with two commanders.

Alice and Bob are two operators on two machines: each subprocess gets its own
``KILLSWITCH_OPERATOR`` and ``KILLSWITCH_HOST``. (The tests run as one OS user, and the same
OS user on the same host is one person whatever name it claims, so Bob must differ by host:
``KILLSWITCH_HOST`` is trusted input here, standing in for Bob's own machine.) The fake
backend's shared state file shows what was applied, and when.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

import pytest

from console.engine.model import Plan
from tests.cli.conftest import Cli

ALICE = {"KILLSWITCH_OPERATOR": "alice", "KILLSWITCH_HOST": "laptop-alice"}
BOB = {"KILLSWITCH_OPERATOR": "bob", "KILLSWITCH_HOST": "laptop-bob"}
MALLORY = {"KILLSWITCH_OPERATOR": "not-alice", "KILLSWITCH_HOST": "laptop-alice"}


@pytest.fixture
def team(cli: Cli) -> Cli:
    """The CLI fixture's config with ``two_person = "prod"`` (every app is prod)."""
    cli.config.write_text(cli.config.read_text().replace(
        "[settings]", '[settings]\ntwo_person = "prod"', 1))
    return cli


def request(cli: Cli, *args: str) -> dict[str, Any]:
    """Alice asks for a live run; it is refused with an approval id."""
    r = cli("--json", "run", *args, "--yes", "--reason", "key leaked", env=ALICE)
    assert r.returncode == 3, r.stderr
    assert "needs a second operator's approval" in r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    assert out["approval_id"].startswith("apr-") and out["exit_code"] == 3
    return out


def listed(cli: Cli, *args: str) -> list[dict[str, Any]]:
    r = cli("approvals", "--json", *args)
    assert r.returncode == 0, r.stderr
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows


def tamper(cli: Cli, sql: str, *params: object) -> None:
    """Edit the approvals table behind Killswitch's back (the store under test)."""
    url = os.environ.get("KILLSWITCH_STORE")
    if url:
        import psycopg
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(sql.replace("?", "%s"), params)
        return
    conn = sqlite3.connect(cli.db)
    with conn:
        conn.execute(sql, params)
    conn.close()


def test_two_commanders_request_approve_apply_once(team: Cli) -> None:
    asked = request(team, "contain", "app-0")
    aid = asked["approval_id"]
    assert team.state["applied"] == []  # nothing applied before the approval
    (row,) = listed(team)
    assert (row["approval_id"], row["status"], row["requester"]["operator"]) == (
        aid, "pending", "alice")
    assert row["plan_hash"] == asked["plan_hash"]

    r = team("approve", aid, "--reason", "mine", env=ALICE)
    assert r.returncode == 3 and "same operator" in r.stderr
    r = team("approve", aid, "--reason", "trust me", env=MALLORY)
    assert r.returncode == 3, r.stderr
    assert "same OS user" in r.stderr and "on the same host (laptop-alice)" in r.stderr
    r = team("approve", aid, env=BOB)
    assert r.returncode == 2 and "--reason" in r.stderr
    r = team("run", "--approval", aid, "--yes", "--reason", "go", env=ALICE)
    assert r.returncode == 3 and "not approved yet" in r.stderr
    assert team.state["applied"] == []

    r = team("approve", aid, "--reason", "plan checked", env=BOB)
    assert r.returncode == 0, r.stderr
    assert "PLAN: runbook contain" in r.stdout and "sim:app-0-key" in r.stdout
    assert f"approved {aid} by bob" in r.stdout
    assert team.state["applied"] == []

    r = team("--json", "run", "--approval", aid, "--yes", "--reason", "go", env=ALICE)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["approval_id"] == aid and out["run_id"] == asked["run_id"]
    assert out["plan_hash"] == asked["plan_hash"]
    assert team.state["switches"] == {"app-0-flag": "off", "app-0-key": "off"}

    r = team("run", "--approval", aid, "--yes", "--reason", "again", env=BOB)
    assert r.returncode == 3 and f"already used by run {asked['run_id']}" in r.stderr
    assert len(team.state["applied"]) == 2
    (row,) = listed(team, "--all")
    assert (row["status"], row["approver"]["operator"], row["run_id"]) == (
        "used", "bob", asked["run_id"])
    assert listed(team) == []
    actions = [a for (a,) in team.rows(
        "SELECT action FROM events WHERE phase = 'approval' ORDER BY seq")]
    assert actions == ["approval.requested", "approval.refused", "approval.refused",
                       "approval.approved", "approval.used"]
    r = team("audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr


def test_drift_after_the_approval_voids_it(team: Cli) -> None:
    aid = request(team, "contain", "app-1")["approval_id"]
    assert team("approve", aid, "--reason", "ok", env=BOB).returncode == 0
    # someone switches the flag off by hand: the approved plan is not what would run now
    (team.root / "fake-state.json").write_text(json.dumps(
        {"switches": {"app-1-flag": "off"}, "applied": []}))
    r = team("run", "--approval", aid, "--yes", "--reason", "go", env=BOB)
    assert r.returncode == 3, r.stderr
    assert f"approval {aid} is void" in r.stderr and "sim:app-1-flag" in r.stderr
    assert team.state["applied"] == []
    (row,) = listed(team, "--all")
    assert row["status"] == "void" and "drifted" in row["void_reason"]
    r = team("run", "--approval", aid, "--yes", "--reason", "go", env=ALICE)
    assert r.returncode == 3 and "void" in r.stderr


@pytest.mark.parametrize("with_hash", [False, True], ids=["plan-text", "plan-and-hash"])
def test_an_edited_stored_plan_is_refused(team: Cli, with_hash: bool) -> None:
    asked = request(team, "contain", "app-2")
    aid = asked["approval_id"]
    assert team("approve", aid, "--reason", "ok", env=BOB).returncode == 0
    (text,) = [t for (t,) in team.rows("SELECT plan FROM approvals WHERE id = ?", aid)]
    data = json.loads(str(text))
    # retarget the approved plan at app-3, rehashed as an attacker can
    for c in data["changes"]:
        c.update(integration="app-3", op_id=c["op_id"].replace("app-2", "app-3"),
                 target=c["target"].replace("app-2", "app-3"),
                 ref={**c["ref"], "key": c["ref"]["key"].replace("app-2", "app-3")})
    data["integrations"] = ["app-3"]
    data.pop("signature", None)
    data["hash"] = Plan.hash_of({k: v for k, v in data.items() if k != "hash"})
    if with_hash:
        tamper(team, "UPDATE approvals SET plan = ?, plan_hash = ? WHERE id = ?",
               json.dumps(data), data["hash"], aid)
    else:
        tamper(team, "UPDATE approvals SET plan = ? WHERE id = ?", json.dumps(data), aid)
    r = team("run", "--approval", aid, "--yes", "--reason", "go", env=ALICE)
    assert r.returncode == 3, r.stderr
    assert ("audit trail recorded" if with_hash else "not the requested") in r.stderr
    assert team.state["applied"] == []
    (row,) = listed(team, "--all")
    assert row["status"] == "void"


def test_break_glass_acts_alone_and_waits_for_a_cosign_then_restore_needs_approval(
        team: Cli) -> None:
    r = team("run", "contain", "app-3", "--yes", "--break-glass", env=ALICE)
    assert r.returncode == 2 and "--reason" in r.stderr
    r = team("--json", "run", "contain", "app-3", "--yes", "--reason", "prod on fire",
             "--break-glass", env=ALICE)
    assert r.returncode == 0, r.stderr
    assert "BREAK-GLASS" in r.stderr and "ALONE" in r.stderr
    out = json.loads(r.stdout)
    assert team.state["switches"] == {"app-3-flag": "off", "app-3-key": "off"}
    cid, run_id = out["cosign_id"], out["run_id"]
    (row,) = listed(team)
    assert (row["approval_id"], row["kind"], row["status"], row["run_id"]) == (
        cid, "cosign", "pending", run_id)
    report = team("report", run_id)
    assert "Break-glass" in report.stdout and "co-signature pending" in report.stdout

    assert team("approve", cid, "--reason", "me", env=MALLORY).returncode == 3
    r = team("approve", cid, "--reason", "right call", env=BOB)
    assert r.returncode == 0, r.stderr
    assert "CO-SIGN break-glass run" in r.stdout and f"co-signed {cid}" in r.stdout
    assert listed(team) == []
    assert "co-signed by bob@laptop-bob" in team("report", run_id).stdout

    # undoing it is a live run on prod too: an approval, then applied by either of them
    r = team("--json", "restore", run_id, "--yes", "--reason", "false alarm", env=ALICE)
    assert r.returncode == 3, r.stderr
    aid = json.loads(r.stdout)["approval_id"]
    assert team.state["switches"] == {"app-3-flag": "off", "app-3-key": "off"}
    assert team("approve", aid, "--reason", "ok", env=BOB).returncode == 0
    r = team("run", "--approval", aid, "--yes", env=BOB)
    assert r.returncode == 0, r.stderr
    assert team.state["switches"] == {"app-3-flag": "on", "app-3-key": "on"}
