"""Slack and PagerDuty notifications through the engine, against the local receivers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import asdict

import pytest

from console.config import Config
from console.engine.service import Session
from tests.adapters.notify.conftest import CANARY, ROUTING_KEY, Receivers

SECRET_TOKEN = CANARY[8:]


def assert_chain_head(s: Session, op_id: str, chain: str) -> None:
    """``chain`` (``seq N, hash <16 hex>``) names a real event of the trail, committed after
    the operation's ``started`` event and before its outcome: the head when it was sent."""
    m = re.fullmatch(r"seq (\d+), hash ([0-9a-f]{16})", chain)
    assert m, chain
    seq = int(m.group(1))
    events = {e["seq"]: e for e in s.audit.events()}
    assert events[seq]["hash"].startswith(m.group(2))
    mine = [e["seq"] for e in events.values() if e["op_id"] == op_id and e["phase"] == "apply"]
    started, outcome = mine[0], mine[-1]
    assert events[started]["outcome"] == "started" and events[outcome]["outcome"] == "applied"
    assert started <= seq < outcome
    assert events[outcome]["detail"]["undo"]["chain"] == chain, "the trail records it too"


def _no_secret(text: str, r: Receivers) -> None:
    for secret in (CANARY, SECRET_TOKEN, r.webhook_url, r.webhook_url.rsplit("/", 1)[-1],
                   ROUTING_KEY):
        assert secret not in text


async def test_notify_apply_verify_restore(make_config: Callable[..., Config],
                                           receivers: Receivers) -> None:
    s = Session(make_config(), operator="alice", incident="INC-77", mode="live", cause="abuse")
    plan = await s.plan("tell", ["support-bot"])
    assert sorted(c.adapter for c in plan.changes) == ["pagerduty", "slack"]
    assert {c.status for c in plan.changes} == {"observed"}, [c.error for c in plan.changes]
    assert not receivers.messages() and not receivers.events(), "plan must not send anything"
    slack = next(c for c in plan.changes if c.adapter == "slack")
    pd = next(c for c in plan.changes if c.adapter == "pagerduty")
    assert slack.before == {"sent": False} and slack.after["sent"] is True

    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    assert {r.verdict for r in result.results.values()} == {"sent"}

    [msg] = receivers.messages()
    planned, _, chain_line = msg["text"].rpartition("\n")
    assert planned == slack.after["text"], "the plan shows the exact text sent"
    assert_chain_head(s, slack.op_id, chain_line.removeprefix("Chain: "))
    assert chain_line.startswith("Chain: seq ")
    for word in ("INC-77", plan.run_id, "alice", "support-bot", "Support bot", "tell",
                 "Priya Natarajan", "prod", "(UTC)", "Cause: abuse"):
        assert word in msg["text"], word
    assert msg["blocks"] and msg["blocks"][0]["type"] == "section"

    [event] = receivers.events()
    key = f"killswitch-{plan.run_id}-support-bot"
    assert event["event_action"] == "trigger" and event["dedup_key"] == key
    assert pd.after["dedup_key"] == key
    details = event["payload"]["custom_details"]
    assert_chain_head(s, pd.op_id, details["chain"])
    assert details["incident"] == "INC-77" and details["run_id"] == plan.run_id
    assert details["operator"] == "alice" and details["integration"] == "support-bot"
    assert details["runbook"] == "tell" and details["environment"] == "prod"
    assert details["cause"] == "abuse"
    assert event["payload"]["severity"] == "error" and "INC-77" in event["payload"]["summary"]
    assert receivers.pagerduty.state["alerts"][key]["status"] == "triggered"

    undo = s.restore_plan(plan.run_id)
    assert {c.status for c in undo.changes} == {"observed"}
    back = await s.apply(undo, reason="all clear", saved=True)
    assert back.exit_code() == 0, [(r.outcome, r.message) for r in back.results.values()]
    assert {r.verdict for r in back.results.values()} == {"restored", "resolved"}
    first, clear = receivers.messages()
    assert "all clear" in clear["text"] and "restored" in clear["text"]
    assert_chain_head(s, f"{slack.op_id}:undo", clear["text"].rsplit("\nChain: ", 1)[1])
    assert plan.run_id in clear["text"] and "INC-77" in clear["text"]
    resolve = receivers.events()[-1]
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == key
    assert receivers.pagerduty.state["alerts"][key]["status"] == "resolved"

    # Nothing secret reached the receivers, the plans, the verdicts or the audit trail.
    _no_secret(json.dumps(receivers.messages()), receivers)
    _no_secret(json.dumps([receivers.events(), receivers.pagerduty.state["alerts"]]), receivers)
    for p in (plan, undo):
        _no_secret(json.dumps([c.to_dict() for c in p.changes]), receivers)
    for r in (*result.results.values(), *back.results.values()):
        _no_secret(json.dumps(asdict(r), default=str), receivers)
    _no_secret(json.dumps(s.audit.events(), default=str), receivers)
    assert s.audit.verify().ok


