"""`killswitch evidence verify|show|export` on a kill-switch run over the fake backend."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from tests.cli.conftest import Cli


def kill(cli: Cli) -> str:
    r = cli("run", "kill-switch", "app-0", "--yes", "--reason", "leaked key", "--cause", "leak",
            "--json")
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["run_id"])


def test_verify_export_and_every_tampering_named(cli: Cli, tmp_path: Path) -> None:
    run = kill(cli)
    bundle = cli.root / "evidence" / run
    r = cli("evidence", "verify", run)
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert line.startswith(f"evidence OK: run {run}: 2 file(s) match manifest.json")
    listed = json.loads((bundle / "manifest.json").read_text())["files"]
    assert len(listed) == 2 and listed[0]["integration"] == "app-0"
    r = cli("evidence", "show", run)
    assert r.returncode == 0 and all(f["path"] in r.stdout for f in listed)
    assert "verification: OK" in r.stdout

    out = tmp_path / "handover" / "bundle.tar.gz"
    out.parent.mkdir()
    r = cli("evidence", "export", run, "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    with tarfile.open(out) as tar:
        assert tar.getnames() == [f"{run}/manifest.json", f"{run}/manifest.json.sha256",
                                  *(f"{run}/{f['path']}" for f in listed)]
    r = cli("evidence", "export", run, "--out", str(out))
    assert r.returncode == 2 and "--force" in r.stderr  # never overwritten silently

    # one file edited, one deleted, one planted, then the manifest edited: each is named
    (bundle / listed[0]["path"]).write_text("{}\n")
    (bundle / listed[1]["path"]).unlink()
    (bundle / "app-0" / "notes.txt").write_text("planted")
    r = cli("evidence", "verify", run)
    assert r.returncode == 4
    assert f"changed: {listed[0]['path']}" in r.stdout
    assert f"missing: {listed[1]['path']}" in r.stdout
    assert "extra: app-0/notes.txt" in r.stdout
    assert "manifest.json changed" not in r.stdout
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace(listed[0]["sha256"], "0" * 64))
    r = cli("evidence", "verify", run, "--json")
    assert r.returncode == 4
    data = json.loads(r.stdout)
    assert data["manifest"] == "changed" and data["ok"] is False
    assert data["recorded_sha256"] != data["manifest_sha256"]
    assert data["missing"] == [listed[1]["path"]] and data["extra"] == ["app-0/notes.txt"]
    r = cli("evidence", "export", run, "--out", str(tmp_path / "again.tar.gz"))
    assert r.returncode == 4 and "does not verify" in r.stderr
    assert not (tmp_path / "again.tar.gz").exists()


def test_unknown_or_malformed_run_is_a_usage_error(cli: Cli) -> None:
    r = cli("evidence", "verify", "r-20990101-000000-beef")
    assert r.returncode == 2 and "no evidence bundle for run" in r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.stderr
    r = cli("evidence", "show", "../../etc")
    assert r.returncode == 2 and "refused" in r.stderr and "Traceback" not in r.stderr
