"""End to end through `killswitch sandbox start`: one key with copies in Vault (OpenBao), AWS
Secrets Manager (moto) and Google Secret Manager (stand-in), plus the provider key (Anthropic
stand-in). `kill-switch` disables every one in one run, verify shows each dead, proof of death
shows the provider refusing the key, `restore` brings every one back, the chain verifies, and
the key value never appears in any output.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.config import load_config
from console.sandbox.seedkeys import sandbox_key_value
from tests.servers import free_port_pair


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """
[settings]
audit_db = "audit.db"
proof_window = 2
proof_interval = 0.5

[sandbox]
dir = "sb"
openbao_port = {bao}
moto_port = {moto}
ports = {{ anthropic = {anthropic}, gcp = {gcp} }}

[backends.vault]
type = "vault"
url = "http://127.0.0.1:{bao}"
token_env = "KS_E2E_UNSET"
token_file = "sb/openbao.token"

[backends.aws-sm]
type = "aws-secrets"
endpoint_url = "http://127.0.0.1:{moto}"
region = "us-east-1"
profile = "killswitch-sandbox"
credentials_file = "sb/aws-credentials"

[backends.gcp-sm]
type = "gcp-secrets"
project = "ks-e2e"
endpoint = "http://127.0.0.1:{gcp}"
anonymous = true

[backends.anthropic]
type = "anthropic"
base_url = "http://127.0.0.1:{anthropic}"
admin_key_env = "KS_E2E_UNSET"
admin_key_file = "sb/anthropic-admin.key"

[[integrations]]
id = "review-agent"
name = "Review agent"
owner = "devex"
environment = "prod"
status = "approved"
provider = "anthropic"
kill_switch_owner = {{ name = "On-call", how = "phone:+44 20 7946 0000" }}

[[integrations.credentials]]
backend = "anthropic"
api_key_id = "apikey_review_agent"

[[integrations.credentials]]
backend = "vault"
path = "ai/review-agent/key"

[[integrations.credentials]]
backend = "aws-sm"
secret_id = "ai/review-agent/key"

[[integrations.credentials]]
backend = "gcp-sm"
name = "projects/ks-e2e/secrets/review-agent-key"
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Path]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(bao=free_port_pair(), moto=_free_port(),
                                    anthropic=_free_port(), gcp=_free_port()))
    ks = [sys.executable, "-m", "console", "--config", str(config)]
    r = subprocess.run([*ks, "sandbox", "start"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield config
    finally:
        subprocess.run([*ks, "sandbox", "stop"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)


def test_kill_switch_everywhere_then_restore(sandbox: Path) -> None:
    root = sandbox.parent
    key = sandbox_key_value(load_config(sandbox), "anthropic", "apikey_review_agent")
    outputs: list[str] = []

    def ks(*args: str, code: int = 0) -> str:
        r = subprocess.run([sys.executable, "-m", "console", "--config", str(sandbox), *args],
                           capture_output=True, text=True, cwd=root, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "KILLSWITCH_OPERATOR": "ic"})
        outputs.extend([r.stdout, r.stderr])
        assert r.returncode == code, r.stdout + r.stderr
        return r.stdout

    scan = json.loads(ks("credentials", "scan", "review-agent", "--json"))
    stores = {c["backend"] for c in scan["copies"]}
    assert stores == {"vault", "aws-sm", "gcp-sm"}, scan  # the same key in all three

    run = json.loads(ks("run", "kill-switch", "review-agent", "--yes", "--reason",
                        "key leaked", "--json"))
    verdicts = {o["op_id"]: (o["outcome"], o["verdict"]) for o in run["operations"]}
    kills = {op: v for op, v in verdicts.items() if "/preserve-evidence/" not in op}
    assert len(kills) == 4 and len(verdicts) == 8  # and the evidence of each reference
    assert all(v == ("applied", "dead") for v in kills.values()), verdicts
    assert all(v[0] == "applied" for op, v in verdicts.items() if op not in kills), verdicts
    assert [(p["state"], p["integration"]) for p in run["proofs"]] == [
        ("revoked", "review-agent")]

    restored = json.loads(ks("restore", run["run_id"], "--yes", "--reason", "rotated",
                             "--json"))
    assert len(restored["operations"]) == 4
    assert {o["verdict"] for o in restored["operations"]} == {"restored"}
    # the key works again at the provider and reads from every store
    again = json.loads(ks("credentials", "scan", "review-agent", "--json"))
    assert {c["backend"] for c in again["copies"]} == {"vault", "aws-sm", "gcp-sm"}

    assert "OK" in ks("audit", "verify")
    outputs.append(ks("report", run["run_id"]))
    outputs.append(ks("audit", "export", "--format", "jsonl"))
    assert "evidence OK" in ks("evidence", "verify", run["run_id"])
    outputs.extend(f.read_text(errors="replace")
                   for f in (root / "evidence" / run["run_id"]).rglob("*") if f.is_file())
    blob = "\n".join(outputs)
    assert key not in blob
    assert key.encode() not in (root / "audit.db").read_bytes()
