"""A saved plan is untrusted input: edits that recompute the hash are still refused whole.

Each test edits a real saved plan the way an attacker (or a careless operator) would, puts a
valid hash back, and runs it through the real `killswitch` entry point: exit 3, every
offending change named, and no side effect anywhere (the fake backend's shared state file
records every apply).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from console.engine.model import Plan
from tests.cli.conftest import Cli

KEY = "plan-signing-key-for-tests"


def save(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Path:
    path = cli.root / "plan.json"
    r = cli("plan", *args, "--out", str(path), env=env)
    assert r.returncode == 0, r.stderr
    return path


def rewrite(path: Path, edit: Any) -> None:
    """Apply ``edit`` to the plan data and put a matching hash back (as an attacker can)."""
    data = json.loads(path.read_text())
    edit(data)
    data.pop("signature", None)
    data["hash"] = Plan.hash_of({k: v for k, v in data.items() if k != "hash"})
    path.write_text(json.dumps(data))


def run_plan(cli: Cli, path: Path, *extra: str,
             env: dict[str, str] | None = None) -> Any:
    return cli("run", "--plan", str(path), "--yes", "--reason", "x", *extra, env=env)


def test_retargeted_change_is_refused_and_nothing_is_locked_or_applied(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")
    original = path.read_text()

    def retarget(d: dict[str, Any]) -> None:
        d["changes"][1].update(integration="app-2", target="sim:app-2-key",
                               ref={"backend": "sim", "key": "app-2-key"}, op_id="app-2/revoke/0")

    rewrite(path, retarget)
    r = run_plan(cli, path)
    assert r.returncode == 3, r.stderr
    assert "app-2/revoke/0 (credential.disable sim:app-2-key)" in r.stderr
    assert "outside the plan's integrations" in r.stderr and "refused whole" in r.stderr
    # the same edit with app-2 added to the plan's integrations: the file no longer lines up
    # with what the runbook plans for app-0 and app-2
    path.write_text(original)
    rewrite(path, lambda d: (retarget(d), d["integrations"].append("app-2")))
    r = run_plan(cli, path)
    assert r.returncode == 3, r.stderr
    assert "app-0/revoke/0" in r.stderr and "app-2/flags-off/0" in r.stderr
    assert r.stderr.count("the saved plan lacks it") == 2
    assert cli.state["applied"] == []
    tables = cli.tables()
    assert "locks" not in tables or cli.rows("SELECT * FROM locks") == []


def test_irreversible_marked_reversible_still_needs_consent(cli: Cli) -> None:
    path = save(cli, "destroy", "app-0")
    rewrite(path, lambda d: d["changes"][0].update(reversible=True, note=""))
    r = run_plan(cli, path)
    assert r.returncode == 3, r.stderr
    assert "--allow-irreversible" in r.stderr
    assert cli.state["applied"] == []
    r = run_plan(cli, path, "--allow-irreversible")
    assert r.returncode == 0, r.stderr
    assert [a["action"] for a in cli.state["applied"]] == ["credential.destroy"]  # type: ignore[index]


def test_change_outside_the_plans_integrations_is_refused_not_dropped(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")

    def smuggle(d: dict[str, Any]) -> None:
        extra = dict(d["changes"][0], integration="app-3", op_id="app-3/flags-off/0",
                     target="sim:app-3-flag", ref={"backend": "sim", "key": "app-3-flag"})
        d["changes"].append(extra)

    rewrite(path, smuggle)
    r = run_plan(cli, path)
    assert r.returncode == 3, r.stderr
    assert "app-3/flags-off/0" in r.stderr and "outside the plan's integrations" in r.stderr
    assert cli.state["applied"] == []


def test_target_outside_the_inventory_is_refused(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")
    rewrite(path, lambda d: d["changes"][1].update(
        target="sim:payroll-key", ref={"backend": "sim", "key": "payroll-key"}))
    r = run_plan(cli, path)
    assert r.returncode == 3, r.stderr
    assert "sim:payroll-key" in r.stderr and "not a change runbook" in r.stderr
    assert cli.state["applied"] == []


def test_integration_outside_the_inventory_is_refused(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")
    rewrite(path, lambda d: d["integrations"].append("ghost"))
    r = run_plan(cli, path)
    assert r.returncode == 3 and "ghost" in r.stderr and "not in the inventory" in r.stderr
    assert cli.state["applied"] == []


def test_edited_step_dag_is_refused(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")
    rewrite(path, lambda d: d["steps"][1].update(needs=[], on_error="continue"))
    r = run_plan(cli, path)
    assert r.returncode == 3 and "steps of runbook 'contain'" in r.stderr
    assert cli.state["applied"] == []


def test_a_saved_plan_runs_once(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")
    assert run_plan(cli, path).returncode == 0
    r = run_plan(cli, path)
    assert r.returncode == 3 and "already applied" in r.stderr
    assert len(cli.state["applied"]) == 2  # type: ignore[arg-type]


def test_with_an_audit_key_plans_must_be_signed_with_it(cli: Cli) -> None:
    keyed = {"KILLSWITCH_AUDIT_KEY": KEY}
    path = save(cli, "contain", "app-0", env=keyed)
    original = path.read_text()
    # the signature stripped (the hash alone still matches)
    rewrite(path, lambda d: None)
    assert "signature" not in json.loads(path.read_text())
    r = run_plan(cli, path, env=keyed)
    assert r.returncode == 3 and "not signed" in r.stderr
    # signed with another key
    data = json.loads(original)
    body = {k: v for k, v in data.items() if k not in ("hash", "signature")}
    data["signature"] = Plan.signature_of(body, b"another key")
    path.write_text(json.dumps(data))
    r = run_plan(cli, path, env=keyed)
    assert r.returncode == 3 and "signature does not match" in r.stderr
    assert cli.state["applied"] == []
    # signed with the key: it runs
    signed = save(cli, "contain", "app-1", env=keyed)
    assert json.loads(signed.read_text())["signature"].startswith("hmac-sha256:")
    r = run_plan(cli, signed, env=keyed)
    assert r.returncode == 0, r.stderr
    assert {a["key"] for a in cli.state["applied"]} == {"app-1-flag", "app-1-key"}  # type: ignore[union-attr]


def test_signed_plan_edited_and_rehashed_is_refused(cli: Cli) -> None:
    keyed = {"KILLSWITCH_AUDIT_KEY": KEY}
    path = save(cli, "contain", "app-0", env=keyed)
    data = json.loads(path.read_text())
    signature = data["signature"]
    rewrite(path, lambda d: d["notes"].append("looks harmless"))
    data = json.loads(path.read_text())
    data["signature"] = signature  # the old signature, kept
    path.write_text(json.dumps(data))
    r = run_plan(cli, path, env=keyed)
    assert r.returncode == 3 and "signature does not match" in r.stderr
    assert cli.state["applied"] == []


def test_dry_run_of_a_saved_plan_rederives_it_too(cli: Cli) -> None:
    path = save(cli, "contain", "app-0")
    rewrite(path, lambda d: d["changes"][1].update(
        target="sim:payroll-key", ref={"backend": "sim", "key": "payroll-key"}))
    r = cli("run", "--plan", str(path), "--dry-run")
    assert r.returncode == 3 and "sim:payroll-key" in r.stderr
