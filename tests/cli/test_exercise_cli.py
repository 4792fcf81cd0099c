"""`killswitch exercise` headless, end to end on the example inventory's full sandbox.

The example config (config.example.toml) is copied with every port moved to a free loopback
port, `sandbox start` runs once for the module, and each test plays through the real
`killswitch` entry point in a subprocess: the three shipped scenarios with `--auto` (every
objective met, the scorecard plausible, every event of the trail in mode `exercise`), one
with a fault that breaks containment (exit 1, objectives reported missed), and the inputs an
exercise refuses (exit 2, nothing recorded).

A scenario's integrations are put back with `sandbox reset` only when an earlier test of the
module touched them (tests may run in any order).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.exercise.scenario import load_scenario
from console.sandbox import standins
from console.sandbox.faults import current_faults
from tests.servers import free_port_pair

REPO = Path(__file__).resolve().parents[2]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")},
       "KILLSWITCH_OPERATOR": "drill-lead"}
SHIPPED = ("leaked-key", "personal-data", "runaway-batch")
AAR_HEADINGS = ("## Summary", "## Timeline", "## Objectives", "## Strengths",
                "## Areas for improvement", "## Action items")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example_config_on_free_ports(root: Path) -> Path:
    """config.example.toml with every sandbox port moved to a free one, in ``root``."""
    src = REPO / "config.example.toml"
    example = load_config(src)
    defaults: dict[str, int] = {"unleash": 4242, "unleash-pg": 5433}
    for module in standins.modules():
        defaults[module.STANDIN.name] = module.DEFAULT_PORT
        for cls, default in getattr(module, "extra_standins", lambda _c: [])(example):
            defaults[cls.name] = default
    text = src.read_text()
    ports: dict[str, int] = {}
    for name, default in defaults.items():
        ports[name] = _free_port()
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
    bao, moto = free_port_pair(), _free_port()
    text = text.replace("127.0.0.1:8299", f"127.0.0.1:{bao}")
    text = text.replace("127.0.0.1:5055", f"127.0.0.1:{moto}")
    table = ", ".join(f'"{k}" = {v}' for k, v in ports.items())
    assert "openbao_port = 8299" in text and "max_targets = 10" in text
    text = text.replace("openbao_port = 8299",
                        f"openbao_port = {bao}\nmoto_port = {moto}\nports = {{ {table} }}")
    # proof of death: quick rechecks (the window stays the default 30 s)
    text = text.replace("max_targets = 10", "max_targets = 10\nproof_interval = 0.5")
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    config.write_text(text)
    return config


def ks(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real entry point (`python -m console` runs `console.cli:main`)."""
    return subprocess.run([sys.executable, "-m", "console", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=config.parent, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=ENV)


@dataclass
class World:
    """The module's sandbox: its config and the integrations tests have acted on."""

    config: Path
    touched: set[str] = field(default_factory=set)

    def fresh(self, integrations: tuple[str, ...] | list[str]) -> None:
        """Reset the sandbox if an earlier test acted on one of ``integrations``."""
        if self.touched & set(integrations):
            r = ks(self.config, "sandbox", "reset")
            assert r.returncode == 0, r.stdout + r.stderr
            self.touched.clear()
        self.touched |= set(integrations)

    def events(self, sql: str = "", *params: object) -> list[dict[str, Any]]:
        db = self.config.parent / ".sandbox" / "audit.db"
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(f"SELECT * FROM events {sql} ORDER BY seq", params).fetchall()
        finally:
            conn.close()
        out = []
        for row in rows:
            event = dict(row)
            event["detail"] = json.loads(event["detail"]) if event["detail"] else {}
            out.append(event)
        return out


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="ks-exercise-"))
    root.chmod(0o711)  # Unleash's PostgreSQL runs as the postgres user: it must reach <root>
    config = example_config_on_free_ports(root)
    r = ks(config, "sandbox", "start")
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield World(config)
    finally:
        ks(config, "sandbox", "stop")
        shutil.rmtree(root, ignore_errors=True)


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr


