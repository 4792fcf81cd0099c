"""Witnessed checkpoints catch what a hash chain alone cannot (issue 8, part 3).

Every attack here is made the way an intruder would: with the real ``sqlite3`` CLI (or plain
``sqlite3`` from Python) on the database file, triggers dropped and restored, hashes
recomputed. Each test first shows that the chain alone is fooled where that is the point.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from console.audit import FIELDS, KEY_ENV, AuditLog, ChainReport, canonical_json
from console.errors import EXIT_VERIFY, AuditTampered
from console.witness import (
    Checkpoint,
    WitnessFile,
    default_witness_path,
    read_checkpoints,
    verify_trail,
    write_checkpoint,
)

SQLITE3 = shutil.which("sqlite3")
KEY = b"incident-audit-key"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.db"


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "elsewhere" / "witness.jsonl"


def event(i: int) -> dict[str, object]:
    return {"run_id": "run-1", "operator": "alice", "mode": "live", "integration": "bot",
            "phase": "apply", "action": "credential.disable", "target": f"kv:ai/{i}",
            "outcome": "applied", "detail": {"i": i}}


def fill(path: Path, n: int, key: bytes | None = None, start: int = 1) -> None:
    with AuditLog(path, key=key) as log:
        log.append_many([event(i) for i in range(start, start + n)])


def checkpoint(path: Path, witness: Path, key: bytes | None = None) -> Checkpoint:
    with AuditLog(path, key=key) as log:
        return write_checkpoint(log, witness)


def sql(path: Path, script: str) -> None:
    """Run ``script`` with the real sqlite3 CLI, as an intruder would."""
    assert SQLITE3 is not None, "`make test` installs the sqlite3 CLI"
    subprocess.run([SQLITE3, str(path), script], check=True, capture_output=True, text=True)


def verify(path: Path, witness: Path | None = None, key: bytes | None = None,
           require_key: bool = False) -> ChainReport:
    files = [read_checkpoints(witness)] if witness is not None else []
    return verify_trail(path, key=key, witnesses=files, require_key=require_key)


def snapshot(path: Path) -> tuple[bytes, list[tuple[str, str]]]:
    """The database's bytes and schema, to prove verify leaves it as found."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        schema = sorted(conn.execute("SELECT type, name FROM sqlite_master"))
    finally:
        conn.close()
    return path.read_bytes(), schema


TRUNCATE = ("DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq > {keep}; "
            "UPDATE sqlite_sequence SET seq = {keep} WHERE name = 'events'; "
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN "
            "SELECT RAISE(ABORT, 'audit events are append-only: DELETE rejected'); END;")


@pytest.mark.parametrize("key", [None, KEY], ids=["sha256", "hmac"])
def test_tail_deleted_and_sequence_reset_is_caught_by_the_witness(
        db: Path, witness: Path, key: bytes | None) -> None:
    fill(db, 8, key)
    cp = checkpoint(db, witness, key)
    assert (cp.seq, cp.count, cp.keyed) == (8, 8, key is not None)
    sql(db, TRUNCATE.format(keep=5))
    with AuditLog(db, key=key, readonly=True) as log:
        assert log.verify().ok, "the chain alone cannot see its tail deleted"
    report = verify(db, witness, key)
    assert not report.ok
    assert report.first_bad_seq == 6 and report.last_good_seq == 5
    assert "seq 8" in report.reason and "deleted" in report.reason


def test_every_row_deleted_is_not_ok_zero_events(db: Path, witness: Path) -> None:
    fill(db, 4)
    checkpoint(db, witness)
    sql(db, "DROP TRIGGER events_no_delete; DELETE FROM events; "
            "DELETE FROM sqlite_sequence WHERE name = 'events'; "
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN "
            "SELECT RAISE(ABORT, 'audit events are append-only: DELETE rejected'); END;")
    with AuditLog(db, readonly=True) as log:
        alone = log.verify()
    assert alone.ok and alone.count == 0, "without a witness an emptied trail looks new"
    report = verify(db, witness)
    assert not report.ok and report.last_good_seq == 0
    assert "empty" in report.reason


def test_deleted_database_file_is_caught(db: Path, witness: Path) -> None:
    fill(db, 3)
    checkpoint(db, witness)
    for p in db.parent.glob("audit.db*"):
        p.unlink()
    report = verify(db, witness)
    assert not report.ok and "missing" in report.reason
    assert not db.exists(), "verify does not create the database"


