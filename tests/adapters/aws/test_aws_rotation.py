"""The `rotate` runbook through the engine on real servers: moto (holding IAM users' own keys
to AWS's rules, :mod:`console.sandbox.motoauth`) and OpenBao.

One integration whose key is an IAM access key, with copies in Secrets Manager (a JSON secret
with more fields), SSM Parameter Store and Vault: a rotation leaves the new key in every copy,
working at STS, and the old key Inactive and refused at STS. The guards: a user already at
IAM's two keys, a copy changed between plan and apply, a run that stopped between issuing and
writing, and restore, which brings the old key back only with consent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from adapters.rotation import KEYRING
from console.config import load_config
from console.engine.service import Session
from console.errors import AdapterError
from console.sandbox.motoauth import install
from tests.adapters.aws.conftest import client
from tests.servers import BaoServer

install()  # this process's moto (the session server) holds IAM users' keys to AWS's rules

USER = "claims-summariser-bedrock"
SECRET = "ai/claims/bedrock"
PARAM = "/ai/claims/bedrock"


def sts_works(url: str, key_id: str, secret: str) -> str:
    """What STS says to a GetCallerIdentity signed with the pair: ``ok`` or the error code."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id=key_id, aws_secret_access_key=secret,
                       config=Config(retries={"total_max_attempts": 1}))
    try:
        sts.get_caller_identity()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


class World:
    """The planted integration: IAM user and key, and its three store copies."""

    def __init__(self, url: str, bao: BaoServer, path: str) -> None:
        self.url = url
        self.iam, self.sm, self.ssm = (client(url, s) for s in ("iam", "secretsmanager", "ssm"))
        self.vault = hvac.Client(url=bao.url, token=bao.token)
        self.path = path
        self.iam.create_user(UserName=USER)
        made = self.iam.create_access_key(UserName=USER)["AccessKey"]
        self.old = (made["AccessKeyId"], made["SecretAccessKey"])
        pair = self.pair(*self.old)
        self.sm.create_secret(Name=SECRET, SecretString=json.dumps(
            {**pair, "region": "eu-west-2"}))
        self.ssm.put_parameter(Name=PARAM, Value=json.dumps(pair), Type="SecureString")
        self.vault.secrets.kv.v2.create_or_update_secret(path=path, secret=pair)

    @staticmethod
    def pair(key_id: str, secret: str) -> dict[str, str]:
        return {"api_key": secret, "aws_access_key_id": key_id,
                "aws_secret_access_key": secret}

    def copies(self) -> dict[str, dict[str, Any]]:
        """Every copy as an application reads it."""
        sm = json.loads(self.sm.get_secret_value(SecretId=SECRET,
                                                 VersionStage="AWSCURRENT")["SecretString"])
        ssm = json.loads(self.ssm.get_parameter(Name=PARAM, WithDecryption=True)
                         ["Parameter"]["Value"])
        vault = self.vault.secrets.kv.v2.read_secret_version(
            path=self.path, raise_on_deleted_version=True)["data"]["data"]
        return {"sm": sm, "ssm": ssm, "vault": vault}

    def keys(self) -> dict[str, str]:
        return {k["AccessKeyId"]: k["Status"]
                for k in self.iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]}


