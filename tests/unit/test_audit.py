"""The audit trail: append-only, hash-chained, scrubbed, fail-closed, safe to share."""

from __future__ import annotations

import csv
import io
import json
import secrets
import shutil
import sqlite3
import string
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from console.audit import GENESIS_HASH, KEY_ENV, AuditLog, ChainReport
from console.errors import AuditError, AuditTampered, UsageError
from console.scrub import fingerprint_secret

SQLITE3 = shutil.which("sqlite3")
# `make test` installs the sqlite3 CLI; a missing one fails these tests loudly, never skips.
ALNUM = string.ascii_letters + string.digits


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.db"


def event(i: int, **extra: object) -> dict[str, object]:
    return {"run_id": "run-1", "incident": "INC-7", "operator": "alice", "mode": "live",
            "integration": "support-bot", "step": "revoke", "op_id": f"support-bot/revoke/{i}",
            "phase": "apply", "action": "credential.disable", "target": f"kv:secret/ai/{i}",
            "outcome": "applied", "detail": {"i": i}, **extra}


def fill(path: Path, n: int = 5, key: bytes | None = None) -> None:
    with AuditLog(path, key=key) as log:
        log.append_many([event(i) for i in range(1, n + 1)])


def cli(path: Path, sql: str) -> None:
    assert SQLITE3 is not None
    subprocess.run([SQLITE3, str(path), sql], check=True, capture_output=True, text=True)


def verify(path: Path, key: bytes | None = None) -> ChainReport:
    with AuditLog(path, key=key) as log:
        return log.verify()


def test_appended_events_chain_and_verify(db_path: Path) -> None:
    with AuditLog(db_path) as log:
        first = log.append(**event(1))
        rest = log.append_many([event(2), event(3)])
        assert [e["seq"] for e in [first, *rest]] == [1, 2, 3]
        assert first["prev_hash"] == GENESIS_HASH
        assert rest[0]["prev_hash"] == first["hash"] and rest[1]["prev_hash"] == rest[0]["hash"]
        assert first["ts"].endswith("Z") and len(first["ts"]) == len("2024-01-01T00:00:00.000000Z")
        assert first["host"]
        report = log.verify()
    assert report == ChainReport(ok=True, count=3, first_bad_seq=None, reason="",
                                 last_good_seq=3, checkpoints=0)
    # Reopening keeps the chain going.
    with AuditLog(db_path) as log:
        assert log.append(**event(4))["seq"] == 4
        assert log.verify().ok


