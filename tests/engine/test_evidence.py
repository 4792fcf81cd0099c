"""Evidence bundles (issue 13 §2) on the fake backend with a real audit trail: preserved before
anything is killed, private files, a manifest the trail vouches for, and every tampering named."""

from __future__ import annotations

import hashlib
import json
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Change
from adapters.fake import FakeAdapter
from console.config import Config
from console.engine.evidence import (
    MANIFEST_ACTION,
    EvidenceBundle,
    EvidenceError,
    check_bundle,
    evidence_root,
    export_bundle,
    verify_bundle,
)
from console.engine.service import Session
from console.errors import UsageError, VerificationFailed
from tests.engine.conftest import switches

KILL_ACTIONS = ("flag.disable", "batch.cancel", "egress.block", "credential.disable",
                "credential.destroy")


def session(config: Config, mode: str = "live", cause: str = "leak") -> Session:
    return Session(config, operator="tester", incident="INC-7", mode=mode, cause=cause)


async def kill(config: Config, ids: list[str], cause: str = "leak") -> tuple[Session, Any]:
    s = session(config, cause=cause)
    plan = await s.plan("kill-switch", ids)
    return s, await s.apply(plan, reason="leaked key")


def bundle_dir(config: Config, run_id: str) -> Path:
    return evidence_root(config) / run_id


def manifest(config: Config, run_id: str) -> dict[str, Any]:
    return json.loads((bundle_dir(config, run_id) / "manifest.json").read_text())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_kill_switch_preserves_evidence_before_anything_is_killed(
        make_config: Callable[..., Config]) -> None:
    config = make_config(n=2)
    s, result = await kill(config, ["app-0", "app-1"])
    assert result.exit_code() == 0
    assert set(switches().values()) == {"off"}
    events = s.audit.events(run_id=result.run_id)
    sealed = [e for e in events if e["action"] == MANIFEST_ACTION]
    for integ in ("app-0", "app-1"):
        op = f"{integ}/preserve-evidence/0"
        done = next(e["seq"] for e in events if e.get("op_id") == op
                    and e["phase"] == "apply" and e["outcome"] == "applied")
        seal = next(e["seq"] for e in sealed if e["detail"]["after"] == op)
        first_kill = min(e["seq"] for e in events if e["integration"] == integ
                         and e["phase"] == "apply" and e["action"] in KILL_ACTIONS
                         and e["outcome"] == "started")
        assert seal < done < first_kill, (seal, done, first_kill)
        assert result.results[op].verdict == "preserved"
    # the bundle: private, hashed in its manifest, the manifest's hash in the trail
    root = bundle_dir(config, result.run_id)
    data = manifest(config, result.run_id)
    assert (data["run_id"], data["incident"], data["cause"]) == (result.run_id, "INC-7", "leak")
    assert data["failed"] == []
    paths = [f["path"] for f in data["files"]]
    assert paths == sorted(paths) and len(paths) == 4  # two items per key reference
    for entry in data["files"]:
        path = root / entry["path"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert (sha(path), path.stat().st_size) == (entry["sha256"], entry["size"])
        assert entry["integration"] in entry["path"] and entry["target"].startswith("sim:")
    assert stat.S_IMODE((root / "manifest.json").stat().st_mode) == 0o600
    assert sealed[-1]["detail"]["manifest_sha256"] == sha(root / "manifest.json")
    assert verify_bundle(evidence_root(config), result.run_id, s.audit) == []
    # nothing secret: the fake's key value in its usage file is scrubbed
    text = "".join(p.read_text() for p in root.rglob("*") if p.is_file())
    assert FakeAdapter.secret_of("app-0-key") not in text and "[REDACTED hmac:" in text


async def test_verify_names_every_changed_missing_and_extra_file_and_the_manifest(
        make_config: Callable[..., Config]) -> None:
    config = make_config(n=1)
    s, result = await kill(config, ["app-0"])
    root, run = evidence_root(config), result.run_id
    files = [f["path"] for f in manifest(config, run)["files"]]
    edited, deleted = bundle_dir(config, run) / files[0], bundle_dir(config, run) / files[1]

    edited.write_text(edited.read_text().replace("app-0", "app-9"))
    assert verify_bundle(root, run, s.audit) == [f"changed: {files[0]}"]
    deleted.unlink()
    assert verify_bundle(root, run, s.audit) == [f"changed: {files[0]}",
                                                 f"missing: {files[1]}"]
    (bundle_dir(config, run) / "app-0" / "planted.txt").write_text("x")
    assert "extra: app-0/planted.txt" in verify_bundle(root, run, s.audit)

    m = bundle_dir(config, run) / "manifest.json"
    m.write_text(m.read_text().replace('"INC-7"', '"INC-8"'))
    check = check_bundle(root, run, s.audit)
    assert check.manifest == "changed" and not check.ok
    assert check.problems[0].startswith("manifest.json changed: its SHA-256")


async def test_a_failing_source_is_in_the_manifest_and_containment_goes_on(
        make_config: Callable[..., Config]) -> None:
    config = make_config(n=1, backend='evidence = "fail-source"')
    s, result = await kill(config, ["app-0"])
    assert result.exit_code() == 0 and set(switches().values()) == {"off"}
    op = result.results["app-0/preserve-evidence/0"]
    assert (op.outcome, op.verified, op.verdict) == ("applied", True, "partial")
    (failed,) = manifest(config, result.run_id)["failed"]
    assert failed["source"] == "usage" and "503 usage report unavailable" in failed["message"]
    assert failed["integration"] == "app-0" and failed["target"] == "sim:app-0-key"
    assert verify_bundle(evidence_root(config), result.run_id, s.audit) == []


async def test_a_preserve_that_raises_fails_its_op_and_containment_goes_on(
        make_config: Callable[..., Config]) -> None:
    config = make_config(n=1, backend='evidence = "raise"')
    s, result = await kill(config, ["app-0"])
    op = result.results["app-0/preserve-evidence/0"]
    assert op.outcome == "failed" and "403" in op.message
    # on_error = "continue": flags, then the key, were still killed
    assert set(switches().values()) == {"off"}
    assert result.results["app-0/disable-credentials/0"].outcome == "applied"
    assert result.exit_code() == 1
    (failed,) = manifest(config, result.run_id)["failed"]
    assert failed["source"] == "preserve" and "403" in failed["message"]
    assert verify_bundle(evidence_root(config), result.run_id, s.audit) == []


async def test_a_backend_that_cannot_preserve_says_so_in_the_plan(
        make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeAdapter, "CAN_PRESERVE", False)
    plan = await session(make_config(n=1)).plan("kill-switch", ["app-0"],
                                                record_mode="dry-run")
    (row,) = [c for c in plan.changes if c.action == "evidence.preserve"]
    assert row.status == "unsupported" and "no evidence comes from backend sim" in row.note


def change(integration: str = "app-0", op: str = "app-0/preserve-evidence/0") -> Change:
    return Change(op, integration, "preserve-evidence", "evidence.preserve", "sim", "fake",
                  "sim:app-0-key", {"backend": "sim", "key": "app-0-key"})


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "..", "x" * 200,
                                  "/etc/passwd", "k\x00y"])
