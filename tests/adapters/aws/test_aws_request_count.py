"""How many AWS requests a verified kill costs, counted with a botocore ``before-call`` hook.

An integration holding one Secrets Manager secret and one IAM access key, revoked through
the engine (``Session.plan`` then ``Session.apply`` of the shipped ``revoke-credentials``
runbook) against moto. Every botocore call the adapters make is counted by phase: the plan's
reads, and then, inside apply, the engine's read before each change, the change itself and
verify's read. No probe backend is configured, so there is no proof-of-death probe to
exclude.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.engine.service import Session
from tests.adapters.aws.conftest import CANARY, client

USER = "claims-summariser-bedrock"
SECRET = "ai/claims/bedrock"

READS = {"DescribeSecret", "GetSecretValue", "ListSecretVersionIds", "ListAccessKeys"}
"""Read operations of the two services (everything else the test sees is a write)."""


class Calls:
    """Every botocore API call made by clients built while the hook is installed."""

    def __init__(self) -> None:
        self.ops: list[str] = []

    def __call__(self, event_name: str, **_: Any) -> None:
        # before-call.<service>.<Operation>: once per API call (botocore retries are off)
        self.ops.append(event_name.rsplit(".", 1)[-1])

    def take(self) -> list[str]:
        ops, self.ops = self.ops, []
        return ops


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """Registers the counter on every boto3 client created from now on."""
    import boto3.session

    counter = Calls()
    make = boto3.session.Session.client

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        c = make(self, *args, **kwargs)
        c.meta.events.register("before-call.*.*", counter)
        return c

    monkeypatch.setattr(boto3.session.Session, "client", counted)
    yield counter


def write_config(root: Path, url: str, method: str) -> Path:
    (root / "runbooks").mkdir()  # revoke-credentials is a shipped runbook
    aws = (f'endpoint_url = "{url}"\nregion = "us-east-1"\n'
           'access_key_env = "KS_TEST_AWS_KEY"\nsecret_key_env = "KS_TEST_AWS_SECRET"\n')
    path = root / "config.toml"
    path.write_text(f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]

[backends.aws-sm]
type = "aws-secrets"
{aws}
[backends.aws-iam]
type = "aws-iam"
{aws}
[[integrations]]
id = "claims-summariser"
name = "Claims summariser"
owner = "team-claims"
environment = "prod"
status = "approved"
provider = "aws-bedrock"
[[integrations.credentials]]
backend = "aws-iam"
user = "{USER}"
[[integrations.credentials]]
backend = "aws-sm"
secret_id = "{SECRET}"
method = "{method}"
""")
    return path


@pytest.mark.parametrize(("method", "write"), [("schedule-deletion", "DeleteSecret"),
                                               ("tombstone", "PutSecretValue")])
async def test_verified_kill_of_secret_and_iam_key_request_count(
        moto: str, tmp_path: Path, calls: Calls, method: str, write: str) -> None:
    sm, iam = client(moto, "secretsmanager"), client(moto, "iam")
    sm.create_secret(Name=SECRET, SecretString=json.dumps({"api_key": CANARY}))
    iam.create_user(UserName=USER)
    iam.create_access_key(UserName=USER)
    calls.take()  # the test's own setup calls
    s = Session(load_config(write_config(tmp_path, moto, method)), operator="tester",
                incident="INC-9", mode="live")

    plan = await s.plan("revoke-credentials", ["claims-summariser"])
    planned = calls.take()
    assert [c.status for c in plan.changes] == ["observed", "observed"]
    result = await s.apply(plan, reason="leak")
    applied = calls.take()
    assert result.exit_code() == 0, {k: (r.outcome, r.message) for k, r in
                                     result.results.items()}
    assert all(r.verified for r in result.results.values())
    if method == "schedule-deletion":
        assert sm.describe_secret(SecretId=SECRET).get("DeletedDate") is not None
    else:
        got = sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")
        assert CANARY not in got["SecretString"]
    assert {k["Status"] for k in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]} \
        == {"Inactive"}

    shown = f"plan: {planned}; apply and verify: {applied}"
    # the plan: ListAccessKeys, and DescribeSecret plus the AWSCURRENT read that tells a
    # Killswitch tombstone (already dead) from a live key
    assert sorted(planned) == ["DescribeSecret", "GetSecretValue", "ListAccessKeys"], shown
    # the run, per target: the engine's read just before the change (which apply reuses),
    # the change itself, and exactly one read to verify
    assert sorted(applied) == sorted(["DescribeSecret", "ListAccessKeys",  # engine's read
                                      write, "UpdateAccessKey",            # the changes
                                      "GetSecretValue", "ListAccessKeys"]), shown  # verify
    assert len(applied) <= 6, shown  # was 9: apply read again, verify read twice
    assert len(planned) + len(applied) <= 9, shown  # was 12
