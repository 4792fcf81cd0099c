"""`killswitch run rotate` end to end through the real entry point.

On the sandbox (`killswitch sandbox start`: OpenBao, and moto holding IAM users' own keys to
AWS's rules): an integration whose key is an IAM access key with copies in Secrets Manager,
SSM and Vault ends with one new working key in every copy and the old key dead, proven at
STS; neither value appears in any output, the plan file or the exported trail.

Pasted keys (a Vault-only integration: no provider in the inventory issues a key): refused
without --new-key-from (exit 3), a pasted key equal to the old one refused (exit 3), a key
file others can read refused (exit 2), and a good one written everywhere, unseen.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.servers import BaoServer, free_port_pair

USER = "claims-summariser-bedrock"
SECRET = "ai/claims-summariser/bedrock"
PARAM = "/ai/claims-summariser/bedrock"
VAULT_PATH = "ai/claims-summariser/provider-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SANDBOX = """
[settings]
audit_db = "audit.db"
proof_window = 2
proof_interval = 0.5

[sandbox]
dir = "sb"
openbao_port = {bao}
moto_port = {moto}

[backends.vault]
type = "vault"
url = "http://127.0.0.1:{bao}"
token_env = "KS_E2E_UNSET"
token_file = "sb/openbao.token"
{aws}
[[integrations]]
id = "claims-summariser"
name = "Claims summariser"
owner = "team-claims"
environment = "prod"
status = "approved"
provider = "bedrock"
kill_switch_owner = {{ name = "On-call", how = "phone:+44 20 7946 0000" }}

[[integrations.credentials]]
backend = "vault"
path = "{path}"

[[integrations.credentials]]
backend = "aws-iam"
user = "{user}"

[[integrations.credentials]]
backend = "aws-sm"
secret_id = "{secret}"
field = "api_key"

[[integrations.credentials]]
backend = "aws-ssm"
name = "{param}"
"""


def _aws_backends(port: int) -> str:
    common = (f'endpoint_url = "http://127.0.0.1:{port}"\nregion = "us-east-1"\n'
              'profile = "killswitch-sandbox"\ncredentials_file = "sb/aws-credentials"\n')
    return "".join(f'\n[backends.{name}]\ntype = "{kind}"\n{common}{extra}'
                   for name, kind, extra in (("aws-iam", "aws-iam", 'probe_keys = "on"\n'),
                                             ("aws-sm", "aws-secrets", ""),
                                             ("aws-ssm", "aws-ssm", "")))


class Ks:
    """The `killswitch` entry point on one config; remembers every output."""

    def __init__(self, config: Path, ports: dict[str, int] | None = None) -> None:
        self.config = config
        self.ports = ports or {}
        self.outputs: list[str] = []

    def __call__(self, *args: str, code: int | None = 0) -> str:
        r = subprocess.run([sys.executable, "-m", "console", "--config", str(self.config),
                            *args], capture_output=True, text=True, cwd=self.config.parent,
                           timeout=120, stdin=subprocess.DEVNULL,
                           env={"PATH": "/usr/bin:/bin", "KILLSWITCH_OPERATOR": "ic"})
        self.outputs += [r.stdout, r.stderr]
        if code is not None:
            assert r.returncode == code, r.stdout + r.stderr
        return r.stdout + r.stderr if code else r.stdout


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Ks]:
    ports = {"moto": _free_port(), "bao": free_port_pair()}
    config = tmp_path / "config.toml"
    config.write_text(SANDBOX.format(bao=ports["bao"], moto=ports["moto"],
                                     aws=_aws_backends(ports["moto"]), path=VAULT_PATH,
                                     user=USER, secret=SECRET, param=PARAM))
    ks = Ks(config, ports)
    ks("sandbox", "start")
    try:
        yield ks
    finally:
        ks("sandbox", "stop", code=None)


class View:
    """The test's own view of the sandbox's stores and STS (not the adapters')."""

    def __init__(self, ks: Ks) -> None:
        import boto3
        from botocore.config import Config

        self.kw: dict[str, Any] = dict(endpoint_url=f"http://127.0.0.1:{ks.ports['moto']}",
                                       region_name="us-east-1",
                                       config=Config(retries={"total_max_attempts": 1}))
        creds = dict(aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
        self.sm = boto3.client("secretsmanager", **self.kw, **creds)
        self.ssm = boto3.client("ssm", **self.kw, **creds)
        self.iam = boto3.client("iam", **self.kw, **creds)
        token = (ks.config.parent / "sb" / "openbao.token").read_text().strip()
        self.vault = hvac.Client(url=f"http://127.0.0.1:{ks.ports['bao']}", token=token)

    def copies(self) -> dict[str, dict[str, str]]:
        sm = self.sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")
        ssm = self.ssm.get_parameter(Name=PARAM, WithDecryption=True)["Parameter"]["Value"]
        vault = self.vault.secrets.kv.v2.read_secret_version(
            path=VAULT_PATH, raise_on_deleted_version=True)["data"]["data"]
        return {"sm": json.loads(sm["SecretString"]), "ssm": json.loads(ssm), "vault": vault}

    def sts(self, key_id: str, secret: str) -> str:
        import boto3
        from botocore.exceptions import ClientError

        sts = boto3.client("sts", aws_access_key_id=key_id, aws_secret_access_key=secret,
                           **self.kw)
        try:
            sts.get_caller_identity()
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"


def test_rotate_on_the_sandbox_new_key_everywhere_old_key_dead(sandbox: Ks) -> None:
    root = sandbox.config.parent
    view = View(sandbox)
    before = view.copies()
    old_id, old = before["sm"]["aws_access_key_id"], before["sm"]["api_key"]
    assert before["ssm"] == before["vault"] == before["sm"], "the seed: one key, three copies"
    assert view.sts(old_id, old) == "ok"

    text = sandbox("plan", "rotate", "claims-summariser", "--out", "plan.json")
    assert "new key: issued by AWS IAM at apply" in text
    run = json.loads(sandbox("run", "--plan", "plan.json", "--yes", "--reason",
                             "an engineer left", "--json"))
    assert [(o["outcome"], o["verdict"]) for o in run["operations"]] == [
        ("applied", "works"), ("applied", "written"), ("applied", "written"),
        ("applied", "written"), ("applied", "dead")]
    assert [(p["integration"], p["state"]) for p in run["proofs"]] == [
        ("claims-summariser", "revoked")]

    after = view.copies()
    new_id, new = after["sm"]["aws_access_key_id"], after["sm"]["api_key"]
    assert new_id != old_id and new != old
    assert after["sm"] == after["ssm"] == after["vault"] == {
        "api_key": new, "aws_access_key_id": new_id, "aws_secret_access_key": new}
    assert view.sts(new_id, new) == "ok", "the new key works at STS"
    assert view.sts(old_id, old) == "InvalidClientTokenId", "the old key is dead"
    keys = view.iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in keys} == {old_id: "Inactive",
                                                            new_id: "Active"}

    trail = sandbox("audit", "export", "--format", "jsonl")
    report = sandbox("report", run["run_id"])
    assert run["run_id"] in trail and "rotate" in report
    seen = "\n".join([*sandbox.outputs, (root / "plan.json").read_text()])
    for value in (old, new):
        assert value not in seen, "a key value reached an output, the plan or the trail"


# -- pasted keys ---------------------------------------------------------------------------

PASTED = """
[settings]
audit_db = "audit.db"

[backends.vault]
type = "vault"
url = "{url}"
token_env = "KS_PASTE_UNSET"
token_file = "vault.token"

[[integrations]]
id = "review-agent"
name = "Review agent"
owner = "devex"
environment = "prod"
status = "approved"
provider = "anthropic"

[[integrations.credentials]]
backend = "vault"
path = "{path}"
"""


@pytest.fixture
def pasted(tmp_path: Path, bao: BaoServer) -> tuple[Ks, hvac.Client, str]:
    path = f"ai/review-{os.getpid()}-{tmp_path.name[-12:]}/key"
    (tmp_path / "vault.token").write_text(bao.token)
    (tmp_path / "vault.token").chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(PASTED.format(url=bao.url, path=path))
    client = hvac.Client(url=bao.url, token=bao.token)
    client.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"api_key": "sk-ant-old-" + os.urandom(8).hex(), "org": "acme"})
    return Ks(config), client, path


