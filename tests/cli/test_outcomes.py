"""Outcomes say what is true: what a restore could not undo, keys not proven dead, Ctrl-C."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Cli

MIXED = """
name = "mixed"
description = "flag off, two batch jobs cancelled, the key destroyed"
[[steps]]
id = "flags-off"
action = "flag.disable"
[[steps]]
id = "cancel"
action = "batch.cancel"
[[steps]]
id = "destroy"
action = "credential.destroy"
needs = ["flags-off"]
"""


def _with_batches(cli: Cli) -> None:
    """app-3 (the last integration in the file) gets two batch jobs on the fake backend."""
    (cli.root / "runbooks" / "mixed.toml").write_text(MIXED)
    cli.config.write_text(cli.config.read_text() + "\n".join([
        "", "[[integrations.batches]]", 'backend = "sim"', 'key = "app-3-job-a"',
        "[[integrations.batches]]", 'backend = "sim"', 'key = "app-3-job-b"', ""]))


def test_restore_that_cannot_undo_everything_exits_1_and_says_what_stays_dead(
        cli: Cli) -> None:
    _with_batches(cli)
    r = cli("run", "mixed", "app-3", "--yes", "--reason", "leak", "--allow-irreversible",
            "--json")
    assert r.returncode == 0, r.stderr
    rid = json.loads(r.stdout)["run_id"]
    dry = cli("restore", rid, "--dry-run")
    assert "app-3: stays dead: 2 batch jobs stay cancelled" in dry.stdout
    r = cli("restore", rid, "--yes", "--reason", "all clear")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "NOT RESTORED" in r.stdout and "OK" not in r.stdout.splitlines()[-1]
    assert "app-3: 2 batch jobs stay cancelled" in r.stdout
    assert re.search(r"app-3: sim:app-3-key: credential\.destroy .* cannot be undone",
                     r.stdout), r.stdout
    switches = cli.state["switches"]
    assert switches["app-3-flag"] == "on"  # type: ignore[index]  # what could be undone was
    assert switches["app-3-key"] == "off"  # type: ignore[index]
    r = cli("restore", rid, "--yes", "--reason", "again", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["exit_code"] == 1
    assert len(out["not_restored"]["app-3"]) == 2


def test_a_full_restore_still_exits_0(cli: Cli) -> None:
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x", "--json")
    r = cli("restore", json.loads(r.stdout)["run_id"], "--yes", "--reason", "ok")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "NOT RESTORED" not in r.stdout


def test_a_run_already_restored_is_never_undone_twice(cli: Cli) -> None:
    """The second restore of a run leaves out what the first undid: turning the flag back
    on again after someone turned it off on purpose would silently re-arm it."""
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x", "--json")
    rid = json.loads(r.stdout)["run_id"]
    first = cli("restore", rid, "--yes", "--reason", "ok", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    state = cli.state  # a later decision: someone turned the flag off again on purpose
    state["switches"]["app-0-flag"] = "off"  # type: ignore[index]
    (cli.root / "fake-state.json").write_text(json.dumps(state))
    again = cli("restore", rid, "--dry-run")
    assert f"run {rid} was restored before by" in again.stdout, again.stdout
    assert "applied no change that could be undone that is not undone already" in again.stdout
    cli("restore", rid, "--yes", "--reason", "again")
    assert cli.state["switches"]["app-0-flag"] == "off"  # type: ignore[index]


def test_no_literal_exit_codes_in_the_console_package() -> None:
    """The README's table and console.errors are the single source of exit codes."""
    root = Path(__file__).resolve().parents[2] / "console"
    literal = re.compile(r"(sys\.exit|\bexit)\(\s*\d+\s*\)")
    offenders = [f"{p.relative_to(root.parent)}:{n}" for p in root.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if literal.search(line)]
    assert offenders == []