def test_database_uses_wal_and_keeps_other_tables(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE locks (integration TEXT PRIMARY KEY, holder TEXT)")
        conn.execute("INSERT INTO locks VALUES ('support-bot', 'bob')")
    conn.close()
    fill(db_path, 2)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT holder FROM locks").fetchall() == [("bob",)]
    conn.close()


def test_update_and_delete_are_rejected_by_triggers(db_path: Path) -> None:
    fill(db_path, 3)
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET outcome = 'failed' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events WHERE seq = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'keyed'")
    conn.close()
    assert verify(db_path).ok and verify(db_path).count == 3


def test_row_edited_with_sqlite3_cli_is_caught_at_its_seq(db_path: Path) -> None:
    fill(db_path, 6)
    cli(db_path, "DROP TRIGGER events_no_update; "
                 "UPDATE events SET detail = '{\"i\":99}' WHERE seq = 4;")
    report = verify(db_path)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.count == 3
    assert "edited" in report.reason
    with AuditLog(db_path) as log, pytest.raises(AuditTampered) as info:
        log.verify_or_raise()
    assert info.value.seq == 4 and info.value.exit_code == 4


def test_deleted_row_is_caught(db_path: Path) -> None:
    fill(db_path, 5)
    cli(db_path, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 2;")
    report = verify(db_path)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "missing" in report.reason


def test_rows_deleted_from_the_end_are_caught(db_path: Path) -> None:
    fill(db_path, 5)
    cli(db_path, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq >= 4;")
    report = verify(db_path)
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_reordered_rows_are_caught(db_path: Path) -> None:
    fill(db_path, 5)
    cli(db_path, "DROP TRIGGER events_no_update; "
                 "UPDATE events SET seq = -2 WHERE seq = 2; "
                 "UPDATE events SET seq = 2 WHERE seq = 3; "
                 "UPDATE events SET seq = 3 WHERE seq = -2;")
    report = verify(db_path)
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_keyed_chain_cannot_be_rewritten_without_the_key(db_path: Path) -> None:
    key = b"incident-key-2024"
    fill(db_path, 4, key=key)
    assert verify(db_path, key=key).ok
    # An attacker edits row 3 and recomputes plain SHA-256 hashes: still caught.
    with AuditLog(db_path, key=key) as log:
        rows = log.events()
    cli(db_path, "DROP TRIGGER events_no_update;")
    forged = AuditLog.__new__(AuditLog)
    forged._key = None
    prev = rows[1]["hash"]
    sql = []
    for row in rows[2:]:
        row["outcome"] = "noop" if row["seq"] == 3 else row["outcome"]
        row["prev_hash"] = prev
        row["hash"] = prev = forged._digest(row)
        sql.append(f"UPDATE events SET outcome='{row['outcome']}', prev_hash='{row['prev_hash']}'"
                   f", hash='{row['hash']}' WHERE seq={row['seq']};")
    cli(db_path, "".join(sql))
    report = verify(db_path, key=key)
    assert (report.ok, report.first_bad_seq) == (False, 3)


def test_keyed_chain_needs_the_right_key(db_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "right key")
    fill(db_path, 3)  # key taken from the environment
    assert verify(db_path).ok
    wrong = verify(db_path, key=b"wrong key")
    assert not wrong.ok and wrong.first_bad_seq == 1 and "key" in wrong.reason
    monkeypatch.delenv(KEY_ENV)
    with AuditLog(db_path) as log:
        # Verifying a keyed trail without its key is a failed verification (exit 4), not
        # an error (exit 1): nothing about the trail can be vouched for.
        report = log.verify()
        assert not report.ok and KEY_ENV in report.reason
        with pytest.raises(AuditTampered) as info:
            log.verify_or_raise()
        assert info.value.exit_code == 4
        with pytest.raises(AuditError):
            log.append(**event(4))  # would mix unkeyed events into a keyed chain
    with AuditLog(db_path, key=b"wrong key") as log, pytest.raises(AuditError):
        log.append(**event(4))
    assert verify(db_path, key=b"right key").count == 3


def test_unkeyed_chain_fails_verify_when_a_key_is_expected(db_path: Path) -> None:
    fill(db_path, 2)
    report = verify(db_path, key=b"k")
    assert not report.ok and "not keyed" in report.reason


def test_concurrent_writers_keep_one_valid_chain(db_path: Path) -> None:
    fill(db_path, 1)
    script = textwrap.dedent(f"""
        from console.audit import AuditLog
        log = AuditLog({str(db_path)!r})
        for i in range(15):
            log.append_many([{{"run_id": "proc", "detail": {{"i": i, "j": j}}}}
                             for j in range(3)])
        log.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    errors: list[BaseException] = []
    with AuditLog(db_path) as shared:
        def worker(n: int) -> None:
            try:
                for i in range(20):
                    shared.append(run_id="thread", detail={"t": n, "i": i})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert errors == []
    report = verify(db_path)
    assert report.ok, report
    assert report.count == 1 + 3 * 15 * 3 + 4 * 20
    with AuditLog(db_path) as log:
        seqs = [e["seq"] for e in log.events()]
        assert seqs == list(range(1, report.count + 1))
        # Each append_many batch is contiguous: one transaction.
        proc = [e for e in log.events(run_id="proc")]
    for k in range(0, len(proc), 3):
        batch = proc[k:k + 3]
        assert [e["seq"] - batch[0]["seq"] for e in batch] == [0, 1, 2]


def test_planted_secrets_never_reach_the_file_or_exports(db_path: Path) -> None:
    openai = "sk-proj-" + "".join(secrets.choice(ALNUM) for _ in range(37)) + "aZ9"
    vault = "hvs." + "".join(secrets.choice(ALNUM) for _ in range(90)) + "aZ9"
    with AuditLog(db_path) as log:
        log.append(**event(1, target=f"openai key {openai}",
                           detail={"error": f"401 for key {openai}", "token": vault,
                                   "nested": [{"header": f"Authorization: Bearer {vault}"}]}))
        log.append(**event(2, operator=f"alice password={vault}"))
        jsonl, csv_out = io.StringIO(), io.StringIO()
        assert log.export("jsonl", jsonl) == 2
        assert log.export("csv", csv_out) == 2
        stored = log.events()
        fp_openai, fp_vault = log.fingerprint(openai), log.fingerprint(vault)
    assert verify(db_path).ok
    blob = b"".join(p.read_bytes() for p in db_path.parent.iterdir())
    for secret in (openai, vault):
        assert secret.encode() not in blob
        assert secret not in jsonl.getvalue() and secret not in csv_out.getvalue()
    # Fingerprints let an investigator match the key without seeing it.
    assert fp_openai in stored[0]["target"]
    assert stored[0]["detail"]["token"] == f"[REDACTED {fp_vault}]"
    # The scrubber's default in this process is the open trail's key: screen and trail agree.
    assert fingerprint_secret(vault).startswith("hmac:")


def test_events_filters_and_runs_summary(db_path: Path) -> None:
    with AuditLog(db_path) as log:
        log.append_many([
            event(1, run_id="r1", ts="2024-05-01T10:00:00.000000Z", outcome="started"),
            event(2, run_id="r1", ts="2024-05-01T10:00:02.000000Z", outcome="applied"),
            event(3, run_id="r1", ts="2024-05-01T10:00:03.000000Z", outcome="failed",
                  integration="batch-bot"),
            event(4, run_id="r2", incident="INC-8", mode="dry-run",
                  ts="2024-05-02T09:00:00.000000Z", outcome="planned"),
        ])
        assert [e["seq"] for e in log.events(run_id="r1")] == [1, 2, 3]
        assert [e["seq"] for e in log.events(integration="batch-bot")] == [3]
        assert [e["seq"] for e in log.events(run_id="r1", outcome="applied")] == [2]
        assert log.events(incident="INC-8")[0]["detail"] == {"i": 4}
        runs = log.runs()
    assert [r["run_id"] for r in runs] == ["r1", "r2"]
    assert runs[0]["first_ts"] == "2024-05-01T10:00:00.000000Z"
    assert runs[0]["last_ts"] == "2024-05-01T10:00:03.000000Z"
    assert runs[0]["count"] == 3 and runs[0]["operator"] == "alice"
    assert runs[0]["outcomes"] == {"applied": 1, "failed": 1, "started": 1}
    assert (runs[1]["mode"], runs[1]["incident"]) == ("dry-run", "INC-8")


def test_export_jsonl_and_csv_round_trip(db_path: Path) -> None:
    with AuditLog(db_path) as log:
        log.append_many([event(1, detail={"a": [1, 2], "b": "x,y"}), event(2, run_id="other")])
        jsonl, csv_out = io.StringIO(), io.StringIO()
        assert log.export("jsonl", jsonl, run_id="run-1") == 1
        assert log.export("csv", csv_out) == 2
        with pytest.raises(UsageError):
            log.export("xml", io.StringIO())  # type: ignore[arg-type]
    line = json.loads(jsonl.getvalue())
    assert line["detail"] == {"a": [1, 2], "b": "x,y"} and line["seq"] == 1
    rows = list(csv.DictReader(io.StringIO(csv_out.getvalue())))
    assert [r["seq"] for r in rows] == ["1", "2"]
    assert json.loads(rows[0]["detail"]) == {"a": [1, 2], "b": "x,y"}
    assert rows[0]["hash"] == line["hash"]


def test_bad_events_are_refused_and_nothing_is_written(db_path: Path) -> None:
    with AuditLog(db_path) as log:
        with pytest.raises(UsageError):
            log.append_many([event(1), {"colour": "red"}])
        with pytest.raises(UsageError):
            log.append(run_id="r", hash="0" * 64)
        with pytest.raises(UsageError):
            log.append(run_id="r", detail=["not", "a", "dict"])
        assert log.events() == []
        assert log.append_many([]) == []


def test_unwritable_path_fails_closed(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(AuditError) as info:
        AuditLog(blocker / "audit.db")
    assert info.value.hint and str(blocker) in info.value.where


def test_file_that_is_not_a_database_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not sqlite " * 20)
    with pytest.raises(AuditError, match="not a database") as info:
        AuditLog(path)
    assert "evidence" in info.value.hint


def test_locked_database_fails_closed_without_writing(db_path: Path) -> None:
    fill(db_path, 1)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with AuditLog(db_path, busy_timeout=0.2) as log:
            with pytest.raises(AuditError) as info:
                log.append(**event(2))
            assert "locked" in str(info.value) and info.value.hint
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert verify(db_path).count == 1


def test_closed_log_raises_audit_error(db_path: Path) -> None:
    log = AuditLog(db_path)
    log.close()
    with pytest.raises(AuditError):
        log.append(**event(1))


def test_verify_hashes_the_stored_bytes_exactly_as_the_writer_did(tmp_path: Path) -> None:
    """verify builds each hashed body from the stored row (no JSON round trip); for every
    kind of text (quotes, backslashes, control characters, non-ASCII, empty, None) it must
    be byte for byte what the writer hashed, or a genuine trail would read as edited."""
    import sqlite3

    from console.audit import FIELDS, _chain_bytes, _stored_body

    texts = ["plain", 'with "quote"', "back\\slash", "tab\tnew\nline\x01", "ünïcödé ✓",
             "", "emoji 🛑", "\u2028sep", "</script>"]
    log = AuditLog(tmp_path / "audit.db")
    try:
        log.append_many([{"phase": "apply", "action": t, "target": texts[-1 - i],
                          "run_id": None if i % 2 else t,
                          "detail": {"note": t, "n": i, "x": [1.5, None, True, {"k": t}]}}
                         for i, t in enumerate(texts)])
    finally:
        log.close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    rows = conn.execute(f"SELECT {', '.join(FIELDS)} FROM events ORDER BY seq").fetchall()
    conn.close()
    for values in rows:
        row = dict(zip(FIELDS, values, strict=True))
        parsed = {**row, "detail": json.loads(row["detail"])}
        expected = _chain_bytes({k: parsed[k] for k in FIELDS if k != "hash"}, "2")
        assert _stored_body(values) == expected
    again = AuditLog(tmp_path / "audit.db")
    try:
        assert again.verify().ok
    finally:
        again.close()


def test_several_openers_of_a_brand_new_trail_all_get_it(tmp_path: Path) -> None:
    """A commander's CLI and console (or two commanders on one machine) opening a trail that
    does not exist yet, at the same moment: SQLite refuses the switch to WAL with "database
    is locked" without waiting when it could deadlock with the one creating the tables. Each
    opener waits its turn; every event lands, one chain."""
    failures: list[str] = []
    for round_ in range(60):
        path = tmp_path / f"t{round_}" / "audit.db"
        start = threading.Barrier(6)

        def open_and_append(who: int, path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                log = AuditLog(path)
                log.append(run_id=f"r-{who}", phase="run", action="kill-switch",
                           outcome="started")
                log.close()
            except AuditError as exc:
                failures.append(exc.msg)

        threads = [threading.Thread(target=open_and_append, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with AuditLog(path, readonly=True) as log:
            assert log.verify().ok and len(log.events()) == 6 - len(failures)
    assert failures == []