def test_list_json_names_the_three_shipped_scenarios(world: World) -> None:
    r = ks(world.config, "exercise", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == set(SHIPPED)
    for row in rows.values():
        assert row["title"] and row["integrations"] and row["injects"] > 0
        assert row["objectives"] and all(isinstance(o, str) for o in row["objectives"])
    text = ks(world.config, "exercise", "list")
    assert text.returncode == 0 and all(name in text.stdout for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_plays_headless_with_every_objective_met(
        world: World, name: str) -> None:
    scenario = load_scenario(name, load_config(world.config))
    world.fresh(scenario.integrations)
    out = world.config.parent / f"{name}-aar.md"
    r = ks(world.config, "exercise", "run", name, "--auto", "--speed", "4", "--json",
           "--out", str(out))
    no_traceback(r)
    assert r.returncode == 0, r.stdout + r.stderr
    card = json.loads(r.stdout)

    # the scorecard: every objective met, times plausible, injects with responses
    assert card["scenario"] == name and card["all_objectives_met"] is True
    assert [o["id"] for o in card["objectives"]] == [o.id for o in scenario.objectives]
    assert all(o["met"] for o in card["objectives"]), card["objectives"]
    assert re.fullmatch(rf"EX-{name}-\d{{8}}T\d{{6}}(-\d+)?", card["exercise_id"])
    assert card["started"] < card["ended"]
    assert card["time_to_first_action_s"] > 0
    for key in ("applied", "failed", "retried", "refused", "skipped"):
        assert isinstance(card["operations"][key], int)
    assert card["operations"]["applied"] > 0 and card["operations"]["failed"] == 0
    for o in scenario.objectives:
        integ = card["integrations"].get(o.integration, {})
        if o.kind == "contained":
            kps = o.kill_points or tuple(integ["kill_points"])
            times = [integ["kill_points"][kp] for kp in kps]
            assert all(t is not None and t > 0 for t in times), (o.id, integ)
            assert max(times) * 4 <= (o.within or float("inf"))
            if integ["time_to_contain_s"] is not None:  # every listed kill point off
                assert integ["time_to_contain_s"] >= max(times)
        if o.kind == "proof":
            assert integ["time_to_proof_s"] > 0 and card["time_to_proof_s"] > 0
    if card["time_to_contain_s"] is not None:
        assert card["time_to_contain_s"] > 0
    assert [i["at_s"] for i in card["injects"]] == [i.at for i in scenario.injects]
    responses = [i["response"] for i in card["injects"] if i["response"]]
    assert responses and all(re.fullmatch(r"first action [\d.]+ s later", x)
                             for x in responses)
    assert all(i["consent"] for i in card["irreversible"])

    # the trail: every event is an exercise event; the exercise's own events in order
    assert {e["mode"] for e in world.events()} == {"exercise"}
    events = world.events("WHERE incident = ?", card["exercise_id"])
    assert {e["mode"] for e in events} == {"exercise"}
    own = [e for e in events if e["phase"] == "exercise"]
    assert all(e["run_id"] == card["exercise_id"] for e in own)
    assert all(e["detail"]["scenario"] == name for e in own)
    actions = [e["action"] for e in own]
    assert actions[0] == "exercise.start" and actions[-1] == "exercise.end"
    assert actions.count("inject") == len(scenario.injects)
    assert [e["target"] for e in own if e["action"] == "objective"] == \
        [o.id for o in scenario.objectives]
    assert {e["outcome"] for e in own if e["action"] == "objective"} == {"met"}
    runs = {e["run_id"] for e in events if e["phase"] == "run" and e["outcome"] == "started"}
    assert len(runs) >= len({s.runbook for s in scenario.response})
    faults = [e for e in own if e["action"] == "fault"]
    assert {e["outcome"] for e in faults} <= {"applied"}, [e["detail"] for e in faults]
    assert [i["fault_outcome"] for i in card["injects"] if i["fault"]] == \
        ["applied"] * sum(1 for i in scenario.injects if i.fault is not None)
    assert not current_faults(load_config(world.config))  # every fault cleared at the end

    # the after-action report
    text = out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    positions = [text.index(h) for h in AAR_HEADINGS]
    assert positions == sorted(positions)
    assert card["exercise_id"] in text and "| Issue | Action | Owner | Due |" in text


def test_personal_data_meets_a_held_lock_then_retries(world: World) -> None:
    """The scripted step that meets the data protection office's lock is recorded as
    refused and retried once the lock is released; the lock fault is cleared."""
    scenario = load_scenario("personal-data", load_config(world.config))
    world.fresh(scenario.integrations)
    r = ks(world.config, "exercise", "run", "personal-data", "--auto", "--speed", "8",
           "--json")
    no_traceback(r)
    assert r.returncode == 0, r.stdout + r.stderr
    card = json.loads(r.stdout)
    assert card["operations"]["refused"] >= 1
    own = [e for e in world.events("WHERE incident = ?", card["exercise_id"])
           if e["phase"] == "exercise"]
    refused = [e for e in own if e["action"] == "response"]
    assert refused and refused[0]["outcome"] == "refused"
    assert "dana@data-protection" in refused[0]["detail"]["message"]
    faults = [(e["action"], e["outcome"], e["detail"]["fault"]["kind"]) for e in own
              if e["action"] in ("fault", "fault.clear")]
    assert ("fault", "applied", "lock") in faults and ("fault.clear", "applied", "lock") in faults
    held = sqlite3.connect(world.config.parent / ".sandbox" / "audit.db").execute(
        "SELECT count(*) FROM locks").fetchone()[0]
    assert held == 0


def test_a_fault_that_breaks_containment_is_reported_missed(world: World,
                                                            tmp_path: Path) -> None:
    """leaked-key with Vault down for the whole exercise: the Vault copy cannot be
    disabled (and the unlisted copy cannot even be planted: that fault fails, the exercise
    goes on). Exit 1; the credentials and no-live-copy objectives are reported missed."""
    text = (REPO / "runbooks" / "exercises" / "leaked-key.toml").read_text()
    text += ('\n[[injects]]\nat = "T+00:00"\nmessage = "Vault is unreachable."\n'
             'fault = { backend = "vault-sandbox", down = true }\n')
    scenario_file = tmp_path / "leaked-key.toml"
    scenario_file.write_text(text)
    world.fresh(["support-bot"])
    r = ks(world.config, "exercise", "run", str(scenario_file), "--auto", "--speed", "4",
           "--json")
    no_traceback(r)
    assert r.returncode == 1, r.stdout + r.stderr + json.dumps(
        [e["detail"] for e in world.events("WHERE action = 'fault'")])
    card = json.loads(r.stdout)
    result = {o["id"]: o for o in card["objectives"]}
    assert card["all_objectives_met"] is False
    assert result["support-bot-credentials-off"]["met"] is False
    assert result["no-copy-left-alive"]["met"] is False
    assert card["integrations"]["support-bot"]["kill_points"]["credentials"] is None
    assert card["operations"]["failed"] >= 1
    own = [e for e in world.events("WHERE incident = ?", card["exercise_id"])
           if e["phase"] == "exercise"]
    outcomes = {(e["action"], e["outcome"], e["target"]) for e in own}
    assert ("fault", "applied", "vault-sandbox") in outcomes
    assert ("fault", "failed", "vault-sandbox") in outcomes  # the planted copy
    assert ("objective", "missed", "no-copy-left-alive") in outcomes
    # the scorecard says which inject's fault did not take effect, and why
    said = [(i["fault"]["kind"], i["fault"]["backend"], i["fault_outcome"],
             bool(i.get("fault_error"))) for i in card["injects"] if i["fault"]]
    assert ("backend", "vault-sandbox", "applied", False) in said  # Vault down
    assert ("unlisted-copy", "vault-sandbox", "failed", True) in said  # could not be planted
    assert own[-1]["action"] == "exercise.end"
    assert not current_faults(load_config(world.config))  # Vault is back up


def test_a_config_with_a_real_backend_is_refused_and_nothing_recorded(
        world: World, tmp_path: Path) -> None:
    text = world.config.read_text().replace(
        '[backends.openai-sandbox]\ntype = "openai"\nsandbox = true\n',
        '[backends.openai-sandbox]\ntype = "openai"\n')
    assert "sandbox = true" in text and text != world.config.read_text()
    config = tmp_path / "config.toml"
    config.write_text(text)
    r = ks(config, "exercise", "run", "leaked-key", "--auto", "--speed", "4")
    no_traceback(r)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "openai-sandbox" in r.stderr and "sandbox" in r.stderr
    assert not (tmp_path / ".sandbox" / "audit.db").exists()
    assert r.stdout == ""


@pytest.mark.parametrize(("args", "says"), [
    (("run", "leaked-key"), "killswitch exercise"),
    (("run", "no-such-scenario", "--auto"), "no scenario named 'no-such-scenario'"),
    (("run", "leaked-kee", "--auto"), "did you mean 'leaked-key'"),
    (("run", "leaked-key", "--auto", "--speed", "0"), "--speed"),
    (("run", "BROKEN", "--auto"), "broken.toml:3"),
])
def test_bad_input_exits_2_with_a_clear_message(world: World, tmp_path: Path,
                                                args: tuple[str, ...], says: str) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('title = "t"\nbriefing = "b"\nintegrations = [support-bot]\n')
    args = tuple(str(broken) if a == "BROKEN" else a for a in args)
    before = len(world.events()) if (world.config.parent / ".sandbox" / "audit.db").exists() \
        else 0
    r = ks(world.config, "exercise", *args)
    no_traceback(r)
    assert r.returncode == 2, r.stdout + r.stderr
    assert says in r.stderr, r.stderr
    after = len(world.events()) if (world.config.parent / ".sandbox" / "audit.db").exists() \
        else 0
    assert after == before