def test_trail_regrown_after_truncation_differs_at_the_witnessed_seq(
        db: Path, witness: Path) -> None:
    fill(db, 3)
    checkpoint(db, witness)  # seq 3
    fill(db, 3, start=4)
    checkpoint(db, witness)  # seq 6
    sql(db, TRUNCATE.format(keep=4))
    fill(db, 4, start=100)  # new, different events 5..8: a valid chain, longer than before
    report = verify(db, witness)
    assert not report.ok
    assert report.first_bad_seq == 6 and report.last_good_seq == 3
    assert "rewritten" in report.reason


def rechain_unkeyed(path: Path, edit_seq: int) -> None:
    """The intruder's rewrite: meta says unkeyed, one row edited, every hash plain SHA-256."""
    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER events_no_update; DROP TRIGGER meta_no_update; "
                       "DROP TRIGGER meta_no_delete;")
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'keyed'")
    conn.execute("DELETE FROM meta WHERE key = 'key_check'")
    rows = [dict(zip(FIELDS, r, strict=True))
            for r in conn.execute(f"SELECT {', '.join(FIELDS)} FROM events ORDER BY seq")]
    prev = "0" * 64
    for row in rows:
        row["detail"] = json.loads(row["detail"])
        if row["seq"] == edit_seq:
            row["outcome"] = "noop"
        row["prev_hash"] = prev
        body = canonical_json({k: row[k] for k in FIELDS if k != "hash"}).encode()
        row["hash"] = prev = hashlib.sha256(body).hexdigest()
        conn.execute("UPDATE events SET outcome = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (row["outcome"], row["prev_hash"], row["hash"], row["seq"]))
    conn.commit()
    conn.executescript(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, "
        "'audit events are append-only: UPDATE rejected'); END;"
        "CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, "
        "'audit meta is append-only: UPDATE rejected'); END;"
        "CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta BEGIN SELECT RAISE(ABORT, "
        "'audit meta is append-only: DELETE rejected'); END;")
    conn.close()


def test_keyed_trail_rewritten_unkeyed_fails_by_config_and_by_witness(
        db: Path, witness: Path) -> None:
    fill(db, 5, KEY)
    checkpoint(db, witness, KEY)
    rechain_unkeyed(db, edit_seq=2)
    with AuditLog(db, key=None, readonly=True) as log:
        assert log.verify().ok, "the database alone vouches for its forged self"
    by_config = verify(db, None, key=None, require_key=True)
    assert not by_config.ok and "must be keyed" in by_config.reason
    by_witness = verify(db, witness, key=None)
    assert not by_witness.ok and KEY_ENV in by_witness.reason
    with_key = verify(db, witness, key=KEY)
    assert not with_key.ok and with_key.first_bad_seq == 1


def test_keyed_trail_without_its_key_fails_verification(db: Path) -> None:
    fill(db, 2, KEY)
    report = verify(db, None, key=None)
    assert not report.ok and report.first_bad_seq is None
    with AuditLog(db, key=None, readonly=True) as log, pytest.raises(AuditTampered) as info:
        log.verify_or_raise()
    assert info.value.exit_code == EXIT_VERIFY


@pytest.mark.parametrize("attack,what", [
    ("DROP TRIGGER events_no_delete;", "trigger events_no_delete"),
    ("DROP TRIGGER meta_no_update;", "trigger meta_no_update"),
    ("DROP TABLE meta;", "table meta"),
])
def test_verify_reports_damage_and_never_repairs(db: Path, attack: str, what: str) -> None:
    fill(db, 3)
    sql(db, attack)
    before = snapshot(db)
    report = verify(db)
    assert not report.ok and what in report.reason
    with AuditLog(db, readonly=True) as log:
        assert not log.verify().ok
    assert snapshot(db) == before, "the database is left as found"


def test_a_writer_repairs_damage_on_the_record(db: Path) -> None:
    fill(db, 2)
    sql(db, "DROP TRIGGER events_no_delete;")
    with AuditLog(db) as log:
        assert "events_no_delete" not in {r[0] for r in log._conn.execute(
            "SELECT name FROM sqlite_master")}, "opening does not repair"
        log.append(**event(3))
        damaged = log.events(outcome="repaired")
        assert [e["action"] for e in damaged] == ["trail.damaged"]
        assert damaged[0]["detail"]["missing"] == ["events_no_delete"]
        assert log.verify().ok, "restored, and the repair is an event of the chain"


def test_checkpoints_are_appended_kept_and_signed(db: Path, witness: Path) -> None:
    fill(db, 2, KEY)
    first = checkpoint(db, witness, KEY)
    fill(db, 1, KEY, start=3)
    second = checkpoint(db, witness, KEY)
    lines = witness.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2, 3]
    assert set(json.loads(lines[0])) == {"seq", "hash", "count", "time", "keyed", "mac",
                                         "trail", "db"}
    wf = read_checkpoints(witness)
    assert wf.checkpoints == [first, second] and not wf.problems
    assert first.mac and second.mac and first.trail == second.trail != ""
    assert verify(db, witness, KEY).checkpoints == 2


