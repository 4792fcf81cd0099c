"""`killswitch run ... --rehearse`: the real entry point, a fake backend in a shared state file."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli


def run_ids(cli: Cli, mode: str) -> list[str]:
    return [str(r[0]) for r in cli.rows(
        "SELECT DISTINCT run_id FROM events WHERE mode = ? AND phase = 'run'", mode)]


def test_rehearse_changes_nothing_and_says_so(cli: Cli) -> None:
    r = cli("run", "contain", "app-0", "app-1", "--rehearse")  # no --yes, no --reason
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("REHEARSAL — nothing was changed\n")
    assert "a live run would have exited 0" in r.stdout
    assert "proof of death" not in r.stdout  # the fake here proves nothing, as live
    assert "applied" in r.stdout and "Traceback" not in r.stderr
    assert r.stderr.startswith("REHEARSAL — nothing was changed\nPLAN:")
    assert cli.state["applied"] == [] and "off" not in cli.state["switches"].values()
    (run_id,) = run_ids(cli, "rehearsal")
    modes = {m for (m,) in cli.rows("SELECT DISTINCT mode FROM events WHERE run_id = ?", run_id)}
    assert modes == {"rehearsal"}
    tables = cli.tables()
    assert "locks" not in tables or cli.rows("SELECT * FROM locks") == []
    assert run_ids(cli, "live") == []
    # nothing to resume or restore: it changed nothing
    for cmd in (("resume", run_id), ("restore", run_id, "--yes", "--reason", "x")):
        again = cli(*cmd)
        assert again.returncode == 2 and "was a rehearsal" in again.stderr
        assert "Traceback" not in again.stderr


def test_rehearse_json(cli: Cli) -> None:
    r = cli("--json", "run", "contain", "app-0", "--rehearse", "--seed", "4")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["mode"] == "rehearsal" and data["exit_code"] == 0
    assert data["rehearsal"]["changed_nothing"] is True
    assert data["rehearsal"]["seed"] == 4 and data["rehearsal"]["simulated_applies"] == 2
    assert set(data["rehearsal"]["measured"]) == {"sim"}


def test_faults_fail_a_rehearsal_like_a_live_run(cli: Cli) -> None:
    r = cli("run", "contain", "app-0", "--rehearse", "--seed", "1",
            "--fault", "sim:throttle_rate=1,retry_after=0.01")
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith("REHEARSAL — nothing was changed")
    assert "faults (seed 1): sim: throttle_rate=1.0, retry_after=0.01" in r.stdout
    assert "429 Too Many Requests (rehearsal fault)" in r.stdout
    assert "a live run would have exited 1" in r.stdout
    assert cli.state["applied"] == []
    retries = cli.rows("SELECT count(*) FROM events WHERE mode = 'rehearsal' "
                       "AND outcome = 'retrying'")
    assert retries[0][0] == 5  # max_attempts = 6 for the first op; the next is skipped


def test_refusals_exit_2_with_a_message(cli: Cli) -> None:
    for args, words in (
            (("--rehearse", "--dry-run"), "--rehearse and --dry-run do not go together"),
            (("--fault", "sim:down"), "only go with --rehearse"),
            (("--seed", "3"), "only go with --rehearse"),
            (("--rehearse", "--fault", "sim"), "is not BACKEND:field=value"),
            (("--rehearse", "--fault", "nope:down"), "which the config does not define"),
            (("--rehearse", "--fault", "sim:throttle=1"), "unknown fault field"),
            (("--rehearse", "--fault", "sim:error_rate=3"), "from 0 to 1")):
        r = cli("run", "contain", "app-0", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr
    assert run_ids(cli, "rehearsal") == []  # refused before anything was observed


def test_a_saved_plan_can_be_rehearsed_and_then_run_live(cli: Cli) -> None:
    plan_file = cli.root / "plan.json"
    assert cli("plan", "contain", "app-2", "--out", str(plan_file)).returncode == 0
    r = cli("run", "--plan", str(plan_file), "--rehearse")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("REHEARSAL") and cli.state["applied"] == []
    saved_id = json.loads(plan_file.read_text())["run_id"]
    assert saved_id not in run_ids(cli, "rehearsal")  # its id stays free for the live run
    live = cli("run", "--plan", str(plan_file), "--yes", "--reason", "after rehearsing")
    assert live.returncode == 0, live.stderr
    assert len(cli.state["applied"]) == 2 and run_ids(cli, "live") == [saved_id]


def test_irreversible_changes_are_noted_not_refused(cli: Cli) -> None:
    r = cli("run", "destroy", "app-3", "--rehearse")
    assert r.returncode == 0, r.stderr
    assert "note: a live run would be refused: 1 change(s) cannot be undone" in r.stdout
    assert cli.state["applied"] == []


def test_help_names_the_flag(cli: Cli) -> None:
    r = cli("run", "--help")
    assert r.returncode == 0 and "--rehearse" in r.stdout and "--fault" in r.stdout


def test_a_rehearsals_report_says_so_before_anything_else(cli: Cli) -> None:
    """A report is read later by people who were not there, and a rehearsal's timeline
    reads like a live one's (applied, verified): it says REHEARSAL first. A live run's
    report says nothing of the kind; an incident with both names the run that was not live."""
    assert cli("run", "contain", "app-0", "--rehearse", "--incident", "INC-7").returncode == 0
    (rehearsal,) = run_ids(cli, "rehearsal")
    r = cli("report", rehearsal)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == [
        f"# Postmortem timeline: run {rehearsal}", "",
        "> **REHEARSAL: simulated; nothing real was changed.**"]

    live = cli("run", "contain", "app-1", "--yes", "--reason", "r", "--incident", "INC-7")
    assert live.returncode == 0, live.stderr
    (live_id,) = run_ids(cli, "live")
    assert "REHEARSAL" not in cli("report", live_id).stdout
    both = cli("report", "--incident", "INC-7").stdout.splitlines()[2]
    assert both == (f"> **MIXED: only some runs touched real systems; not real: {rehearsal} "
                    "(REHEARSAL).**")
