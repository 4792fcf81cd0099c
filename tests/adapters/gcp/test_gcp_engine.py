"""The GCP adapters through the engine, with 30 % of the stand-in's answers faulty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.engine.service import Session
from console.errors import IrreversibleNotAllowed
from console.sandbox import api_gcp
from console.sandbox.standin import Faults
from tests.adapters.gcp.conftest import CANARY, SA, SECRET, Gcp

CONTAIN = """
name = "contain"
description = "disable credentials"
[[steps]]
id = "revoke"
action = "credential.disable"
"""
DESTROY = """
name = "destroy"
description = "irreversible"
[[steps]]
id = "destroy"
action = "credential.destroy"
"""


def write_config(root: Path, endpoint: str, attempts: int = 15) -> Config:
    rb = root / "runbooks"
    rb.mkdir(exist_ok=True)
    (rb / "contain.toml").write_text(CONTAIN)
    (rb / "destroy.toml").write_text(DESTROY)
    (root / "config.toml").write_text(f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_attempts = {attempts}

[backends.gcp-sm]
type = "gcp-secrets"
endpoint = "{endpoint}"
anonymous = true
project = "ks-test"

[backends.gcp-keys]
type = "gcp-keys"
endpoint = "{endpoint}"
anonymous = true

[[integrations]]
id = "search-embeddings"
name = "Search embeddings"
owner = "team-search"
environment = "dev"
status = "approved"
provider = "vertex"

[[integrations.credentials]]
backend = "gcp-keys"
service_account = "{SA}"

[[integrations.credentials]]
backend = "gcp-sm"
name = "{SECRET}"
""")
    return load_config(root / "config.toml")


def snapshot(gcp: Gcp) -> tuple[dict[str, str], dict[str, bool]]:
    return gcp.versions(), {k: v["disabled"] for k, v in gcp.keys().items()}


async def test_contain_and_restore_converge_under_faults(gcp: Gcp, tmp_path: Path) -> None:
    config = write_config(tmp_path, gcp.endpoint)
    original = snapshot(gcp)
    gcp.app.faults = Faults(throttle_rate=0.15, error_rate=0.15, retry_after=0.01)
    s = Session(config, operator="tester", incident="INC-GCP", mode="live")

    plan = await s.plan("contain", ["search-embeddings"])
    assert len(plan.changes) == 2 and {c.status for c in plan.changes} == {"observed"}
    assert snapshot(gcp) == original, "plan must not change anything"
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    assert all(r.verified and r.verdict == "dead" for r in result.results.values())
    assert set(gcp.versions().values()) == {"DISABLED"}
    assert not any(v["disabled"] is False and v["key_type"] == "USER_MANAGED"
                   for v in gcp.keys().values())

    again = await s.plan("contain", ["search-embeddings"])
    assert {c.status for c in again.changes} == {"noop"}
    second = await s.apply(again, reason="again")
    assert second.exit_code() == 0 and second.count("noop") == 2

    undo = s.restore_plan(plan.run_id)
    back = await s.apply(undo, reason="all clear", saved=True)
    assert back.exit_code() == 0, [(r.outcome, r.message) for r in back.results.values()]
    assert snapshot(gcp) == original, "restore brings back the exact prior state"
    assert s.audit.verify().ok
    trail = json.dumps(s.audit.events())
    assert CANARY not in trail and CANARY[10:] not in trail
    retried = [e for e in s.audit.events() if e["outcome"] == "retrying"]
    assert all("Google" in e["detail"]["message"] or "Secret Manager" in e["detail"]["message"]
               or "IAM" in e["detail"]["message"] for e in retried)


async def test_destroy_needs_consent(gcp: Gcp, tmp_path: Path) -> None:
    config = write_config(tmp_path, gcp.endpoint)
    s = Session(config, operator="tester", mode="live")
    plan = await s.plan("destroy", ["search-embeddings"])
    assert plan.changes and not any(c.reversible for c in plan.changes)
    with pytest.raises(IrreversibleNotAllowed) as err:
        await s.apply(plan, reason="leak")
    assert err.value.exit_code == 3
    assert "DESTROYED" not in gcp.versions().values() and len(gcp.keys()) == 4


async def test_hard_failure_reports_the_provider_message(gcp: Gcp, tmp_path: Path) -> None:
    config = write_config(tmp_path, gcp.endpoint, attempts=2)
    s = Session(config, operator="tester", mode="live")
    plan = await s.plan("contain", ["search-embeddings"])
    gcp.app.faults = Faults(error_rate=1.0, error_status=500)
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 1
    messages = [r.message for r in result.results.values()]
    assert all("The server had an error" in m for m in messages), messages


def test_seed_from_inventory(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:8383")
    assert api_gcp.wanted(config)
    state = api_gcp.seed(config)
    secret = state["secrets"][SECRET]
    assert {k: v["state"] for k, v in secret["versions"].items()} == {
        "1": "DISABLED", "2": "ENABLED"}
    keys = state["service_accounts"][SA]["keys"]
    assert sorted(k["key_type"] for k in keys.values()) == ["SYSTEM_MANAGED", "USER_MANAGED"]
    assert state["service_accounts"][SA]["project"] == "ks-test"
