"""Security-group egress adapter on a real moto server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from adapters.aws_sg import SecurityGroupEgressAdapter
from adapters.base import PlanContext
from console.config import load_config
from console.engine.service import Session
from console.errors import AdapterError
from tests.adapters.egress.conftest import Moto

SECRET = "testing-secret-value-0123456789"


def ec2(moto: Moto) -> Any:
    return boto3.client("ec2", endpoint_url=moto.moto_url, region_name="us-east-1",
                        aws_access_key_id="t", aws_secret_access_key="t",
                        config=Config(retries={"total_max_attempts": 1}))


def make_group(moto: Moto) -> str:
    """A group in the default VPC: default 0.0.0.0/0 egress plus two narrower rules."""
    c = ec2(moto)
    vpc = c.describe_vpcs()["Vpcs"][0]["VpcId"]
    gid = c.create_security_group(GroupName=f"t-{uuid.uuid4().hex[:8]}", Description="t",
                                  VpcId=vpc)["GroupId"]
    c.authorize_security_group_egress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "corp"},
                      {"CidrIp": "192.168.0.0/16"}]},
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
         "IpRanges": [{"CidrIp": "172.16.0.0/12"}]}])
    return gid


def outside(moto: Moto, gid: str) -> list[Any]:
    """The group's egress IpPermissions as the test sees them (sorted)."""
    perms = ec2(moto).describe_security_groups(GroupIds=[gid])["SecurityGroups"][0][
        "IpPermissionsEgress"]
    flat = []
    for p in perms:
        for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", []):
            flat.append((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"),
                         r.get("CidrIp") or r.get("CidrIpv6"), r.get("Description")))
    return sorted(flat, key=str)


@pytest.fixture
def adapter(moto_server: Moto, aws_env: dict[str, str]) -> SecurityGroupEgressAdapter:
    a = SecurityGroupEgressAdapter("ec2", {**aws_env, "endpoint_url": moto_server.moto_url})
    a.open()
    return a


def test_block_verify_undo_restores_exact_ip_permissions(moto_server: Moto, adapter) -> None:
    gid = make_group(moto_server)
    original = outside(moto_server, gid)
    ref = {"backend": "ec2", "group_id": gid, "destinations": ["10.1.2.3", "172.16.5.0/24"]}
    ctx = PlanContext("app", "block-egress", run_id="r-1")

    changes = adapter.plan("egress.block", ref, ctx)
    assert outside(moto_server, gid) == original, "plan must not change anything"
    [c] = changes
    assert c.status == "observed" and c.reversible
    cidrs = sorted(r["cidr"] for r in c.before["rules"])
    assert cidrs == ["0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12"]
    assert c.undo["blocks_all_egress"] is True and len(c.undo["snapshot"]) == 4
    assert "BLOCKS ALL EGRESS" in c.note and "blocks ALL egress" in c.note
    assert "DNS answers and already-open connections can outlive a block" in c.note

    applied = adapter.apply(c)
    left = outside(moto_server, gid)
    assert [x[3] for x in left] == ["192.168.0.0/16"]
    v = adapter.verify(c)
    assert v.ok and v.state == "blocked", v
    assert adapter.read(c) == c.after
    assert adapter.apply(c)["revoked"] == []  # idempotent

    [again] = adapter.plan("egress.block", ref, ctx)
    assert again.status == "noop"

    inv = adapter.inverse(c, json.loads(json.dumps(applied)))
    assert inv.before == c.after and inv.inverse_of == c.op_id
    adapter.apply(inv)
    assert adapter.verify(inv).ok
    assert adapter.read(c) == c.before
    assert outside(moto_server, gid) == original, "undo must restore the exact IpPermissions"


def test_hostname_is_a_plan_error_and_nothing_changes(moto_server: Moto, adapter) -> None:
    gid = make_group(moto_server)
    with pytest.raises(AdapterError, match="CIDRs"):
        adapter.plan("egress.block", {"backend": "ec2", "group_id": gid,
                                      "destinations": ["10.0.0.0/8", "api.openai.com"]},
                     PlanContext("app", "s"))
    with pytest.raises(AdapterError, match="restore"):
        adapter.plan("egress.unblock", {"backend": "ec2", "group_id": gid,
                                        "destinations": ["10.0.0.0/8"]}, PlanContext("app", "s"))
    with pytest.raises(AdapterError) as err:
        adapter.plan("egress.block", {"backend": "ec2", "group_id": "sg-0000000000000000f",
                                      "destinations": ["10.0.0.0/8"]}, PlanContext("app", "s"))
    assert "sg-0000000000000000f" in str(err.value) and SECRET not in str(err.value)


RUNBOOK = """
name = "sg-block"
description = "block egress"
[[steps]]
id = "block-egress"
action = "egress.block"
"""


def write_config(root: Path, url: str, gid: str) -> Path:
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "sg-block.toml").write_text(RUNBOOK)
    path = root / "config.toml"
    path.write_text(f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_attempts = 6

[backends.ec2]
type = "aws-sg"
region = "us-east-1"
endpoint_url = "{url}"
access_key_env = "KS_T_AWS_KEY"
secret_key_env = "KS_T_AWS_SECRET"

[[integrations]]
id = "bot"
name = "Bot"
owner = "team"
environment = "prod"
provider = "openai"
[[integrations.egress]]
backend = "ec2"
group_id = "{gid}"
destinations = ["10.0.0.0/8"]
""")
    return path


async def test_throttling_converges_through_the_engine(moto_server: Moto, aws_env,
                                                       tmp_path: Path) -> None:
    gid = make_group(moto_server)
    original = outside(moto_server, gid)
    config = load_config(write_config(tmp_path, moto_server.url, gid))
    s = Session(config, operator="tester", incident="INC-5")
    moto_server.faults[:] = [(400, "ThrottlingException"), (503, "RequestLimitExceeded")]
    plan = await s.plan("sg-block", ["bot"])
    [c] = plan.changes
    assert c.status == "observed", c.error
    moto_server.faults[:] = [(400, "ThrottlingException"), (400, "RequestLimitExceeded"),
                             (400, "ThrottlingException")]
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, result.results
    assert result.results[c.op_id].attempts > 1
    assert all(r.verified for r in result.results.values())
    assert "10.0.0.0/8" not in [x[3] for x in outside(moto_server, gid)]

    again = await s.plan("sg-block", ["bot"])
    assert [x.status for x in again.changes] == ["noop"]

    undo = s.restore_plan(plan.run_id)
    moto_server.faults[:] = [(400, "ThrottlingException")]
    back = await s.apply(undo, reason="clear", saved=True)
    assert back.exit_code() == 0, back.results
    assert outside(moto_server, gid) == original
    trail = json.dumps(s.audit.events(run_id=plan.run_id), default=str)
    assert SECRET not in trail and "testing-secret" not in trail


def test_missing_security_group_is_not_found(moto_server: Moto, adapter) -> None:
    """Fails while EC2's ``InvalidGroup.NotFound`` maps to a plain AdapterError."""
    from console.errors import NotFound

    ref = {"backend": "ec2", "group_id": "sg-0123456789abcdef0", "destinations": ["10.0.0.1"]}
    with pytest.raises(NotFound, match="InvalidGroup.NotFound"):
        adapter.plan("egress.block", ref, PlanContext("app", "block-egress", run_id="r-nf"))
