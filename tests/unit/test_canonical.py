"""One canonical JSON (RFC 8785) for every hash: a verifier in another language reproduces
the audit chain, and trails and plans hashed the old way (version 1) still verify."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from adapters.canonical import canonical_json, jsonable, legacy_json
from console.audit import FIELDS, AuditLog
from console.engine.model import Plan

# JCS is ECMAScript's JSON.stringify with object keys sorted by UTF-16 code units: this is
# an independent verifier of an exported trail, in another language.
NODE_VERIFIER = r"""
const crypto = require('crypto');
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(Boolean);
function jcs(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(jcs).join(',') + ']';
  return '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + jcs(v[k])).join(',') + '}';
}
let prev = '0'.repeat(64), n = 0;
for (const line of lines) {
  const e = JSON.parse(line);
  const hash = e.hash; delete e.hash;
  if (e.prev_hash !== prev) { console.log('BROKEN link at ' + e.seq); process.exit(1); }
  const h = crypto.createHash('sha256').update(Buffer.from(jcs(e), 'utf8')).digest('hex');
  if (h !== hash) { console.log('BROKEN hash at ' + e.seq); process.exit(1); }
  prev = hash; n++;
}
console.log('OK ' + n);
"""

AWKWARD = {"é": "naïve ☃ 𝄞", "floats": [1.0, 0.1, 1e21, -0.0, 5e-324], "big": 2**60,
           "nested": {"b": [True, None], "a": {"\u00e9": 1, "e": 2, "\U0001f600": 3}}}


def test_an_exported_trail_verifies_in_another_language(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    log = AuditLog(tmp_path / "audit.db")
    for i in range(5):
        log.append(run_id="r-1", phase="apply", outcome="applied", target=f"t-{i}é",
                   detail={**AWKWARD, "i": i, "ratio": i / 3})
    assert log.verify().ok
    export = tmp_path / "trail.jsonl"
    with export.open("w") as fh:
        log.export("jsonl", fh)
    r = subprocess.run([node, "-e", NODE_VERIFIER], input=export.read_text(),
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "OK 5", r.stdout + r.stderr
    # the old form would not have matched: it escapes non-ASCII and writes 1.0 as "1.0"
    assert legacy_json(AWKWARD) != canonical_json(AWKWARD)


def test_a_version_1_trail_still_verifies_and_keeps_its_form(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    AuditLog(db).close()  # creates the schema
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                     [("schema_version", "1"), ("keyed", "0")])
    conn.commit()
    conn.close()
    log = AuditLog(db)
    (event,) = [log.append(run_id="r-old", outcome="applied", detail=AWKWARD)]
    body = {k: event[k] for k in FIELDS if k != "hash"}
    assert event["hash"] == hashlib.sha256(legacy_json(body).encode()).hexdigest()
    assert log.verify().ok
    sqlite_edit = sqlite3.connect(db)
    sqlite_edit.execute("DROP TRIGGER events_no_update")
    sqlite_edit.execute("UPDATE events SET outcome = 'failed'")
    sqlite_edit.commit()
    sqlite_edit.close()
    report = AuditLog(db, readonly=True).verify()
    assert not report.ok and report.first_bad_seq == 1


def test_plans_hash_by_their_own_version(tmp_path: Path) -> None:
    plan = Plan("r-1", "contain", ["a"], ["a"], [], [], notes=["naïve"])
    assert plan.version == 2
    body = plan.body()
    assert plan.hash == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    old = Plan("r-1", "contain", ["a"], ["a"], [], [], notes=["naïve"], version=1)
    assert old.hash == hashlib.sha256(legacy_json(old.body()).encode()).hexdigest()
    path = tmp_path / "plan.json"
    path.write_text(old.to_json())
    assert Plan.load(path).hash == old.hash


def test_values_jcs_cannot_hold_are_normalised_the_same_way_every_time() -> None:
    assert jsonable({"n": 2**60, "f": float("nan"), "s": "\ud800"}) == {
        "n": str(2**60), "f": "nan", "s": "\\ud800"}
    assert json.loads(canonical_json({"n": 2**53 - 1})) == {"n": 2**53 - 1}


def test_the_fast_encoder_writes_exactly_what_the_reference_writes() -> None:
    """canonical_bytes takes Python's C encoder when it agrees with RFC 8785; over random
    nested data full of the cases where the two could differ (escapes, U+2028, private-use
    and astral characters in keys, integral floats, tiny and huge floats, -0.0, big ints)
    its bytes must be the reference implementation's, and most values take the fast path."""
    import random

    import rfc8785

    from adapters.canonical import _c_encoder_is_jcs, _for_c_encoder, canonical_bytes, jsonable

    rnd = random.Random(7)
    chars = ["a", "Z", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028",
             "\ue000", "\uffff", "😀", "/", "<"]
    floats = [0.0, -0.0, 1.0, 1.5, 0.1, 1e-5, 1e-4, 0.00012, 123456.789, 1e15 + 0.5, 1e16,
              1e21, 1e22, -2.5, 5e-324, 1.7976931348623157e308]

    def text() -> str:
        return "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 6)))

    def value(depth: int = 0) -> object:
        r = rnd.random()
        if depth > 3 or r < 0.3:
            return rnd.choice([text(), rnd.randint(-2**60, 2**60), rnd.choice(floats),
                               rnd.uniform(-1e6, 1e6), True, None, rnd.randint(-9, 9)])
        if r < 0.65:
            return {text(): value(depth + 1) for _ in range(rnd.randint(0, 4))}
        return [value(depth + 1) for _ in range(rnd.randint(0, 4))]

    fast = 0
    for _ in range(5000):
        data = value()
        assert canonical_bytes(data) == rfc8785.dumps(jsonable(data)), repr(data)
        fast += _c_encoder_is_jcs(_for_c_encoder(data))
    assert fast > 2500