def test_item_names_that_could_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    bundle = EvidenceBundle(tmp_path / "evidence", "r-1")
    sink = bundle.sink(change())
    with pytest.raises(EvidenceError, match="refused"):
        sink.json(name, {"a": 1}, source="keys")
    with pytest.raises(EvidenceError, match="refused"):
        sink.file(name, [b"x"], source="batches")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing written anywhere


def test_a_name_used_twice_for_one_reference_is_refused(tmp_path: Path) -> None:
    bundle = EvidenceBundle(tmp_path / "evidence", "r-1")
    sink = bundle.sink(change())
    sink.json("keys", {"id": "k1", "api_key": "sk-proj-" + "Ab3" * 10}, source="keys")
    with pytest.raises(EvidenceError, match="already used"):
        sink.json("keys", {"id": "k2"}, source="keys")
    written = json.loads((tmp_path / "evidence/r-1/app-0/01-sim/keys.json").read_text())
    assert written["id"] == "k1" and written["api_key"].startswith("[REDACTED hmac:")
    # a second reference of the same integration has its own folder
    other = bundle.sink(change(op="app-0/preserve-evidence/1"))
    other.json("keys", {"id": "k2"}, source="keys")
    assert (tmp_path / "evidence/r-1/app-0/02-sim/keys.json").is_file()


