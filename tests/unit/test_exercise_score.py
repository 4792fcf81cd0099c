"""The scorecard and after-action report, measured from trail events only: synthetic events
for every rule, then the events of a real run on the fake backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.fake import FakeAdapter
from console.audit import AuditLog
from console.config import load_config
from console.engine.service import Session
from console.exercise.scenario import Fault, Inject, Objective, Scenario
from console.exercise.score import objective_records, render_aar, score, start_detail

EX = "EX-drill-20260101T090000"
T0 = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
JSON_NAMES = {"scenario", "exercise_id", "started", "ended", "time_to_first_action_s",
              "time_to_contain_s", "integrations", "time_to_proof_s", "operations",
              "irreversible", "objectives", "injects", "all_objectives_met"}


def scenario(*objectives: Objective, integrations: tuple[str, ...] = ("bot",)) -> Scenario:
    return Scenario(
        name="drill", title="A drill", briefing="Read this.", integrations=integrations,
        injects=(Inject(0.0, "alert", None, 5),
                 Inject(8.0, "", Fault(backend="provider", settings={"latency": 1.0}), 9)),
        objectives=objectives, response=(), path=Path("drill.toml"))


def ev(t: float, phase: str, action: str, outcome: str, *, run: str = "r-1",
       integration: str | None = None, target: str | None = None, op: str | None = None,
       detail: dict[str, Any] | None = None, incident: str = EX) -> dict[str, Any]:
    ts = (T0 + timedelta(seconds=t)).isoformat().replace("+00:00", "Z")
    return {"ts": ts, "run_id": run, "incident": incident, "mode": "exercise",
            "integration": integration, "step": None, "op_id": op, "phase": phase,
            "action": action, "target": target, "outcome": outcome, "detail": detail or {}}


def change(op: str, action: str, target: str, reversible: bool = True,
           integration: str = "bot") -> dict[str, Any]:
    return {"op_id": op, "integration": integration, "action": action, "target": target,
            "backend": target.split(":")[0], "reversible": reversible, "status": "observed"}


def run_events(t: float, run: str, changes: list[dict[str, Any]], *,
               consent: bool = False) -> list[dict[str, Any]]:
    return [ev(t, "run", "contain", "started", run=run,
               detail={"plan": {"integrations": ["bot"], "changes": changes},
                       "allow_irreversible": consent})]


def op(t: float, run: str, c: dict[str, Any], outcome: str, phase: str = "apply",
       **detail: Any) -> dict[str, Any]:
    return ev(t, phase, c["action"], outcome, run=run, integration=c["integration"],
              target=c["target"], op=c["op_id"], detail=detail)


FLAG = change("bot/flags/0", "flag.disable", "flags:bot-flag")
KEY = change("bot/revoke/0", "credential.disable", "provider:bot-key", reversible=False)
COPY = change("bot/revoke/1", "credential.disable", "store:bot-copy")


def trail(*, consent: bool = True, speed: float = 1.0, copies: int | None = 0) -> list[dict]:
    """A full exercise: start, two injects, one run with a retry, verify, proof, end."""
    events = [
        ev(0, "exercise", "exercise.start", "started", run=EX,
           detail={"scenario": "drill", "speed": speed,
                   "kill_points": {"bot": ["credentials", "flags"]}}),
        ev(0.5, "exercise", "inject", "shown", run=EX,
           detail={"scenario": "drill", "at": 0.0, "message": "alert", "fault": None}),
        ev(1, "plan", "contain", "planned", detail={"changes": 3}),
        *run_events(2, "r-1", [FLAG, KEY, COPY], consent=consent),
        op(3, "r-1", FLAG, "started"), op(4, "r-1", FLAG, "applied"),
        op(5, "r-1", KEY, "started"), op(5.5, "r-1", KEY, "retrying", attempt=1),
        op(6, "r-1", COPY, "started"),
        ev(8, "exercise", "inject", "shown", run=EX,
           detail={"scenario": "drill", "at": 8.0, "message": "",
                   "fault": {"kind": "backend", "backend": "provider",
                             "settings": {"latency": 1.0}}}),
        op(9, "r-1", KEY, "applied"), op(9.5, "r-1", COPY, "applied"),
        op(10, "r-1", FLAG, "ok", phase="verify", state="dead"),
        op(11, "r-1", KEY, "ok", phase="verify", state="dead"),
        op(12, "r-1", COPY, "ok", phase="verify", state="dead"),
        ev(15, "verify", "credential.proof", "revoked", run="r-1", integration="bot",
           target="provider", op="bot/proof"),
        ev(16, "run", "contain", "finished", run="r-1", detail={"exit_code": 0}),
    ]
    if copies is not None:
        events.append(ev(17, "exercise", "scan", "clean" if not copies else "live", run=EX,
                         integration="bot", target="bot",
                         detail={"live_copies": ["store:x"] * copies, "problems": []}))
    events.append(ev(18, "exercise", "exercise.end", "finished", run=EX))
    return events


ALL = (Objective("off", "contained", "bot", (), 60.0),
       Objective("flags", "contained", "bot", ("flags",), 10.0),
       Objective("dead", "proof", "bot", (), 20.0),
       Objective("consent", "no-unconsented-irreversible"),
       Objective("copies", "no-live-copy", "bot"))


def test_a_well_run_exercise_meets_every_objective():
    card = score(trail(), scenario(*ALL), EX)
    data = card.to_json()
    assert set(data) == JSON_NAMES
    assert data["scenario"] == "drill" and data["exercise_id"] == EX
    assert data["started"] == "2026-01-01T09:00:00Z" and data["ended"].endswith("09:00:18Z")
    assert data["time_to_first_action_s"] == 3.0
    assert data["integrations"] == {"bot": {"time_to_contain_s": 12.0,
                                            "kill_points": {"credentials": 12.0, "flags": 10.0},
                                            "time_to_proof_s": 15.0}}
    assert data["time_to_contain_s"] == 12.0 and data["time_to_proof_s"] == 15.0
    assert data["operations"] == {"applied": 3, "failed": 0, "retried": 1, "refused": 0,
                                  "skipped": 0}
    assert data["irreversible"] == [{"target": "provider:bot-key", "consent": True}]
    assert [(o["id"], o["met"]) for o in data["objectives"]] == [
        ("off", True), ("flags", True), ("dead", True), ("consent", True), ("copies", True)]
    assert data["all_objectives_met"] is True
    assert data["injects"] == [
        {"at_s": 0.0, "message": "alert", "fault": None, "fault_outcome": None,
         "response": "first action 2.5 s later"},
        {"at_s": 8.0, "message": "", "fault": {"kind": "backend", "backend": "provider",
                                              "settings": {"latency": 1.0}},
         "fault_outcome": None, "response": None}]


@pytest.mark.parametrize("outcome", ["applied", "failed"])
def test_an_inject_says_whether_its_fault_took_effect(outcome: str) -> None:
    """A fault the sandbox refused did not happen: the scorecard says so on its inject,
    with why, and the text scorecard marks it (a facilitator must not believe the team
    played through an outage that never came)."""
    from console.exercise.cli import render_scorecard

    fault = {"kind": "backend", "backend": "provider", "settings": {"latency": 1.0}}
    events = trail()
    at = next(i for i, e in enumerate(events) if (e.get("detail") or {}).get("fault"))
    events.insert(at + 1, ev(8.1, "exercise", "fault", outcome, run=EX, target="provider",
                             detail={"fault": fault, "message": "nothing that takes faults "
                                     "answers at http://127.0.0.1:9" if outcome == "failed"
                                     else "provider: latency 1 s"}))
    card = score(events, scenario(*ALL), EX)
    text = render_scorecard(card, scenario(*ALL))
    (said,) = [i for i in card.to_json()["injects"] if i["fault"]]
    assert said["fault_outcome"] == outcome
    if outcome == "failed":
        assert said["fault_error"].startswith("nothing that takes faults answers")
        assert "[FAULT NOT APPLIED]" in text
    else:
        assert "fault_error" not in said and "NOT APPLIED" not in text


def test_deadlines_are_judged_in_exercise_time():
    # measured 10 s real for flags; at speed 4 that is 40 s of exercise time > 5 s
    card = score(trail(speed=4.0), scenario(*ALL), EX)
    met = {o.id: o for o in card.objectives}
    assert not met["flags"].met and "too late" in met["flags"].detail
    assert "T+00:40" in met["flags"].detail
    assert met["off"].met  # 12 s x 4 = 48 s <= 60 s
    assert not met["dead"].met  # 15 s x 4 = 60 s > 20 s
    assert card.to_json()["all_objectives_met"] is False


def test_irreversible_without_consent_and_live_copies_are_missed():
    card = score(trail(consent=False, copies=2), scenario(*ALL), EX)
    met = {o.id: o for o in card.objectives}
    assert card.irreversible == [{"target": "provider:bot-key", "consent": False}]
    assert not met["consent"].met and "provider:bot-key" in met["consent"].detail
    assert not met["copies"].met and "2 live copies" in met["copies"].detail
    card = score(trail(copies=None), scenario(*ALL), EX)
    copies = next(o for o in card.objectives if o.id == "copies")
    assert not copies.met and "no scan" in copies.detail


def test_a_target_never_verified_leaves_its_kill_point_on():
    events = [e for e in trail()
              if not (e["phase"] == "verify" and e["target"] == "store:bot-copy")]
    events.insert(-3, op(12, "r-1", COPY, "failed", phase="verify", state="live"))
    card = score(events, scenario(*ALL), EX)
    assert card.integrations["bot"].kill_points == {"credentials": None, "flags": 10.0}
    assert card.integrations["bot"].time_to_contain_s is None
    assert card.time_to_contain_s is None
    off = next(o for o in card.objectives if o.id == "off")
    assert not off.met and "credentials of bot never verified off" in off.detail
    # a later run that verifies the copy completes the kill point
    events += [*run_events(20, "r-2", [dict(COPY, op_id="bot/revoke/0")]),
               ev(21, "apply", "credential.disable", "noop", run="r-2", integration="bot",
                  target="store:bot-copy", op="bot/revoke/0"),
               ev(22, "verify", "credential.disable", "ok", run="r-2", integration="bot",
                  target="store:bot-copy", op="bot/revoke/0")]
    assert score(events, scenario(*ALL), EX).integrations["bot"].kill_points["credentials"] == 22


def test_a_listed_kill_point_no_run_touched_is_not_contained():
    events = trail()
    events[0]["detail"]["kill_points"] = {"bot": ["credentials", "flags", "egress"]}
    card = score(events, scenario(*ALL), EX)
    assert card.integrations["bot"].kill_points["egress"] is None
    assert not next(o for o in card.objectives if o.id == "off").met
    assert next(o for o in card.objectives if o.id == "flags").met


def test_refusals_failures_and_skips_are_counted():
    events = trail()
    events[2:2] = [ev(1.5, "run", "kill-switch", "refused", run="r-0",
                      detail={"message": "bot is locked by run r-x"})]
    events.insert(-2, op(16.5, "r-1", FLAG, "failed", message="503"))
    events.insert(-2, op(16.6, "r-1", FLAG, "skipped"))
    events.insert(-2, ev(16.7, "exercise", "response", "refused", run=EX,
                         detail={"runbook": "kill-switch", "message": "no consent"}))
    card = score(events, scenario(*ALL), EX)
    assert card.operations == {"applied": 3, "failed": 1, "retried": 1, "refused": 2,
                               "skipped": 1}
    texts = [text for _, text in card.timeline]
    assert any("refused: bot is locked" in t for t in texts)


def test_events_of_other_exercises_are_ignored_and_the_id_is_found():
    other = [ev(4, "apply", "flag.disable", "applied", run="r-9", integration="bot",
                target="flags:bot-flag", incident="EX-other")]
    card = score(trail() + other, scenario(*ALL))
    assert card.exercise_id == EX and card.operations["applied"] == 3


def test_no_events_scores_nothing_met():
    card = score([], scenario(*ALL), EX)
    data = card.to_json()
    assert data["time_to_contain_s"] is None and data["started"] is None
    assert not data["all_objectives_met"]
    assert data["integrations"] == {"bot": {"time_to_contain_s": None, "kill_points": {},
                                            "time_to_proof_s": None}}


def test_objective_records_for_the_player():
    card = score(trail(consent=False), scenario(*ALL), EX)
    records = objective_records(card)
    assert [r["outcome"] for r in records] == ["met", "met", "met", "missed", "met"]
    assert all(r["phase"] == "exercise" and r["action"] == "objective" for r in records)
    assert records[0]["detail"]["scenario"] == "drill"


def test_after_action_report_has_every_section():
    sc = scenario(*ALL)
    card = score(trail(consent=False, speed=4.0), sc, EX)
    text = render_aar(card, sc)
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## Summary", "## Timeline", "## Objectives", "## Strengths",
                     "## Areas for improvement", "## Action items"]
    assert "# After-action report: A drill" in text
    assert "| Issue | Action | Owner | Due |" in text and "| TBD | TBD |" in text
    assert "**missed**" in text and "provider:bot-key" in text
    assert "T+00:08" in text  # the inject with no response, in the injects table
    assert "first action 2.5 s later" in text
    assert "| T+00:40 (10 s) | bot: every flags target verified off |" in text


# --------------------------------------------------------------------------- real events


RUNBOOK = """
name = "contain"
description = "flags off, then credentials"
[[steps]]
id = "flags-off"
action = "flag.disable"
[[steps]]
id = "revoke"
action = "credential.disable"
needs = ["flags-off"]
"""


def _session(tmp_path: Path) -> Session:
    FakeAdapter.reset()
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "contain.toml").write_text(RUNBOOK)
    (tmp_path / "config.toml").write_text("\n".join([
        "[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
        "proof_window = 0", "proof_interval = 0.01", "",
        "[backends.provider]", 'type = "fake"', 'probe = "switch"', "sandbox = true", "",
        "[backends.store]", 'type = "fake"', "reveal = true", "sandbox = true", "",
        "[backends.flags]", 'type = "fake"', "sandbox = true", "",
        "[[integrations]]", 'id = "bot"', 'name = "Bot"', 'owner = "t"',
        'environment = "prod"', 'provider = "openai"',
        "[[integrations.credentials]]", 'backend = "provider"', 'key = "bot-key"',
        "[[integrations.credentials]]", 'backend = "store"', 'key = "bot-key-copy"',
        "[[integrations.flags]]", 'backend = "flags"', 'key = "bot-flag"', ""]))
    config = load_config(tmp_path / "config.toml")
    return Session(config, operator="tester", incident=EX, mode="exercise")


async def test_score_from_a_real_run_on_the_fake_backend(tmp_path: Path) -> None:
    session = _session(tmp_path)
    sc = scenario(Objective("off", "contained", "bot", (), 600.0),
                  Objective("dead", "proof", "bot", (), 600.0),
                  Objective("consent", "no-unconsented-irreversible"),
                  Objective("quick", "contained", "bot", ("flags",), 0.001))
    audit: AuditLog = session.audit
    base = {"run_id": EX, "incident": EX, "operator": "tester", "mode": "exercise",
            "phase": "exercise"}
    audit.append(**base, action="exercise.start", outcome="started",
                 detail=start_detail(sc, session.config, speed=1000.0))
    audit.append(**base, action="inject", outcome="shown",
                 detail={"scenario": "drill", "at": 0.0, "message": "alert", "fault": None})
    result = await session.apply(await session.plan("contain", ["bot"]), reason="drill")
    assert result.exit_code() == 0
    audit.append(**base, action="exercise.end", outcome="finished", detail={})

    card = score(audit.events(incident=EX), sc, EX)
    bot = card.integrations["bot"]
    assert set(bot.kill_points) == {"credentials", "flags"}
    assert all(t is not None and t >= 0 for t in bot.kill_points.values())
    assert bot.time_to_contain_s == max(bot.kill_points.values())  # type: ignore[type-var]
    assert bot.time_to_proof_s is not None and bot.time_to_proof_s >= bot.kill_points["flags"]
    assert card.time_to_first_action_s is not None
    assert card.operations["applied"] == 3 and card.operations["failed"] == 0
    assert card.irreversible == []
    met = {o.id: o.met for o in card.objectives}
    assert met["consent"] and not met["quick"]  # 0.001 s of exercise time: never
    assert card.time_to_contain_s is not None
    # 600 s of exercise time at speed 1000 is 0.6 s real: met unless the machine is slower
    assert met["off"] == (card.time_to_contain_s * 1000.0 <= 600.0)
    assert card.injects[0].response is not None
    assert "## Action items" in render_aar(card, sc)