def _key_file(root: Path, text: str, mode: int = 0o600) -> str:
    p = root / "new.key"
    p.write_text(text)
    p.chmod(mode)
    return str(p)


def test_pasted_keys_guards_then_written(pasted: tuple[Ks, hvac.Client, str]) -> None:
    ks, client, path = pasted
    root = ks.config.parent

    def stored() -> tuple[int, dict[str, Any]]:
        got = client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
        return int(got["data"]["metadata"]["version"]), got["data"]["data"]

    version, data = stored()
    old = data["api_key"]
    plan = ks("plan", "rotate", "review-agent")
    assert "review-agent: new key: pasted by the operator" in plan

    refused = ks("run", "rotate", "review-agent", "--yes", "--reason", "r", code=3)
    assert "--new-key-from" in refused and stored() == (version, data)

    same = _key_file(root, f"review-agent={old}\n")
    out = ks("run", "rotate", "review-agent", "--yes", "--reason", "r", "--new-key-from",
             same, code=3)
    assert "is the key it has now" in out and stored() == (version, data)

    new = "sk-ant-new-" + os.urandom(12).hex()
    loose = _key_file(root, new + "\n", 0o644)
    out = ks("run", "rotate", "review-agent", "--yes", "--reason", "r", "--new-key-from",
             loose, code=2)
    assert "chmod 600" in out and stored() == (version, data)

    good = _key_file(root, f"# the new key\n{new}\n")
    run = json.loads(ks("run", "rotate", "review-agent", "--yes", "--reason", "r",
                        "--new-key-from", good, "--json"))
    assert [(o["outcome"], o["verdict"]) for o in run["operations"]] == [("applied", "written")]
    assert stored() == (version + 1, {"api_key": new, "org": "acme"})
    seen = "\n".join([*ks.outputs, ks("audit", "export", "--format", "jsonl")])
    assert old not in seen and new not in seen
