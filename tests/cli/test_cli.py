"""The headless CLI contract: exit codes, confirmation, plans, crash and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.conftest import Cli, slow

ALL = ["app-0", "app-1", "app-2", "app-3"]


def wait_for(cli: Cli, outcome: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            n = cli.rows("SELECT count(*) FROM events WHERE outcome = ?", outcome)[0][0]
        except Exception:  # noqa: BLE001 - the table may not exist yet
            n = 0
        if n >= count:  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {count} {outcome!r} events")


def run_id(cli: Cli) -> str:
    (rid,) = cli.rows("SELECT DISTINCT run_id FROM events WHERE phase='run' "
                      "AND outcome='started'")[0]
    return str(rid)


def test_live_run_needs_yes_and_reason_off_a_terminal(cli: Cli) -> None:
    r = cli("run", "contain", "app-0")
    assert r.returncode == 3, r.stderr
    assert "--yes" in r.stderr
    r = cli("run", "contain", "app-0", "--yes")
    assert r.returncode == 3 and "--reason" in r.stderr
    assert cli.state["applied"] == []


def test_run_verify_report_and_restore(cli: Cli) -> None:
    r = cli("run", "contain", *ALL, "--yes", "--reason", "leaked key", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["exit_code"] == 0 and len(out["operations"]) == 8
    assert {o["verdict"] for o in out["operations"]} == {"dead"}
    assert set(cli.state["switches"].values()) == {"off"}  # type: ignore[union-attr]

    rep = cli("report", out["run_id"])
    assert rep.returncode == 0
    assert out["run_id"] in rep.stdout and "leaked key" not in rep.stderr

    r = cli("restore", out["run_id"], "--yes", "--reason", "all clear")
    assert r.returncode == 0, r.stderr
    assert set(cli.state["switches"].values()) == {"on"}  # type: ignore[union-attr]
    assert cli("audit", "verify").returncode == 0


def test_dry_run_changes_nothing_and_says_so(cli: Cli) -> None:
    r = cli("run", "contain", "app-0", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "DRY-RUN" in r.stdout and "observed" in r.stdout
    assert cli.state["applied"] == []
    modes = {m for (m,) in cli.rows("SELECT DISTINCT mode FROM events")}
    assert modes == {"dry-run"}


def test_saved_plan_applies_and_refuses_when_drifted(cli: Cli) -> None:
    plan = cli.root / "plan.json"
    r = cli("plan", "contain", "app-0", "app-1", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    assert json.loads(plan.read_text())["hash"]
    # a target drifts: someone rotated app-1's key after the plan was made
    state = cli.state
    state["switches"]["app-1-key"] = "rotated"  # type: ignore[index]
    (cli.root / "fake-state.json").write_text(json.dumps(state))
    r = cli("run", "--plan", str(plan), "--yes", "--reason", "x")
    assert r.returncode == 3
    assert "app-1-key" in r.stderr and "rotated" in r.stderr
    assert cli.state["applied"] == []


def test_blast_radius_and_irreversible_refused_with_exit_3(cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace("max_targets = 10", "max_targets = 2"))
    r = cli("run", "contain", *ALL, "--yes", "--reason", "x")
    assert r.returncode == 3 and "--max-targets 4" in r.stderr
    r = cli("run", "destroy", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 3 and "--allow-irreversible" in r.stderr
    assert cli.state["applied"] == []
    r = cli("run", "destroy", "app-0", "--yes", "--reason", "x", "--allow-irreversible")
    assert r.returncode == 0, r.stderr


def test_kill_9_during_apply_then_resume_applies_each_exactly_once(cli: Cli) -> None:
    slow(cli)
    proc = cli.popen("run", "contain", *ALL, "--yes", "--reason", "crash test")
    try:
        wait_for(cli, "applied", 2)
        time.sleep(0.15)  # let the next operations start (and some side effects happen)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    rid = run_id(cli)
    before = len(cli.state["applied"])  # type: ignore[arg-type]
    assert 2 <= before < 8, "the crash must land mid-run"
    r = cli("resume", rid)
    assert r.returncode == 0, r.stdout + r.stderr
    ops = [a["op"] for a in cli.state["applied"]]  # type: ignore[union-attr]
    assert sorted(ops) == sorted(set(ops)) and len(ops) == 8, ops
    assert set(cli.state["switches"].values()) == {"off"}  # type: ignore[union-attr]
    v = cli("audit", "verify")
    assert v.returncode == 0, v.stdout
    # nothing is left running: the second resume says the run already finished
    again = cli("resume", rid)
    assert again.returncode == 2 and "already finished" in again.stderr


def test_ctrl_c_cancels_cleanly_and_resume_finishes(cli: Cli) -> None:
    slow(cli)
    proc = cli.popen("run", "contain", *ALL, "--yes", "--reason", "cancel test")
    wait_for(cli, "applied", 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "cancelling" in err and "killswitch resume" in err
    rid = run_id(cli)
    # no half-recorded operation: every start has an end
    rows = cli.rows("SELECT op_id, outcome FROM events WHERE run_id=? AND phase='apply'", rid)
    started = {op for op, o in rows if o == "started"}
    ended = {op for op, o in rows if o not in ("started", "retrying")}
    assert started <= ended
    assert any(o == "skipped" for _, o in rows)
    assert cli.rows("SELECT outcome FROM events WHERE run_id=? AND phase='run' "
                    "ORDER BY seq DESC LIMIT 1", rid) == [("cancelled",)]
    r = cli("resume", rid)
    assert r.returncode == 0, r.stderr
    ops = [a["op"] for a in cli.state["applied"]]  # type: ignore[union-attr]
    assert len(ops) == 8 == len(set(ops))


@pytest.mark.sqlite_only  # the SQLite file itself (PostgreSQL: tests/store)
def test_tampered_row_is_caught_at_its_sequence(cli: Cli) -> None:
    assert cli("run", "contain", "app-0", "--yes", "--reason", "x").returncode == 0
    seq = cli.rows("SELECT seq FROM events WHERE outcome='applied' ORDER BY seq LIMIT 1")[0][0]
    subprocess.run(["sqlite3", str(cli.db),
                    "DROP TRIGGER IF EXISTS events_no_update;",
                    f"UPDATE events SET outcome='failed' WHERE seq={seq};"], check=True)
    triggers = cli.rows("SELECT name FROM sqlite_master WHERE type='trigger'")
    if triggers:  # whatever the trigger is named, remove every one and edit again
        for (name,) in triggers:
            subprocess.run(["sqlite3", str(cli.db), f"DROP TRIGGER {name};"], check=True)
        subprocess.run(["sqlite3", str(cli.db),
                        f"UPDATE events SET outcome='failed' WHERE seq={seq};"], check=True)
    r = cli("audit", "verify")
    assert r.returncode == 4
    assert f"sequence {seq}" in r.stdout


def test_headless_cli_never_imports_textual(cli: Cli) -> None:
    code = (
        "import sys\n"
        "from console.cli import main\n"
        f"for args in (['inventory','list'], ['plan','contain','app-0'], ['audit','verify']):\n"
        "    try:\n"
        f"        main(['--config', {str(cli.config)!r}, *args])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('textual' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=cli.root, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "False", r.stderr
