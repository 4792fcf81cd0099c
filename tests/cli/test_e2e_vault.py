"""End to end on real parts: OpenBao dev server, a flagd flag file, SQLite audit trail.

The shipped `kill-switch` runbook contains one integration, `restore` brings it back, and a
planted secret value never appears in any output the console produces.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import hvac
import pytest

from tests.servers import BaoServer

CONFIG = """
[settings]
audit_db = "audit.db"
max_targets = 5

[backends.vault]
type = "vault"
url = "{url}"
token_env = "KS_TEST_VAULT_TOKEN"

[backends.flags]
type = "flagfile"
path = "flags.json"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx-platform"
environment = "prod"
status = "approved"
provider = "openai"
data_classes = ["customer", "personal"]
kill_switch_owner = {{ name = "On-call CX", how = "pagerduty:cx" }}

[[integrations.credentials]]
backend = "vault"
mount = "{mount}"
path = "ai/support-bot/openai"

[[integrations.flags]]
backend = "flags"
flag = "support-bot-enabled"
"""


@pytest.fixture
def world(bao: BaoServer, tmp_path: Path):
    client = hvac.Client(url=bao.url, token=bao.token)
    mount = "e2e-" + secrets.token_hex(4)
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    canary = "sk-proj-" + secrets.token_urlsafe(36)
    client.secrets.kv.v2.create_or_update_secret(path="ai/support-bot/openai",
                                                 secret={"api_key": canary}, mount_point=mount)
    (tmp_path / "flags.json").write_text(json.dumps({"flags": {"support-bot-enabled": {
        "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on",
        "targeting": {}}}}))
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(url=bao.url, mount=mount))
    yield tmp_path, config, client, mount, canary, bao
    client.sys.disable_secrets_engine(mount)


def test_kill_switch_then_restore_with_no_secret_in_any_output(world) -> None:
    root, config, client, mount, canary, bao = world
    outputs: list[str] = []

    def ks(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "console", "--config", str(config), *args],
                           capture_output=True, text=True, cwd=root, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "KS_TEST_VAULT_TOKEN": bao.token,
                                "KILLSWITCH_OPERATOR": "ic-on-call"})
        outputs.extend([r.stdout, r.stderr])
        assert r.returncode == code, r.stdout + r.stderr
        return r

    def app_reads() -> str | None:
        try:
            data = client.secrets.kv.v2.read_secret_version(
                path="ai/support-bot/openai", mount_point=mount, raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            return None
        return data["data"]["data"]["api_key"]

    plan = ks("plan", "kill-switch", "support-bot").stdout
    assert "flag.disable" in plan and "credential.disable" in plan
    assert app_reads() == canary  # planning changed nothing

    run = json.loads(ks("run", "kill-switch", "support-bot", "--yes", "--reason",
                        "key pasted in a public ticket", "--incident", "INC-42", "--json").stdout)
    verdicts = {o["op_id"].split("/")[1]: o["verdict"] for o in run["operations"]}
    assert verdicts == {"preserve-evidence": "preserved", "flags-off": "off",
                        "disable-credentials": "dead"}
    assert app_reads() is None
    flag = json.loads((root / "flags.json").read_text())["flags"]["support-bot-enabled"]
    assert flag["defaultVariant"] == "off"

    ks("restore", run["run_id"], "--yes", "--reason", "key rotated, all clear")
    assert app_reads() == canary
    flag = json.loads((root / "flags.json").read_text())["flags"]["support-bot-enabled"]
    assert flag["defaultVariant"] == "on"

    assert "OK" in ks("audit", "verify").stdout
    outputs.append(ks("report", run["run_id"]).stdout)
    outputs.append(ks("audit", "export", "--format", "jsonl").stdout)
    outputs.append(ks("audit", "export", "--format", "csv").stdout)
    outputs.append(ks("audit", "show", "--run", run["run_id"], "--json").stdout)
    assert "evidence OK" in ks("evidence", "verify", run["run_id"]).stdout
    bundle = [f for f in (root / "evidence" / run["run_id"]).rglob("*") if f.is_file()]
    assert len(bundle) >= 2  # the manifest and the store copy's version history
    outputs.extend(f.read_text() for f in bundle)
    blob = "\n".join(outputs)
    assert "support-bot" in blob
    assert canary not in blob
    for f in root.iterdir():
        if f.name.startswith("audit.db"):
            assert canary.encode() not in f.read_bytes(), f


def test_unreachable_vault_is_a_clear_failure_and_changes_nothing(world) -> None:
    root, config, client, mount, canary, bao = world
    config.write_text(config.read_text().replace(bao.url, "http://127.0.0.1:9"))
    r = subprocess.run([sys.executable, "-m", "console", "--config", str(config), "run",
                        "kill-switch", "support-bot", "--yes", "--reason", "x", "--json"],
                       capture_output=True, text=True, cwd=root, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "KS_TEST_VAULT_TOKEN": bao.token})
    assert r.returncode == 1, r.stderr
    ops = {o["op_id"]: o for o in json.loads(r.stdout)["operations"]}
    cred = ops["support-bot/disable-credentials/0"]
    assert cred["outcome"] == "failed" and "127.0.0.1:9" in cred["message"]
    assert canary not in r.stdout + r.stderr


def test_missing_vault_token_names_the_variable(world) -> None:
    root, config, *_ = world
    r = subprocess.run([sys.executable, "-m", "console", "--config", str(config), "plan",
                        "revoke-credentials", "support-bot"],
                       capture_output=True, text=True, cwd=root, timeout=120,
                       env={"PATH": "/usr/bin:/bin"})
    assert "KS_TEST_VAULT_TOKEN" in r.stdout + r.stderr


def test_scan_finds_unlisted_copy_and_the_plan_can_include_it(world) -> None:
    root, config, client, mount, canary, bao = world
    # someone pasted the same key somewhere the inventory does not know about
    client.secrets.kv.v2.create_or_update_secret(path="scratch/old-bot-key",
                                                 secret={"value": canary}, mount_point=mount)
    client.secrets.kv.v2.create_or_update_secret(path="scratch/unrelated",
                                                 secret={"value": "sk-other-" + "x" * 30},
                                                 mount_point=mount)
    env = {"PATH": "/usr/bin:/bin", "KS_TEST_VAULT_TOKEN": bao.token}

    def ks(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "console", "--config", str(config), *args],
                              capture_output=True, text=True, cwd=root, timeout=120, env=env)

    scan = ks("credentials", "scan", "support-bot", "--json")
    assert scan.returncode == 0, scan.stderr
    copies = json.loads(scan.stdout)["copies"]
    found = {c["ref"]["path"]: c["listed"] for c in copies if c["ref"].get("mount") == mount}
    assert found == {"ai/support-bot/openai": True, "scratch/old-bot-key": False}
    assert canary not in scan.stdout + scan.stderr
    plan = ks("plan", "revoke-credentials", "support-bot", "--include-unlisted")
    assert plan.returncode == 0, plan.stderr
    assert "scratch/old-bot-key (UNLISTED)" in plan.stdout
    run = ks("run", "revoke-credentials", "support-bot", "--include-unlisted", "--yes",
             "--reason", "leak", "--json")
    assert run.returncode == 0, run.stderr
    for path in ("ai/support-bot/openai", "scratch/old-bot-key"):
        meta = client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
        current = str(meta["data"]["current_version"])
        assert meta["data"]["versions"][current]["deletion_time"], path
