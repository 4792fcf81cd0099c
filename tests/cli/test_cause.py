"""Why a run happened (--cause), restore after a leak, and downstream credentials."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli


def _events(cli: Cli, run_id: str) -> list[dict[str, object]]:
    r = cli("audit", "export", "--run", run_id)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def _run(cli: Cli, *args: str) -> dict[str, object]:
    r = cli("run", "contain", "app-0", "--yes", "--reason", "test", "--json", *args)
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_cause_is_in_the_plan_the_trail_and_the_report(cli: Cli) -> None:
    r = cli("plan", "contain", "app-0", "--cause", "cost")
    assert r.returncode == 0, r.stderr
    assert "cause: cost" in r.stdout
    run_id = str(_run(cli, "--cause", "leak")["run_id"])
    start = next(e for e in _events(cli, run_id)
                 if e["phase"] == "run" and e["outcome"] == "started")
    assert start["detail"]["cause"] == "leak"  # type: ignore[index]
    assert start["detail"]["plan"]["cause"] == "leak"  # type: ignore[index]
    report = cli("report", run_id)
    assert "- **Cause:** leak\n" in report.stdout, report.stdout


def test_a_run_without_a_cause_records_other(cli: Cli) -> None:
    run_id = str(_run(cli)["run_id"])
    start = next(e for e in _events(cli, run_id)
                 if e["phase"] == "run" and e["outcome"] == "started")
    assert start["detail"]["cause"] == "other"  # type: ignore[index]


def test_unknown_cause_is_a_usage_error(cli: Cli) -> None:
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x", "--cause", "boredom")
    assert r.returncode == 2
    assert "boredom" in r.stderr and "leak" in r.stderr
    assert cli.state["applied"] == []


def test_saved_plan_keeps_its_cause_and_refuses_another(cli: Cli) -> None:
    path = cli.root / "plan.json"
    assert cli("plan", "contain", "app-0", "--cause", "data", "--out", str(path)).returncode == 0
    assert json.loads(path.read_text())["cause"] == "data"
    r = cli("run", "--plan", str(path), "--yes", "--reason", "x", "--cause", "leak")
    assert r.returncode == 2 and "'data'" in r.stderr
    assert cli.state["applied"] == []
    # editing the cause in the file breaks its hash: the cause is part of what was reviewed
    data = json.loads(path.read_text())
    data["cause"] = "leak"
    path.write_text(json.dumps(data))
    r = cli("run", "--plan", str(path), "--yes", "--reason", "x")
    assert r.returncode == 2 and "hash" in r.stderr
    assert cli.state["applied"] == []


def test_restore_after_a_leak_keeps_the_key_dead_and_restores_the_flag(cli: Cli) -> None:
    run_id = str(_run(cli, "--cause", "leak")["run_id"])
    assert cli.state["switches"] == {"app-0-flag": "off", "app-0-key": "off"}
    dry = cli("restore", run_id, "--dry-run")
    assert "held back" in dry.stdout and "rotate" in dry.stdout
    r = cli("restore", run_id, "--yes", "--reason", "all clear")
    assert r.returncode == 3, r.stderr
    assert "rotate" in r.stderr and "app-0-key" in r.stderr
    # the flag came back; the leaked key did not
    assert cli.state["switches"] == {"app-0-flag": "on", "app-0-key": "off"}
    assert cli("audit", "verify").returncode == 0


def test_reenable_leaked_needs_a_reason_then_brings_the_key_back(cli: Cli) -> None:
    run_id = str(_run(cli, "--cause", "leak")["run_id"])
    r = cli("restore", run_id, "--yes", "--reenable-leaked")
    assert r.returncode == 2 and "reason" in r.stderr
    assert cli.state["switches"]["app-0-key"] == "off"  # type: ignore[index]
    r = cli("restore", run_id, "--yes", "--reenable-leaked", "--reason", "false alarm",
            "--json")
    assert r.returncode == 0, r.stderr
    assert cli.state["switches"] == {"app-0-flag": "on", "app-0-key": "on"}
    restore_id = json.loads(r.stdout)["run_id"]
    plan = next(e for e in _events(cli, restore_id)
                if e["phase"] == "run" and e["outcome"] == "started")["detail"]["plan"]  # type: ignore[index]
    assert any("CONSENT" in n and "LEAKED" in n for n in plan["notes"])  # type: ignore[index]


def test_restore_of_a_leak_with_only_credentials_changes_nothing(cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace(
        'runbook_dirs = ["runbooks"]', 'runbook_dirs = ["runbooks"]'))
    r = cli("run", "destroy", "app-1", "--yes", "--reason", "x", "--allow-irreversible",
            "--cause", "leak")
    assert r.returncode == 0, r.stderr
    revoke = cli.root / "runbooks" / "revoke.toml"
    revoke.write_text('name = "revoke"\ndescription = "keys only"\n[[steps]]\n'
                      'id = "revoke"\naction = "credential.disable"\n')
    r = cli("run", "revoke", "app-2", "--yes", "--reason", "x", "--cause", "leak", "--json")
    assert r.returncode == 0, r.stderr
    before = list(cli.state["applied"])  # type: ignore[call-overload]
    r = cli("restore", json.loads(r.stdout)["run_id"], "--yes", "--reason", "all clear")
    assert r.returncode == 3 and "rotate" in r.stderr
    assert cli.state["applied"] == before  # nothing was sent anywhere


def test_downstream_credentials_are_disabled_and_reported_apart(cli: Cli) -> None:
    text = cli.config.read_text().replace(
        '[[integrations.credentials]]\nbackend = "sim"\nkey = "app-0-key"\n',
        '[[integrations.credentials]]\nbackend = "sim"\nkey = "app-0-key"\n\n'
        '[[integrations.credentials]]\nbackend = "sim"\nkey = "app-0-ticketing-token"\n'
        'role = "downstream"\nlabel = "ticketing API key held by the agent"\n', 1)
    cli.config.write_text(text)
    out = _run(cli, "--cause", "abuse")
    assert cli.state["switches"]["app-0-ticketing-token"] == "off"  # type: ignore[index]
    report = cli("report", str(out["run_id"])).stdout
    section = report.split("### Downstream credentials", 1)[1].split("###", 1)[0]
    assert "app-0-ticketing-token" in section and "app-0-key`" not in section
    r = cli("plan", "contain", "app-0")
    assert "(downstream)" in r.stdout


def test_a_bad_role_is_refused_with_where(cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace(
        'key = "app-0-key"\n', 'key = "app-0-key"\nrole = "upstream"\n', 1))
    r = cli("inventory", "list")
    assert r.returncode == 2
    assert "role" in r.stderr and "config.toml" in r.stderr and "Traceback" not in r.stderr