async def test_faults_converge_with_one_message(make_config: Callable[..., Config],
                                                receivers: Receivers) -> None:
    s = Session(make_config(attempts=12), operator="bob", incident="INC-78", mode="live")
    plan = await s.plan("tell", ["support-bot"])
    receivers.faults(throttle_rate=0.15, error_rate=0.15, retry_after=0.01)
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    assert len(receivers.messages()) == 1 and len(receivers.events()) == 1
    retried = [e for e in s.audit.events() if e["outcome"] == "retrying"]
    assert all("Slack" in e["detail"]["message"] or "PagerDuty" in e["detail"]["message"]
               for e in retried)
    _no_secret(json.dumps(s.audit.events(), default=str), receivers)


async def test_rate_limit_honours_retry_after(make_config: Callable[..., Config],
                                              receivers: Receivers) -> None:
    s = Session(make_config(attempts=40), operator="bob", mode="live")
    plan = await s.plan("tell", ["support-bot"])
    receivers.faults(throttle_rate=1.0, retry_after=0.02)
    run = asyncio.create_task(s.apply(plan, reason="leak"))
    while min(len(receivers.slack.requests), len(receivers.pagerduty.requests)) < 3:
        await asyncio.sleep(0.01)
    receivers.faults()
    result = await run
    assert result.exit_code() == 0
    assert len(receivers.messages()) == 1 and len(receivers.events()) == 1
    waits = [e["detail"]["wait"] for e in s.audit.events() if e["outcome"] == "retrying"]
    assert len(waits) >= 4 and all(w == 0.02 for w in waits), waits


async def test_every_run_notifies_once(make_config: Callable[..., Config],
                                       receivers: Receivers) -> None:
    s = Session(make_config(), operator="carol", mode="live")
    first = await s.plan("tell", ["support-bot"])
    await s.apply(first, reason="one")
    second = await s.plan("tell", ["support-bot"])
    assert {c.status for c in second.changes} == {"observed"}, "notify is not a no-op"
    result = await s.apply(second, reason="two")
    assert result.exit_code() == 0
    assert len(receivers.messages()) == 2
    keys = [e["dedup_key"] for e in receivers.events()]
    assert keys == [f"killswitch-{first.run_id}-support-bot",
                    f"killswitch-{second.run_id}-support-bot"]


async def test_missing_credentials_name_the_variable(make_config: Callable[..., Config],
                                                     receivers: Receivers,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config()
    monkeypatch.delenv("KS_TEST_SLACK_WEBHOOK")
    monkeypatch.delenv("KS_TEST_PD_KEY")
    s = Session(config, operator="dave", mode="live")
    plan = await s.plan("tell", ["support-bot"])
    errors = sorted(c.error for c in plan.changes)
    assert {c.status for c in plan.changes} == {"error"}
    assert "KS_TEST_PD_KEY" in errors[0] and "routing key" in errors[0]
    assert "KS_TEST_SLACK_WEBHOOK" in errors[1] and "webhook URL" in errors[1]
    result = await s.apply(plan, reason="x")
    assert result.exit_code() == 1 and not receivers.messages() and not receivers.events()


async def test_hard_failures_carry_the_provider_message(make_config: Callable[..., Config],
                                                        receivers: Receivers) -> None:
    s = Session(make_config(), operator="erin", mode="live")
    plan = await s.plan("tell", ["support-bot"])
    receivers.slack.state["hooks"] = []  # the webhook was deleted
    receivers.pagerduty.state["routing_keys"] = []  # the integration key was removed
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 1
    by = {c.adapter: result.results[c.op_id] for c in plan.changes}
    assert by["slack"].outcome == "failed" and "no_service" in by["slack"].message
    assert by["pagerduty"].outcome == "failed" and "Invalid routing key" in \
        by["pagerduty"].message
    assert by["slack"].attempts == 1 and by["pagerduty"].attempts == 1, "400/404: no retry"
    _no_secret(json.dumps(s.audit.events(), default=str), receivers)
