"""``AuditLog.append_batch``: the lean append path stores exactly what ``append_many`` stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.audit import _TRIGGERS, FIELDS, KEY_ENV, AuditLog
from console.errors import UsageError


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def events(n: int) -> Iterator[dict[str, object]]:
    for i in range(n):
        yield {"run_id": "r1", "incident": "INC-1", "operator": "op", "mode": "plan",
               "ts": "2026-01-01T00:00:00.000000Z", "integration": f"int-{i}", "step": "s",
               "op_id": f"int-{i}/s/0", "phase": "plan", "action": "flag.disable",
               "target": f"sim:k{i} password=hunter2hunter2", "outcome": "observed",
               "detail": {"before": {"on": True, "x": 1.0, "u": "é\u2028"},
                          "after": {"on": False}, "api_key": "sk-abcdefabcdefabcdefabcdef"}}


def _open(path: Path, key: bytes | None, schema: str, salt: str | None) -> AuditLog:
    log = AuditLog(path, key=key)
    conn = sqlite3.connect(path)
    if schema == "1":
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    if salt is not None:  # the same fingerprint salt as the other trail: the same redactions
        conn.execute("DROP TRIGGER meta_no_update")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'fp_salt'", (salt,))
        conn.execute(_TRIGGERS["meta_no_update"])
    conn.commit()
    conn.close()
    log.close()
    return AuditLog(path, key=key)


@pytest.mark.parametrize("key", [None, b"k"])
@pytest.mark.parametrize("schema", ["2", "1"])
def test_same_rows_and_chain_as_append_many(tmp_path: Path, key: bytes | None,
                                            schema: str) -> None:
    many = _open(tmp_path / "many.db", key, schema, None)
    salt = many._meta()["fp_salt"]
    batch = _open(tmp_path / "batch.db", key, schema, salt)
    for log in (many, batch):
        log.append(run_id="x", ts="2026-01-01T00:00:00.000000Z", detail={"a": 1})
    stored = many.append_many(list(events(20)))
    head = batch.append_batch(events(20))
    assert head == (stored[-1]["seq"], stored[-1]["hash"])
    rows = [list(log._conn.execute(f"SELECT {', '.join(FIELDS)} FROM events"))
            for log in (many, batch)]
    assert rows[0] == rows[1]
    assert "hunter2hunter2" not in str(rows[1]) and "sk-abcdef" not in str(rows[1])
    assert batch.verify().ok and batch.head().seq == 21


def test_empty_and_all_or_nothing(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.db")
    assert log.append_batch(iter(())) is None
    log.append(run_id="x")
    with pytest.raises(UsageError):
        log.append_batch([{"run_id": "y"}, {"colour": "red"}])
    with pytest.raises(UsageError):
        log.append_batch([{"run_id": "y"}, {"run_id": "y", "seq": 7}])
    assert log.head().seq == 1 and log.verify().ok
    assert log.append_batch([{"run_id": "y"}, {"run_id": "y", "seq": 3}]) == (
        3, log.head().hash)
