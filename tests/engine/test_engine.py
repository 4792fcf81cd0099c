"""Engine behaviour on the fake backend with a real SQLite audit trail."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys

import pytest

from adapters.fake import FakeAdapter
from console.engine.locks import Lock
from console.engine.model import Plan
from console.engine.service import Session
from console.errors import (
    BlastRadiusExceeded,
    IrreversibleNotAllowed,
    LockHeld,
    PlanStaleError,
    UsageError,
)
from console.store import open_locks
from tests.engine.conftest import applied, switches

ALL = ["app-0", "app-1", "app-2"]


def session(config, mode: str = "live") -> Session:
    return Session(config, operator="tester", incident="INC-1", mode=mode)


async def test_dry_run_plan_observes_and_changes_nothing(make_config):
    s = session(make_config())
    plan = await s.plan("contain", ALL, record_mode="dry-run")
    assert len(plan.changes) == 6
    assert {c.status for c in plan.changes} == {"observed"}
    assert all(c.before == {"switch": "on"} and c.after == {"switch": "off"}
               for c in plan.changes)
    assert applied() == []
    events = s.audit.events(run_id=plan.run_id)
    assert {e["phase"] for e in events} == {"plan"}
    assert {e["mode"] for e in events} == {"dry-run"}


async def test_apply_then_verify_then_restore(make_config):
    s = session(make_config())
    plan = await s.plan("contain", ALL)
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0
    assert result.count("applied") == 6
    assert all(r.verified and r.verdict == "dead" for r in result.results.values())
    assert set(switches().values()) == {"off"}
    # flags went off before keys for every integration (needs)
    order = [a["op"] for a in applied()]
    for i in range(3):
        assert order.index(f"app-{i}/flags-off/0") < order.index(f"app-{i}/revoke/0")

    undo = s.restore_plan(plan.run_id)
    assert undo.restore_of == plan.run_id and len(undo.changes) == 6
    back = await s.apply(undo, reason="all clear", saved=True)
    assert back.exit_code() == 0
    assert set(switches().values()) == {"on"}
    assert s.audit.verify().ok


async def test_second_apply_is_a_noop(make_config):
    s = session(make_config())
    await s.apply(await s.plan("contain", ALL), reason="first")
    again = await s.plan("contain", ALL)
    assert {c.status for c in again.changes} == {"noop"}
    result = await s.apply(again, reason="second")
    assert result.count("noop") == 6 and result.exit_code() == 0
    assert len(applied()) == 6


async def test_restore_leaves_alone_what_was_already_off(make_config):
    s = session(make_config())
    pre = await s.apply(await s.plan("contain", ["app-0"]), reason="earlier")
    assert pre.exit_code() == 0
    plan = await s.plan("contain", ALL)
    run = await s.apply(plan, reason="now")
    assert run.count("noop") == 2 and run.count("applied") == 4
    await s.apply(s.restore_plan(plan.run_id), reason="restore", saved=True)
    sw = switches()
    assert sw["app-0-key"] == "off" and sw["app-0-flag"] == "off"
    assert sw["app-1-key"] == "on"


async def test_saved_plan_refused_when_target_drifted(make_config, tmp_path):
    s = session(make_config())
    plan = await s.plan("contain", ALL)
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    # after planning, someone rotates app-1's key by hand: the plan is now stale
    FakeAdapter._memory.setdefault("sim", {"switches": {}, "applied": []})
    FakeAdapter._memory["sim"]["switches"]["app-1-key"] = "rotated"
    loaded = Plan.load(path)
    with pytest.raises(PlanStaleError) as err:
        await s.apply(loaded, reason="late", saved=True)
    assert err.value.exit_code == 3
    assert 'sim:app-1-key: switch: "on" -> "rotated"' in str(err.value)
    assert applied() == []
    assert switches().get("app-0-flag", "on") == "on"


async def test_edited_plan_file_is_rejected(make_config, tmp_path):
    s = session(make_config())
    plan = await s.plan("contain", ALL)
    data = json.loads(plan.to_json())
    data["changes"][0]["after"] = {"switch": "on"}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="edited"):
        Plan.load(path)


async def test_faults_at_30_percent_converge(make_config):
    # the fake draws its faults from `random`, in whatever order the threads run: with 16
    # applies a run without a single fault is a 1-in-300 event, whatever the seed gives
    random.seed(30)
    many = [f"app-{i}" for i in range(8)]
    s = session(make_config(n=8, max_targets=20,
                            backend="fail_rate = 0.15\nthrottle_rate = 0.15\nretry_after = 0.01"))
    s.config.settings.max_attempts = 12
    result = await s.apply(await s.plan("contain", many), reason="faults")
    retried = [e for e in s.audit.events(run_id=result.run_id) if e["outcome"] == "retrying"]
    assert result.count("applied") == 16, result.failed
    assert retried, "with 30% faults some calls must have been retried"


async def test_permanent_failure_reports_provider_message_and_skips_dependents(make_config):
    plan = await session(make_config()).plan("contain", ["app-0"])
    # the backend goes down between planning and applying
    s = session(make_config(backend="fail_rate = 1.0"))
    s.config.settings.max_attempts = 2
    result = await s.apply(plan, reason="down")
    flag = result.results["app-0/flags-off/0"]
    key = result.results["app-0/revoke/0"]
    assert flag.outcome == "failed" and "503" in flag.message
    assert key.outcome == "skipped" and "flags-off" in key.message
    assert result.exit_code() == 1
    assert "off" not in switches().values()


async def test_unknown_outcome_is_verified_before_retry(make_config):
    s = session(make_config(backend="apply_latency = 0.6\ntimeout = 0.2"))
    plan = await s.plan("contain", ["app-0"])
    result = await s.apply(plan, reason="slow")
    flag = result.results["app-0/flags-off/0"]
    # the first apply timed out but landed; the retry read it back instead of applying again
    assert flag.outcome == "applied" and "confirmed by reading back" in flag.message
    assert flag.attempts >= 2
    assert len([a for a in applied() if a["op"] == "app-0/flags-off/0"]) == 1
    # and because it counts as applied, restore undoes it
    undo = s.restore_plan(plan.run_id)
    assert {c.inverse_of for c in undo.changes} == {"app-0/flags-off/0", "app-0/revoke/0"}


async def test_blast_radius_and_irreversible_guards(make_config):
    s = session(make_config(max_targets=2))
    plan = await s.plan("contain", ALL)
    with pytest.raises(BlastRadiusExceeded, match="limit is 2"):
        await s.apply(plan, reason="x")
    destroy = await s.plan("destroy", ["app-0"])
    assert destroy.irreversible
    with pytest.raises(IrreversibleNotAllowed, match="cannot be undone"):
        await s.apply(destroy, reason="x")
    assert applied() == []
    ok = await s.apply(destroy, reason="x", allow_irreversible=True)
    assert ok.count("applied") == 1


async def test_lock_held_by_live_process_refuses(make_config):
    config = make_config()
    s = session(config)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        open_locks(config).plant(Lock("app-1", "r-other", "alice", socket.gethostname(),
                                      holder.pid, "2026-11-22T03:00:00Z"), lambda _row: True)
        plan = await s.plan("contain", ALL)
        with pytest.raises(LockHeld) as err:
            await s.apply(plan, reason="x")
        assert "alice" in str(err.value) and "r-other" in str(err.value)
        assert "2026-11-22T03:00:00Z" in str(err.value)
        assert applied() == []
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead now: its lock is stale and taken over
    result = await s.apply(await s.plan("contain", ALL), reason="x")
    assert result.exit_code() == 0
    events = s.audit.events(run_id=result.run_id)
    assert any(e["outcome"] == "stale-lock-taken-over" for e in events)
    assert open_locks(config).held() == []


async def test_every_side_effect_is_journaled_before_and_after(make_config):
    s = session(make_config())
    result = await s.apply(await s.plan("contain", ALL), reason="x")
    events = s.audit.events(run_id=result.run_id)
    for op in result.results:
        outcomes = [e["outcome"] for e in events if e["op_id"] == op and e["phase"] == "apply"]
        assert outcomes == ["started", "applied"], (op, outcomes)
    from console.store import has_trail
    assert has_trail(s.config)  # in the store under test (SQLite file or PostgreSQL)


async def test_a_backend_option_of_the_wrong_type_is_refused_at_load(make_config):
    from console.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make_config(backend='latency = "x"')
    assert "latency" in str(err.value) and "config.toml:" in str(err.value)