def test_edited_witness_is_caught(db: Path, witness: Path) -> None:
    fill(db, 3, KEY)
    checkpoint(db, witness, KEY)
    cp = json.loads(witness.read_text())
    cp["seq"], cp["hash"] = 2, "f" * 64  # forged without the key: the MAC no longer matches
    witness.write_text(json.dumps(cp) + "\nnot json\n")
    report = verify(db, witness, KEY)
    assert not report.ok
    assert "bad MAC" in report.reason and ":2 is not a checkpoint" in report.reason


def test_checkpoints_of_another_trail_in_a_shared_witness_are_ignored(
        tmp_path: Path, witness: Path) -> None:
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    fill(one, 5)
    checkpoint(one, witness)
    fill(two, 2)
    checkpoint(two, witness)
    assert verify(two, witness).ok
    # Named explicitly (--witness), every checkpoint in the file is about this trail.
    exported = verify_trail(two, exported=[read_checkpoints(witness)])
    assert not exported.ok


def test_empty_trail_checkpoint_and_missing_witness_are_fine(db: Path, witness: Path) -> None:
    with AuditLog(db) as log:
        cp = write_checkpoint(log, witness)
    assert (cp.seq, cp.count) == (0, 0)
    assert verify(db, witness).ok
    assert verify(db, witness.with_name("none.jsonl")).ok
    assert not read_checkpoints(witness.with_name("none.jsonl")).exists
    assert verify_trail(db.with_name("never.db")).ok
    assert not db.with_name("never.db").exists()


def test_default_witness_is_outside_the_database_files(tmp_path: Path) -> None:
    path = default_witness_path(tmp_path / "audit.db")
    assert path == tmp_path / "audit.witness.jsonl"
    assert not path.name.startswith("audit.db"), "`rm audit.db*` must not take it along"


def test_witness_file_dataclass_defaults() -> None:
    wf = WitnessFile(Path("x"))
    assert wf.checkpoints == [] and wf.problems == [] and wf.exists


def test_an_unwritable_witness_never_hides_the_run_result(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    from console.config import load_config
    from console.witness import checkpoint_run, witness_path

    (tmp_path / "blocker").write_text("a file where a folder should be")
    config_file = tmp_path / "config.toml"
    config_file.write_text('[settings]\naudit_db = "audit.db"\n'
                           'witness = "blocker/witness.jsonl"\n')
    config = load_config(config_file)
    assert witness_path(config) == tmp_path / "blocker" / "witness.jsonl"
    with AuditLog(tmp_path / "audit.db") as log:
        log.append(**event(1))
        assert checkpoint_run(config, log, "run-1") is None
        [failed] = log.events(outcome="failed")
    assert (failed["action"], failed["run_id"]) == ("witness.checkpoint", "run-1")
    assert "could not write the audit checkpoint" in caplog.text


def test_witness_setting_defaults_next_to_the_database(tmp_path: Path) -> None:
    from console.config import load_config
    from console.witness import witness_path

    config_file = tmp_path / "config.toml"
    config_file.write_text('[settings]\naudit_db = "state/trail.db"\n')
    config = load_config(config_file)
    assert witness_path(config) == tmp_path / "state" / "trail.witness.jsonl"
    assert config.settings.audit_keyed is False
