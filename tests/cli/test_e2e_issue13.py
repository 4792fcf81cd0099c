"""Issue 13, done when, through `killswitch sandbox start` (moto with AWS's key-status rule,
OpenBao, the CloudTrail stand-in, a flag file):

1. `kill-switch --cause leak` writes a verified evidence bundle before revocation (the trail
   seals the manifest before the first key is touched), with the key's CloudTrail events;
2. editing one file of the bundle makes `evidence verify` exit 4 naming it;
3. `restore` of the leak brings the flag back and refuses the old key (exit 3, rotate);
4. `rotate` on the integration whose key lives in AWS IAM and AWS Secrets Manager (and Vault)
   leaves a new working key in every copy and the old one dead, proved at STS;
5. no key value ever appears in any output, the trail or the bundle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.cli.test_e2e_sandbox import _free_port
from tests.servers import free_port_pair

CONFIG = """
[settings]
audit_db = "audit.db"
evidence_dir = "evidence"
proof_window = 5
proof_interval = 0.5

[sandbox]
dir = "sb"
openbao_port = {bao}
moto_port = {moto}
ports = {{ cloudtrail = {trail} }}

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

[backends.aws-iam]
type = "aws-iam"
endpoint_url = "http://127.0.0.1:{moto}"
region = "us-east-1"
profile = "killswitch-sandbox"
credentials_file = "sb/aws-credentials"
probe_keys = "on"
cloudtrail_endpoint_url = "http://127.0.0.1:{trail}"

[backends.flags]
type = "flagfile"
path = "flags.json"

[[integrations]]
id = "claims-bot"
name = "Claims bot"
owner = "claims"
environment = "prod"
status = "approved"
provider = "bedrock"
kill_switch_owner = {{ name = "On-call", how = "phone:+44 20 7946 0000" }}

[[integrations.credentials]]
backend = "aws-iam"
user = "claims-bot-bedrock"

[[integrations.credentials]]
backend = "aws-sm"
secret_id = "ai/claims-bot/bedrock"
field = "api_key"

[[integrations.credentials]]
backend = "vault"
path = "ai/claims-bot/bedrock"