@pytest.fixture
def world(moto: str, bao: BaoServer, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", bao.token)
    return World(moto, bao, f"ai/claims-{secrets.token_hex(4)}/key")


def write_config(root: Path, world: World, bao: BaoServer) -> Path:
    aws = (f'endpoint_url = "{world.url}"\nregion = "us-east-1"\n'
           'access_key_env = "KS_TEST_AWS_KEY"\nsecret_key_env = "KS_TEST_AWS_SECRET"\n')
    path = root / "config.toml"
    path.write_text(f"""
[settings]
audit_db = "audit.db"
proof_window = 2
proof_interval = 0.2

[backends.aws-iam]
type = "aws-iam"
probe_keys = "on"
{aws}
[backends.aws-sm]
type = "aws-secrets"
{aws}
[backends.aws-ssm]
type = "aws-ssm"
{aws}
[backends.vault]
type = "vault"
url = "{bao.url}"
token_env = "KS_TEST_VAULT_TOKEN"

[[integrations]]
id = "claims-summariser"
name = "Claims summariser"
owner = "team-claims"
environment = "prod"
status = "approved"
provider = "aws-bedrock"
[[integrations.credentials]]
backend = "vault"
path = "{world.path}"
[[integrations.credentials]]
backend = "aws-iam"
user = "{USER}"
[[integrations.credentials]]
backend = "aws-sm"
secret_id = "{SECRET}"
field = "api_key"
[[integrations.credentials]]
backend = "aws-ssm"
name = "{PARAM}"
""")
    return path


@pytest.fixture
def session(world: World, bao: BaoServer, tmp_path: Path) -> Iterator[Session]:
    s = Session(load_config(write_config(tmp_path, world, bao)), operator="tester",
                mode="live")
    yield s
    s.close()


def _outcomes(result: Any) -> dict[str, tuple[str, str]]:
    return {op: (str(r.outcome), str(r.verdict)) for op, r in result.results.items()}


async def test_rotation_leaves_a_working_new_key_in_every_copy_and_the_old_one_dead(
        world: World, session: Session) -> None:
    old_id, old_secret = world.old
    plan = await session.plan("rotate", ["claims-summariser"])
    assert [(c.step, c.backend) for c in plan.changes] == [
        ("issue-key", "aws-iam"), ("write-copies", "vault"), ("write-copies", "aws-sm"),
        ("write-copies", "aws-ssm"), ("retire-old", "aws-iam")]
    assert {c.status for c in plan.changes} == {"observed"}  # no "will NOT happen" rows
    assert any("issued by AWS IAM at apply" in c.note for c in plan.changes)
    assert sum(" skips " in n for n in plan.notes) == 7, plan.notes  # 3 stores x 2, IAM x 1
    assert world.keys() == {old_id: "Active"}, "planning changes nothing"

    result = await session.apply(plan, reason="a person left")
    assert result.exit_code() == 0, _outcomes(result)
    assert set(_outcomes(result).values()) == {
        ("applied", "works"), ("applied", "written"), ("applied", "dead")}
    assert [(p.state) for p in result.proofs.values()] == ["revoked"]

    copies = world.copies()
    new_id = copies["sm"]["aws_access_key_id"]
    new_secret = copies["sm"]["aws_secret_access_key"]
    assert new_id != old_id and new_secret != old_secret
    assert copies["sm"] == {**world.pair(new_id, new_secret), "region": "eu-west-2"}
    assert copies["ssm"] == copies["vault"] == world.pair(new_id, new_secret)
    assert world.keys() == {old_id: "Inactive", new_id: "Active"}
    assert sts_works(world.url, new_id, new_secret) == "ok"
    assert sts_works(world.url, old_id, old_secret) == "InvalidClientTokenId"
    previous = world.sm.get_secret_value(SecretId=SECRET, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"])["api_key"] == old_secret
    assert KEYRING.get(plan.run_id, "claims-summariser") is None, "discarded after the run"
    trail = json.dumps(session.audit.events(), default=str) + plan.to_json()
    assert old_secret not in trail and new_secret not in trail

    # restore brings the old key back only with consent
    held = session.restore_plan(plan.run_id)
    assert {c.status for c in held.changes} == {"unsupported"}, "held back without consent"
    # and the new key is never deactivated while the old one stays dead, whatever asks
    iam = session.runtime.adapter("aws-iam")
    [issue] = [c for c in plan.changes if c.step == "issue-key"]
    unissue = iam.inverse(issue, result.results[issue.op_id].undo)
    with pytest.raises(AdapterError, match="without an Active access key"):
        iam.apply(unissue, iam.read(unissue))
    assert world.keys() == {old_id: "Inactive", new_id: "Active"}
    undo = session.restore_plan(plan.run_id, reenable_old_key=True)
    back = await session.apply(undo, reason="rotation undone", saved=True)
    assert back.exit_code() == 0, _outcomes(back)
    assert world.keys() == {old_id: "Active", new_id: "Inactive"}
    assert world.copies()["ssm"] == world.copies()["vault"] == world.pair(old_id, old_secret)
    assert world.copies()["sm"]["api_key"] == old_secret


async def test_user_at_two_keys_is_refused_in_the_plan(world: World, session: Session) -> None:
    extra = world.iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    before = (world.keys(), world.copies())
    plan = await session.plan("rotate", ["claims-summariser"])
    [issue] = [c for c in plan.changes if c.step == "issue-key"]
    assert issue.status == "error" and "already has 2 access keys" in issue.error
    assert "IAM allows 2 per user" in issue.error and extra[-8:] in issue.error
    result = await session.apply(plan, reason="rotate")
    assert result.exit_code() == 1
    assert {op.split("/")[1]: o for op, (o, _) in _outcomes(result).items()} == {
        "issue-key": "failed", "write-copies": "skipped", "retire-old": "skipped"}
    assert (world.keys(), world.copies()) == before, "nothing changed"


async def test_a_copy_changed_after_the_plan_is_refused_and_the_old_key_lives(
        world: World, session: Session) -> None:
    old_id, old_secret = world.old
    plan = await session.plan("rotate", ["claims-summariser"])
    world.sm.put_secret_value(SecretId=SECRET, SecretString=json.dumps(
        {**world.pair(*world.old), "region": "us-west-2"}))  # someone edits the copy
    result = await session.apply(plan, reason="rotate")
    outcomes = {op: o for op, (o, _) in _outcomes(result).items()}
    assert outcomes["claims-summariser/write-copies/1"] == "refused"
    assert "drifted" in result.results["claims-summariser/write-copies/1"].message
    assert outcomes["claims-summariser/retire-old/0"] == "skipped"
    assert result.exit_code() != 0
    assert world.keys()[old_id] == "Active"
    assert sts_works(world.url, old_id, old_secret) == "ok", "the old key still works"
    assert world.copies()["sm"]["region"] == "us-west-2", "the other writer's value stands"


async def test_resume_after_a_stop_between_issue_and_write_fails_clearly(
        world: World, session: Session, bao: BaoServer, tmp_path: Path) -> None:
    plan = await session.plan("rotate", ["claims-summariser"])
    copies = world.copies()

    def stop_after_issue(phase: str, res: Any, extra: dict[str, Any]) -> None:
        if res.op_id.endswith("issue-key/0") and res.outcome == "applied":
            session.request_cancel()  # the process "stops": nothing else starts

    first = await session.apply(plan, reason="rotate", progress=stop_after_issue)
    assert first.cancelled and len(world.keys()) == 2
    fresh = Session(load_config(tmp_path / "config.toml"), operator="tester", mode="live")
    try:
        resumed = await fresh.resume(plan.run_id)
    finally:
        fresh.close()
    writes = [r for op, r in resumed.results.items() if "/write-copies/" in op]
    assert {str(r.outcome) for r in writes} == {"failed"}
    assert all("only in memory" in r.message and "rotate again" in r.message for r in writes)
    assert str(resumed.results["claims-summariser/retire-old/0"].outcome) == "skipped"
    assert resumed.exit_code() == 1
    assert len(world.keys()) == 2, "no second CreateAccessKey"
    assert world.keys()[world.old[0]] == "Active"
    assert world.copies() == copies, "nothing was written"


# -- adapter level: copies a kill-switch left dead, capabilities, the probe ------------------


def _adapters(url: str) -> dict[str, Any]:
    from adapters.aws_iam import IamAccessKeyAdapter
    from adapters.aws_secrets import SecretsManagerAdapter
    from adapters.aws_ssm import SsmParameterAdapter
    from tests.adapters.aws.conftest import options

    return {"sm": SecretsManagerAdapter("aws-sm", options(url)),
            "ssm": SsmParameterAdapter("aws-ssm", options(url)),
            "iam": IamAccessKeyAdapter("aws-iam", options(url, probe_keys="on")),
            "auto": IamAccessKeyAdapter("aws-iam", options(url))}


def test_copies_a_kill_switch_left_dead_get_the_new_key_in_their_old_shape(
        world: World) -> None:
    from adapters.base import PlanContext
    from adapters.rotation import WRITE, NewKey

    a = _adapters(world.url)
    for name in ("sm", "ssm"):
        ref = {"secret_id": SECRET, "field": "api_key"} if name == "sm" else {"name": PARAM}
        [kill] = a[name].plan("credential.disable", ref, PlanContext("c", "kill", run_id="k1"))
        a[name].apply(kill)  # Secrets Manager: scheduled deletion; SSM: a tombstone
    key = NewKey(value="N" * 40, key_id="AKIANEWNEWNEWNEWNEW1", fields={
        "aws_access_key_id": "AKIANEWNEWNEWNEWNEW1", "aws_secret_access_key": "N" * 40})
    KEYRING.put("r1", "claims-summariser", key)
    try:
        for name, ref in (("sm", {"secret_id": SECRET, "field": "api_key"}),
                          ("ssm", {"name": PARAM})):
            adapter = a[name]
            adapter.run_id = "r1"
            [change] = adapter.plan(WRITE, ref, PlanContext("claims-summariser", "w",
                                                            run_id="r1"))
            assert ("restored first" if name == "sm" else "tombstone") in change.note
            applied = adapter.apply(change, adapter.read(change))
            assert adapter.read(change) == change.after and adapter.verify(change).ok
            assert applied["restored"] if name == "sm" else applied["new_version"] == 3
    finally:
        KEYRING.discard("r1")
    copies = world.copies()
    want = world.pair("AKIANEWNEWNEWNEWNEW1", "N" * 40)
    assert copies["sm"] == {**want, "region": "eu-west-2"} and copies["ssm"] == want


def test_keys_are_tested_at_sts_only_where_the_backend_says(world: World) -> None:
    a = _adapters(world.url)
    assert a["iam"].CAN_PROBE and not a["auto"].CAN_PROBE, "moto: auto means off"
    old_id, old_secret = world.old
    pair = json.dumps({"aws_access_key_id": old_id, "aws_secret_access_key": old_secret})
    assert a["iam"].probe(pair).state == "live"
    assert a["iam"].probe(old_secret).state == "unknown", "no key id known for a bare secret"
    a["iam"]._keys(USER, None)  # listing the user's keys makes them candidates
    assert a["iam"].probe(old_secret).state == "live"
    assert a["iam"].probe("x" * 40).state == "revoked"
    world.iam.update_access_key(UserName=USER, AccessKeyId=old_id, Status="Inactive")
    verdict = a["iam"].probe(pair)
    assert verdict.ok and "InvalidClientTokenId" in verdict.detail
    assert old_secret not in verdict.detail


async def test_a_key_the_run_did_not_record_is_refused_never_a_second_one(
        world: World, session: Session) -> None:
    plan = await session.plan("rotate", ["claims-summariser"])
    # the answer of a CreateAccessKey was lost (a crash, a timeout): the key exists, and
    # nobody holds its secret
    lost = world.iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    result = await session.apply(plan, reason="rotate")
    issue = result.results["claims-summariser/issue-key/0"]
    assert str(issue.outcome) == "refused", (issue.outcome, issue.message)
    assert f"{lost[:4]}…{lost[-8:]} appeared since the plan" in issue.message
    assert "delete it" in issue.message and "rotate again" in issue.message
    assert set(world.keys()) == {world.old[0], lost}, "no second new key"
    assert world.keys()[world.old[0]] == "Active"
