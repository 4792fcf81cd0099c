"""Private by default (issue 8, part 6): files 0600 and folders 0700 whatever the umask, and
fingerprints in the trail keyed so that a weak stored password cannot be brute-forced."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.audit import KEY_ENV, AuditLog
from console.engine.locks import LockTable
from console.privfile import open_private_text, write_private
from console.scrub import fingerprint_key_from_audit_key
from console.witness import write_checkpoint


@pytest.fixture(autouse=True)
def _umask_000(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The most permissive umask: only explicit modes keep files private."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_audit_database_its_wal_and_new_folders_are_private(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir(mode=0o755)
    db = tmp_path / "shared" / "a" / "b" / "audit.db"
    with AuditLog(db) as log:
        log.append(run_id="r", operator="alice", target="kv:ai/bot", detail={})
        wal = [p for p in db.parent.iterdir() if p.name.startswith("audit.db-")]
        assert {p.name for p in wal} >= {"audit.db-wal"}, "open WAL while in use"
        for p in [db, *wal]:
            assert mode(p) == 0o600, p
    assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
    assert mode(tmp_path / "shared") == 0o755, "an existing folder is left as it is"


def test_database_first_created_by_the_lock_table_becomes_private(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    LockTable(db).held()  # sqlite3 creates the file 0644 (its default), before any event
    assert mode(db) & 0o077
    with AuditLog(db) as log:
        log.append(run_id="r", detail={})
    assert mode(db) == 0o600


def test_witness_file_and_its_folder_are_private(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.db") as log:
        log.append(run_id="r", detail={})
        write_checkpoint(log, tmp_path / "w" / "witness.jsonl")
        write_checkpoint(log, tmp_path / "w" / "witness.jsonl")
    assert mode(tmp_path / "w") == 0o700
    assert mode(tmp_path / "w" / "witness.jsonl") == 0o600


def test_private_writers_create_and_narrow(tmp_path: Path) -> None:
    write_private(tmp_path / "new" / "plan.json", "{}")
    assert mode(tmp_path / "new" / "plan.json") == 0o600 and mode(tmp_path / "new") == 0o700
    shared = tmp_path / "report.md"
    shared.write_text("old")
    shared.chmod(0o644)
    write_private(shared, "operators and targets")
    assert mode(shared) == 0o600 and shared.read_text() == "operators and targets"
    with open_private_text(tmp_path / "export.csv", newline="") as fh:
        fh.write("seq\n")
    assert mode(tmp_path / "export.csv") == 0o600


def stored_fingerprint(db: Path, password: str) -> str:
    with AuditLog(db) as log:
        log.append(run_id="r", detail={"note": f"db password={password}"})
        note = log.events()[-1]["detail"]["note"]
    assert password not in note
    found = re.search(r"\[REDACTED (hmac:[0-9a-f]{12})\]", note)
    assert found is not None, note
    return found.group(1)


def test_trail_fingerprints_are_salted_per_trail(tmp_path: Path) -> None:
    one = stored_fingerprint(tmp_path / "one.db", "hunter2")
    two = stored_fingerprint(tmp_path / "two.db", "hunter2")
    assert one != two, "a per-trail salt: one precomputed table does not serve every trail"
    plain = hashlib.sha256(b"hunter2").hexdigest()[:12]
    assert plain not in one and plain not in two
    conn = sqlite3.connect(tmp_path / "one.db")
    (salt,) = conn.execute("SELECT value FROM meta WHERE key = 'fp_salt'").fetchone()
    conn.close()
    assert len(bytes.fromhex(salt)) == 32
    assert one == "hmac:" + hmac.new(bytes.fromhex(salt), b"hunter2",
                                     hashlib.sha256).hexdigest()[:12]


def test_trail_fingerprints_use_the_audit_key_when_set(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "the audit key")
    fp = stored_fingerprint(tmp_path / "keyed.db", "hunter2")
    derived = fingerprint_key_from_audit_key(b"the audit key")
    assert fp == "hmac:" + hmac.new(derived, b"hunter2", hashlib.sha256).hexdigest()[:12]