[[integrations.flags]]
backend = "flags"
flag = "claims-bot-enabled"
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Path]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(bao=free_port_pair(), moto=_free_port(),
                                    trail=_free_port()))
    (tmp_path / "flags.json").write_text('{"claims-bot-enabled": "on"}\n')
    ks = [sys.executable, "-m", "console", "--config", str(config)]
    r = subprocess.run([*ks, "sandbox", "start"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=180)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield config
    finally:
        subprocess.run([*ks, "sandbox", "stop"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)


def test_leak_evidence_restore_refused_then_rotation(sandbox: Path) -> None:
    root = sandbox.parent
    outputs: list[str] = []

    def ks(*args: str, code: int = 0) -> str:
        r = subprocess.run([sys.executable, "-m", "console", "--config", str(sandbox), *args],
                           capture_output=True, text=True, cwd=root, timeout=180,
                           env={"PATH": "/usr/bin:/bin", "KILLSWITCH_OPERATOR": "ic"})
        outputs.extend([r.stdout, r.stderr])
        assert r.returncode == code, r.stdout + r.stderr
        return r.stdout

    seed = json.loads((root / "sb" / "aws-seed.json").read_text())
    [old_id] = seed["iam"]["claims-bot-bedrock"]
    sm = _client(root, "secretsmanager")
    old = json.loads(sm.get_secret_value(SecretId="ai/claims-bot/bedrock")["SecretString"])
    assert old["aws_access_key_id"] == old_id
    secrets = [old["aws_secret_access_key"]]

    # 1. kill-switch --cause leak: evidence first, sealed in the trail, then the kill
    run = json.loads(ks("run", "kill-switch", "claims-bot", "--cause", "leak", "--yes",
                        "--reason", "key in a public repo", "--json"))
    run_id = run["run_id"]
    assert [(p["state"], p["integration"]) for p in run["proofs"]] == [
        ("revoked", "claims-bot")]
    events = [json.loads(line) for line in
              ks("audit", "export", "--format", "jsonl", "--run", run_id).splitlines()]
    seq_sealed = min(e["seq"] for e in events if e["action"] == "evidence.manifest")
    first_kill = min(e["seq"] for e in events if e["phase"] == "apply"
                     and e["action"] in ("credential.disable", "flag.disable"))
    assert seq_sealed < first_kill
    assert next(e for e in events if e["phase"] == "run"
                and e["outcome"] == "started")["detail"]["cause"] == "leak"
    assert "evidence OK" in ks("evidence", "verify", run_id)
    bundle = root / "evidence" / run_id
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert any("cloudtrail" in p.name for p in files), files
    trail_file = next(p for p in files if "cloudtrail" in p.name)
    assert old_id in trail_file.read_text()  # the key's events, by its id
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)

    # 2. one edited file: exit 4, named
    trail_file.write_text(trail_file.read_text().replace(old_id, "AKIAEDITEDEDITEDEDIT"))
    r = subprocess.run([sys.executable, "-m", "console", "--config", str(sandbox),
                        "evidence", "verify", run_id], capture_output=True, text=True,
                       cwd=root, timeout=60)
    assert r.returncode == 4 and trail_file.name in r.stdout + r.stderr

    # 3. restore of the leak: the flag comes back, the leaked key stays dead (exit 3)
    ks("restore", run_id, "--yes", "--reason", "contained", code=3)
    assert json.loads((root / "flags.json").read_text())["claims-bot-enabled"] == "on"
    assert "rotate" in outputs[-1], outputs[-1]
    assert {k["Status"] for k in _client(root, "iam").list_access_keys(
        UserName="claims-bot-bedrock")["AccessKeyMetadata"]} == {"Inactive"}

    # 4. rotate: a new working key in every copy, the old one dead (proved at STS)
    rotated = json.loads(ks("run", "rotate", "claims-bot", "--cause", "leak", "--yes",
                            "--reason", "replace the leaked key", "--json"))
    verdicts = {o["op_id"].split("/")[1]: o["verdict"] for o in rotated["operations"]}
    assert verdicts.get("issue-key") == "works", rotated["operations"]
    assert all(o["verified"] for o in rotated["operations"]), rotated["operations"]
    new = json.loads(sm.get_secret_value(SecretId="ai/claims-bot/bedrock")["SecretString"])
    assert new["aws_access_key_id"] != old_id
    secrets.append(new["aws_secret_access_key"])
    keys = {k["AccessKeyId"]: k["Status"] for k in _client(root, "iam").list_access_keys(
        UserName="claims-bot-bedrock")["AccessKeyMetadata"]}
    assert keys == {old_id: "Inactive", new["aws_access_key_id"]: "Active"}
    # the new key works where an application uses it: STS accepts it; the old one is refused
    sts = boto3.client("sts", endpoint_url=_endpoint(root), region_name="us-east-1",
                       aws_access_key_id=new["aws_access_key_id"],
                       aws_secret_access_key=new["aws_secret_access_key"])
    assert sts.get_caller_identity()["Arn"].endswith("claims-bot-bedrock")
    old_sts = boto3.client("sts", endpoint_url=_endpoint(root), region_name="us-east-1",
                           aws_access_key_id=old_id,
                           aws_secret_access_key=old["aws_secret_access_key"])
    with pytest.raises(ClientError) as refused:
        old_sts.get_caller_identity()
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
    # the old key was already dead (the leak run proved it): retire finds it so
    assert verdicts.get("retire-old") == "dead", rotated["operations"]
    assert {o["op_id"].split("/")[1] for o in rotated["operations"]} >= {
        "issue-key", "write-copies", "retire-old"}

    # 5. no key value anywhere
    dumped = "".join(outputs) + (root / "audit.db").read_bytes().decode("latin-1")
    dumped += "".join(p.read_text(errors="replace") for p in bundle.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret not in dumped


def _endpoint(root: Path) -> str:
    text = (root / "config.toml").read_text()
    return text.split('endpoint_url = "', 1)[1].split('"', 1)[0]


def _client(root: Path, service: str) -> Any:
    """A client with the sandbox's own credentials (not the application's key)."""
    creds = (root / "sb" / "aws-credentials").read_text().splitlines()
    pairs = {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in creds
                                               if "=" in line)}
    return boto3.client(service, endpoint_url=_endpoint(root), region_name="us-east-1",
                        aws_access_key_id=pairs["aws_access_key_id"],
                        aws_secret_access_key=pairs["aws_secret_access_key"])
