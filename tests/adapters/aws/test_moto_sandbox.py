"""The sandbox's moto service: start detached, seed from the inventory, status, stop."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from adapters.aws_iam import IamAccessKeyAdapter
from adapters.aws_secrets import SecretsManagerAdapter
from adapters.aws_ssm import SsmParameterAdapter
from console.config import load_config
from console.sandbox import moto


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_seed_status_stop(tmp_path: Path) -> None:
    port = _free_port()
    aws = (f'endpoint_url = "http://127.0.0.1:{port}"\nregion = "us-east-1"\n'
           f'profile = "killswitch-sandbox"\ncredentials_file = "{tmp_path}/sb/aws-credentials"\n')
    (tmp_path / "config.toml").write_text(f"""
[settings]
audit_db = "audit.db"
[sandbox]
dir = "sb"
moto_port = {port}
[backends.sm]
type = "aws-secrets"
{aws}
[backends.ssm]
type = "aws-ssm"
{aws}
[backends.iam]
type = "aws-iam"
{aws}
[[integrations]]
id = "claims"
name = "Claims"
owner = "t"
environment = "prod"
status = "approved"
provider = "aws-bedrock"
[[integrations.credentials]]
backend = "iam"
user = "claims-summariser-bedrock"
[[integrations.credentials]]
backend = "sm"
secret_id = "ai/claims/bedrock"
[[integrations.credentials]]
backend = "ssm"
name = "/ai/claims/bedrock"
""")
    config = load_config(tmp_path / "config.toml")
    assert moto.wanted(config)
    try:
        st = moto.start(config)
        assert st.running and st.pid and "secret ai/claims/bedrock" in st.detail
        assert moto.status(config).running
        again = moto.start(config)
        assert again.pid == st.pid and "nothing new" in again.detail
        seed = json.loads((tmp_path / "sb" / "aws-seed.json").read_text())
        assert len(seed["iam"]["claims-summariser-bedrock"]) == 1
        opts = dict(config.backends["sm"].options)
        sm = SecretsManagerAdapter("sm", opts)
        value = sm.reveal({"secret_id": "ai/claims/bedrock"})
        # the copies hold the IAM user's key (its secret is the field reveal picks)
        [key_id] = seed["iam"]["claims-summariser-bedrock"]
        raw = json.loads(sm.sm.get_secret_value(SecretId="ai/claims/bedrock")["SecretString"])
        assert raw == {"api_key": value, "aws_access_key_id": key_id,
                       "aws_secret_access_key": value}
        assert SsmParameterAdapter("ssm", opts).reveal({"name": "/ai/claims/bedrock"})
        from adapters.base import PlanContext

        [change] = IamAccessKeyAdapter("iam", opts).plan(
            "credential.disable", {"backend": "iam", "user": "claims-summariser-bedrock"},
            PlanContext("claims", "s"))
        assert set(change.before["keys"].values()) == {"Active"}
    finally:
        stopped = moto.stop(config)
    assert stopped.detail.startswith("stopped pid")
    assert not moto.status(config).running
