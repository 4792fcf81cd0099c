"""`audit verify` / `audit checkpoint` against an intruder with the sqlite3 CLI (issue 8, part
3), and private files under `umask 000` (part 6), through the real entry point."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from console.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, EXIT_VERIFY
from tests.cli.conftest import Cli
from tests.unit.test_witness import rechain_unkeyed

KEY = "incident audit key"
RESTORE_DELETE_TRIGGER = ("CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN "
                          "SELECT RAISE(ABORT, 'audit events are append-only: DELETE "
                          "rejected'); END;")


def sqlite(cli: Cli, script: str) -> None:
    """The intruder's tool: the real sqlite3 CLI."""
    sqlite3 = shutil.which("sqlite3")
    assert sqlite3 is not None, "`make test` installs the sqlite3 CLI"
    subprocess.run([sqlite3, str(cli.db), script], check=True, capture_output=True, text=True)


def witness(cli: Cli) -> Path:
    return cli.root / "audit.witness.jsonl"


def checkpoints(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def head(cli: Cli) -> tuple[int, str]:
    seq, digest = cli.rows("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")[0]
    return int(seq), str(digest)  # type: ignore[call-overload]


def live_run(cli: Cli, target: str = "app-0", env: dict[str, str] | None = None) -> None:
    r = cli("run", "contain", target, "--yes", "--reason", "leak", env=env)
    assert r.returncode == EXIT_OK, r.stderr


def truncate(cli: Cli, keep: int) -> None:
    sqlite(cli, f"DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq > {keep}; "
                f"UPDATE sqlite_sequence SET seq = {keep} WHERE name = 'events'; "
                + RESTORE_DELETE_TRIGGER)


def test_every_run_ends_with_a_witnessed_head(cli: Cli) -> None:
    live_run(cli)
    live_run(cli, "app-1")
    cps = checkpoints(witness(cli))
    assert len(cps) == 2, "one checkpoint per run, every one kept"
    seq, digest = head(cli)
    assert (cps[-1]["seq"], cps[-1]["hash"], cps[-1]["count"]) == (seq, digest, seq)
    assert cps[-1]["keyed"] is False and cps[-1]["mac"] is None
    assert cli.rows("SELECT outcome FROM events WHERE seq = ?", seq) == [("finished",)]
    ok = cli("audit", "verify")
    assert ok.returncode == EXIT_OK and "2 checkpoint(s)" in ok.stdout, ok.stdout


@pytest.mark.sqlite_only
def test_tail_deleted_with_sequence_reset_fails_and_names_the_last_good_seq(cli: Cli) -> None:
    live_run(cli)
    seq, _ = head(cli)
    truncate(cli, keep=seq - 3)
    r = cli("audit", "verify")
    assert r.returncode == EXIT_VERIFY, r.stdout + r.stderr
    assert f"last good sequence: {seq - 3}" in r.stdout
    assert f"at sequence {seq - 2}" in r.stdout and f"saw seq {seq}" in r.stdout
    data = json.loads(cli("audit", "verify", "--json").stdout)
    assert (data["ok"], data["last_good_seq"], data["first_bad_seq"]) == (False, seq - 3,
                                                                          seq - 2)


@pytest.mark.sqlite_only
def test_every_row_deleted_is_not_ok_0_events(cli: Cli) -> None:
    live_run(cli)
    sqlite(cli, "DROP TRIGGER events_no_delete; DELETE FROM events; "
                "DELETE FROM sqlite_sequence; " + RESTORE_DELETE_TRIGGER)
    r = cli("audit", "verify")
    assert r.returncode == EXIT_VERIFY, r.stdout
    assert "chain OK" not in r.stdout and "is empty" in r.stdout
    assert "last good sequence: 0" in r.stdout


@pytest.mark.sqlite_only
def test_a_witness_kept_elsewhere_catches_what_the_local_one_lost(cli: Cli,
                                                                   tmp_path: Path) -> None:
    live_run(cli)
    kept = tmp_path / "usb" / "witness.jsonl"
    r = cli("audit", "checkpoint", "--witness", str(kept))
    assert r.returncode == EXIT_OK, r.stderr
    assert checkpoints(kept)[0]["seq"] == head(cli)[0]
    seq, _ = head(cli)
    truncate(cli, keep=seq - 1)
    witness(cli).unlink()  # the intruder removes the witness next to the database too
    alone = cli("audit", "verify")
    assert alone.returncode == EXIT_OK and "no witnessed checkpoint" in alone.stdout
    r = cli("audit", "verify", "--witness", str(kept))
    assert r.returncode == EXIT_VERIFY and f"last good sequence: {seq - 1}" in r.stdout
    missing = cli("audit", "verify", "--witness", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == EXIT_USAGE


@pytest.mark.sqlite_only
def test_checkpoint_refuses_a_broken_trail(cli: Cli) -> None:
    live_run(cli)
    before = witness(cli).read_text()
    sqlite(cli, "DROP TRIGGER events_no_update; UPDATE events SET outcome = 'noop' "
                "WHERE seq = 3;")
    r = cli("audit", "checkpoint")
    assert r.returncode == EXIT_VERIFY and "no checkpoint written" in r.stderr
    assert witness(cli).read_text() == before


def test_keyed_trail_verified_without_its_key_exits_4(cli: Cli) -> None:
    live_run(cli, env={"KILLSWITCH_AUDIT_KEY": KEY})
    r = cli("audit", "verify")
    assert r.returncode == EXIT_VERIFY != EXIT_FAILED, r.stdout + r.stderr
    assert "KILLSWITCH_AUDIT_KEY" in r.stdout
    assert cli("audit", "verify", env={"KILLSWITCH_AUDIT_KEY": KEY}).returncode == EXIT_OK
    cp = checkpoints(witness(cli))[-1]
    assert cp["keyed"] is True and isinstance(cp["mac"], str)


@pytest.mark.sqlite_only
def test_keyed_trail_rewritten_unkeyed_fails_by_config_alone(cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace("[settings]",
                                                         "[settings]\naudit_keyed = true"))
    live_run(cli, env={"KILLSWITCH_AUDIT_KEY": KEY})
    rechain_unkeyed(cli.db, edit_seq=3)
    witness(cli).unlink()  # no witness left: the config alone must decide
    r = cli("audit", "verify")
    assert r.returncode == EXIT_VERIFY and "must be keyed" in r.stdout, r.stdout
    keyed = cli("audit", "verify", env={"KILLSWITCH_AUDIT_KEY": KEY})
    assert keyed.returncode == EXIT_VERIFY and "not keyed" in keyed.stdout


@pytest.mark.sqlite_only
def test_verify_reports_a_dropped_trigger_and_leaves_the_database_as_found(cli: Cli) -> None:
    live_run(cli)
    sqlite(cli, "DROP TRIGGER events_no_update;")
    before = cli.db.read_bytes()
    r = cli("audit", "verify")
    assert r.returncode == EXIT_VERIFY and "events_no_update is missing" in r.stdout
    assert cli.rows("SELECT name FROM sqlite_master WHERE name = 'events_no_update'") == []
    assert cli.db.read_bytes() == before


def umask_000(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", 'umask 000 && exec "$@"', "sh", *cli.argv(*args)],
                          capture_output=True, text=True, input="", cwd=cli.root,
                          env=cli.env(), timeout=120)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite_only
def test_trail_witness_plans_exports_and_reports_are_private_under_umask_000(
        cli: Cli) -> None:
    out = cli.root / "out"
    r = umask_000(cli, "plan", "contain", "app-0", "--out", str(out / "plan.json"))
    assert r.returncode == EXIT_OK, r.stderr
    r = umask_000(cli, "run", "contain", "app-0", "--yes", "--reason", "leak", "--json")
    assert r.returncode == EXIT_OK, r.stderr
    rid = json.loads(r.stdout)["run_id"]
    assert umask_000(cli, "audit", "export", "--out", str(out / "trail.jsonl")).returncode == 0
    assert umask_000(cli, "audit", "export", "--format", "csv",
                     "--out", str(out / "trail.csv")).returncode == 0
    assert umask_000(cli, "report", rid, "--out", str(out / "report.md")).returncode == 0
    files = [cli.db, witness(cli), *(out / n for n in ("plan.json", "trail.jsonl",
                                                        "trail.csv", "report.md"))]
    files += [p for p in cli.root.glob("audit.db-*")]
    assert {p.name: oct(mode(p)) for p in files} == {p.name: "0o600" for p in files}
    assert mode(out) == 0o700


def test_a_config_that_requires_a_keyed_trail_refuses_to_write_without_the_key(
        cli: Cli) -> None:
    cli.config.write_text(cli.config.read_text().replace("[settings]",
                                                         "[settings]\naudit_keyed = true"))
    r = cli("run", "contain", "app-0", "--yes", "--reason", "x")
    assert r.returncode == 1 and "settings.audit_keyed" in r.stderr, r.stderr
    assert cli.state["applied"] == [] and not cli.db.exists()
    live_run(cli, env={"KILLSWITCH_AUDIT_KEY": KEY})  # with the key it runs
    assert cli("audit", "verify", env={"KILLSWITCH_AUDIT_KEY": KEY}).returncode == EXIT_OK