def test_a_resumed_bundle_refuses_a_manifest_the_trail_does_not_vouch_for(
        tmp_path: Path) -> None:
    bundle = EvidenceBundle(tmp_path, "r-1")
    bundle.sink(change()).json("keys", {"id": "k1"}, source="keys")
    digest, files, failed = bundle.write_manifest()
    assert (files, failed) == (1, 0)
    # carries on a manifest the trail recorded (the last, or an earlier one: a crash between
    # recording the next hash and renaming the next manifest into place)
    again = EvidenceBundle(tmp_path, "r-1", recorded=["0" * 64, digest])
    assert list(again.files) == ["app-0/01-sim/keys.json"]
    with pytest.raises(EvidenceError, match="not one the audit trail recorded"):
        EvidenceBundle(tmp_path, "r-1", recorded=["0" * 64])
    with pytest.raises(EvidenceError, match="not one the audit trail recorded"):
        EvidenceBundle(tmp_path, "r-1")


async def test_dry_run_and_rehearsal_write_no_evidence(
        make_config: Callable[..., Config]) -> None:
    config = make_config(n=1)
    s = session(config)
    await s.plan("kill-switch", ["app-0"], record_mode="dry-run")
    rehearsed = await s.rehearse("kill-switch", ["app-0"], seed=1, latency={"sim": 0.0})
    assert rehearsed.results["app-0/preserve-evidence/0"].verdict == "preserved"
    assert not evidence_root(config).exists()
    assert switches() == {}  # and nothing was killed
    assert not [e for e in s.audit.events() if e["action"] == MANIFEST_ACTION]


async def test_restore_has_no_evidence_rows_and_keeps_the_bundle(
        make_config: Callable[..., Config]) -> None:
    config = make_config(n=1)
    s, result = await kill(config, ["app-0"], cause="cost")  # a leak's keys stay dead
    undo = s.restore_plan(result.run_id)
    assert undo.changes and all(c.action != "evidence.preserve" for c in undo.changes)
    assert not any("evidence" in line for lines in undo.not_restored().values()
                   for line in lines)
    assert any("evidence bundle" in n and "kept" in n for n in undo.notes)
    back = await s.apply(undo, reason="all clear", saved=True)
    assert back.exit_code() == 0
    assert verify_bundle(evidence_root(config), result.run_id, s.audit) == []


async def test_export_is_a_reproducible_tarball_of_the_manifest_and_files(
        make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(n=1)
    s, result = await kill(config, ["app-0"])
    root, run = evidence_root(config), result.run_id
    out = tmp_path / "bundle.tar.gz"
    export_bundle(root, run, out, s.audit)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with tarfile.open(out) as tar:
        names = tar.getnames()
        data = {n: tar.extractfile(n).read() for n in names}  # type: ignore[union-attr]
    listed = json.loads(data[f"{run}/manifest.json"])
    assert names[:2] == [f"{run}/manifest.json", f"{run}/manifest.json.sha256"]
    assert names[2:] == [f"{run}/{f['path']}" for f in listed["files"]]
    for f in listed["files"]:
        assert hashlib.sha256(data[f"{run}/{f['path']}"]).hexdigest() == f["sha256"]
    recorded = data[f"{run}/manifest.json.sha256"].decode().split()[0]
    assert recorded == hashlib.sha256(data[f"{run}/manifest.json"]).hexdigest()
    first = out.read_bytes()
    with pytest.raises(UsageError, match="exists"):
        export_bundle(root, run, out, s.audit)
    export_bundle(root, run, out, s.audit, force=True)
    assert out.read_bytes() == first  # same bundle, same bytes
    # a bundle that does not verify is not handed over unless asked
    victim = bundle_dir(config, run) / listed["files"][0]["path"]
    victim.write_bytes(victim.read_bytes() + b" ")
    with pytest.raises(VerificationFailed, match="changed: "):
        export_bundle(root, run, tmp_path / "b2.tar.gz", s.audit)
    check = export_bundle(root, run, tmp_path / "b2.tar.gz", s.audit, unverified=True)
    assert not check.ok
    with tarfile.open(tmp_path / "b2.tar.gz") as tar:
        assert len(tar.getnames()) == len(names)


def test_evidence_dir_defaults_next_to_the_audit_db_and_resolves_against_the_config(
        tmp_path: Path) -> None:
    from console.config import load_config
    from tests.engine.conftest import write_config

    path = write_config(tmp_path, n=1)
    assert evidence_root(load_config(path)) == tmp_path / "evidence"
    path.write_text(path.read_text().replace('[settings]\n', '[settings]\nevidence_dir = '
                                             '"vault/bundles"\n', 1))
    assert evidence_root(load_config(path)) == tmp_path / "vault" / "bundles"
