"""How many AWS requests a verified kill costs, counted from moto's own request log.

Integrations each holding one Secrets Manager secret and one IAM access key, revoked through
the engine (``Session.plan`` then ``Session.apply`` of the shipped ``revoke-credentials``
runbook) against a real moto server. moto's recorder (``/moto-api/recorder/...``) logs every
request the server received; the operation is the ``X-Amz-Target`` header (Secrets Manager,
JSON protocol) or the ``Action`` form field (IAM, query protocol). No probe backend is
configured, so there is no proof-of-death probe to count.

Issue 11 §1: one read to plan, the change, one read to verify per target (6 requests per
integration), plus the read before each change only when time has passed since the plan was
observed (``drift_read_after``).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.engine.service import Session
from tests.adapters.aws.conftest import CANARY, client

USER = "claims-summariser-bedrock"
SECRET = "ai/claims/bedrock"


class MotoLog:
    """moto's request recorder, writing to a file of the test's own."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, verb: str, method: str = "POST") -> str:
        req = urllib.request.Request(f"{self.url}/moto-api/recorder/{verb}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(resp.read().decode())

    def take(self) -> list[str]:
        """The operations received since the last call, in order; the log starts afresh."""
        ops = []
        for line in self._call("download-recording", "GET").splitlines():
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
            target = headers.get("x-amz-target")
            if target:
                ops.append(str(target).rsplit(".", 1)[-1])
                continue
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            ops.append(urllib.parse.parse_qs(body).get("Action", ["?"])[0])
        self._call("reset-recording")
        return ops


@pytest.fixture
def moto_log(moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoLog]:
    """moto's recorder switched on for this test (the server runs in this process)."""
    from moto.moto_api import recorder

    monkeypatch.setattr(recorder, "_location", str(tmp_path / "moto-requests.jsonl"))
    log = MotoLog(moto)
    log._call("reset-recording")
    log._call("start-recording")
    try:
        yield log
    finally:
        log._call("stop-recording")


def write_config(root: Path, url: str, method: str, n: int = 1,
                 drift_read_after: float | None = None) -> Path:
    """A config with ``n`` integrations, each holding one IAM user's key and one secret."""
    (root / "runbooks").mkdir()  # revoke-credentials is a shipped runbook
    aws = (f'endpoint_url = "{url}"\nregion = "us-east-1"\n'
           'access_key_env = "KS_TEST_AWS_KEY"\nsecret_key_env = "KS_TEST_AWS_SECRET"\n')
    setting = "" if drift_read_after is None else f"drift_read_after = {drift_read_after}\n"
    integrations = "".join(f"""
[[integrations]]
id = "claims-{i}"
name = "Claims summariser {i}"
owner = "team-claims"
environment = "prod"
status = "approved"
provider = "aws-bedrock"
[[integrations.credentials]]
backend = "aws-iam"
user = "{USER}-{i}"
[[integrations.credentials]]
backend = "aws-sm"
secret_id = "{SECRET}/{i}"
method = "{method}"
""" for i in range(n))
    path = root / "config.toml"
    path.write_text(f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_targets = {max(10, n)}
{setting}
[backends.aws-sm]
type = "aws-secrets"
{aws}
[backends.aws-iam]
type = "aws-iam"
{aws}
{integrations}""")
    return path


def seed(url: str, n: int) -> tuple[Any, Any]:
    """``n`` secrets holding the canary and ``n`` users with one access key each."""
    sm, iam = client(url, "secretsmanager"), client(url, "iam")
    for i in range(n):
        sm.create_secret(Name=f"{SECRET}/{i}", SecretString=json.dumps({"api_key": CANARY}))
        iam.create_user(UserName=f"{USER}-{i}")
        iam.create_access_key(UserName=f"{USER}-{i}")
    return sm, iam


def assert_dead(sm: Any, iam: Any, n: int, method: str) -> None:
    """Every secret unreadable or tombstoned and every key inactive, read from moto."""
    for i in range(n):
        if method == "schedule-deletion":
            assert sm.describe_secret(SecretId=f"{SECRET}/{i}").get("DeletedDate") is not None
        else:
            got = sm.get_secret_value(SecretId=f"{SECRET}/{i}", VersionStage="AWSCURRENT")
            assert CANARY not in got["SecretString"]
        keys = iam.list_access_keys(UserName=f"{USER}-{i}")["AccessKeyMetadata"]
        assert {k["Status"] for k in keys} == {"Inactive"}


WRITE = {"schedule-deletion": "DeleteSecret", "tombstone": "PutSecretValue"}


@pytest.mark.parametrize("method", ["schedule-deletion", "tombstone"])
async def test_verified_kill_makes_six_requests_per_integration(
        moto: str, moto_log: MotoLog, tmp_path: Path, method: str) -> None:
    n = 3
    sm, iam = seed(moto, n)
    moto_log.take()  # the test's own setup requests
    s = Session(load_config(write_config(tmp_path, moto, method, n)), operator="tester",
                incident="INC-9", mode="live")

    plan = await s.plan("revoke-credentials", ["owner=team-claims"])
    planned = moto_log.take()
    assert {c.status for c in plan.changes} == {"observed"}
    result = await s.apply(plan, reason="leak")
    applied = moto_log.take()
    s.close()
    assert result.exit_code() == 0, {k: (r.outcome, r.message) for k, r in
                                     result.results.items()}
    assert all(r.verified for r in result.results.values())
    assert_dead(sm, iam, n, method)

    shown = f"plan: {planned}; apply and verify: {applied}"
    # plan: one read per target (a tombstone is known by its version id, no value read)
    assert Counter(planned) == Counter({"DescribeSecret": n, "ListAccessKeys": n}), shown
    # run: the change itself, then exactly one read to verify; no read in between, because
    # the plan was observed moments ago in this process
    assert Counter(applied) == Counter({WRITE[method]: n, "UpdateAccessKey": n,
                                        "GetSecretValue": n, "ListAccessKeys": n}), shown
    assert len(planned) + len(applied) == 6 * n, shown  # was 12 per integration


async def test_a_plan_that_waited_is_read_again_before_each_change(
        moto: str, moto_log: MotoLog, tmp_path: Path) -> None:
    """``drift_read_after = 0`` stands for a confirmation that waited: one more read per
    target, just before its change (8 requests per integration)."""
    sm, iam = seed(moto, 1)
    moto_log.take()
    s = Session(load_config(write_config(tmp_path, moto, "schedule-deletion",
                                         drift_read_after=0)),
                operator="tester", incident="INC-9", mode="live")
    plan = await s.plan("revoke-credentials", ["claims-0"])
    moto_log.take()
    result = await s.apply(plan, reason="leak")
    applied = moto_log.take()
    s.close()
    assert result.exit_code() == 0
    assert_dead(sm, iam, 1, "schedule-deletion")
    assert Counter(applied) == Counter({"DescribeSecret": 1, "DeleteSecret": 1,
                                        "GetSecretValue": 1, "ListAccessKeys": 2,
                                        "UpdateAccessKey": 1}), applied


async def test_a_plan_that_waited_refuses_a_target_changed_meanwhile(
        moto: str, moto_log: MotoLog, tmp_path: Path) -> None:
    """Someone rotated the secret while the confirmation waited: the read before the change
    sees AWSCURRENT moved and the change is refused; the new version stays readable."""
    sm, _ = seed(moto, 1)
    s = Session(load_config(write_config(tmp_path, moto, "schedule-deletion",
                                         drift_read_after=0)),
                operator="tester", incident="INC-9", mode="live")
    plan = await s.plan("revoke-credentials", ["claims-0"])
    sm.put_secret_value(SecretId=f"{SECRET}/0", SecretString='{"api_key": "rotated"}')
    moto_log.take()
    result = await s.apply(plan, reason="leak")
    applied = moto_log.take()
    s.close()
    refused = [r for r in result.results.values() if r.outcome == "refused"]
    assert len(refused) == 1 and "drifted" in refused[0].message
    assert "DeleteSecret" not in applied, applied
    assert sm.describe_secret(SecretId=f"{SECRET}/0").get("DeletedDate") is None
    assert result.exit_code() != 0


async def test_a_fresh_plan_whose_target_changed_reads_before_deciding(
        moto: str, moto_log: MotoLog, tmp_path: Path) -> None:
    """Inside the freshness window the change goes out unread; when the target had changed
    (another commander deleted the secret first), the provider's refusal makes the engine
    read it and find it already as planned: noop, verified, never reported as our change."""
    sm, _ = seed(moto, 1)
    s = Session(load_config(write_config(tmp_path, moto, "schedule-deletion",
                                         drift_read_after=600)),
                operator="tester", incident="INC-9", mode="live")
    plan = await s.plan("revoke-credentials", ["claims-0"])
    sm.delete_secret(SecretId=f"{SECRET}/0", RecoveryWindowInDays=7)
    moto_log.take()
    result = await s.apply(plan, reason="leak")
    applied = moto_log.take()
    s.close()
    secret_id = next(c.op_id for c in plan.changes if c.backend == "aws-sm")
    secret_op = result.results[secret_id]
    assert secret_op.outcome == "noop", (secret_op.outcome, secret_op.message)
    assert secret_op.verified
    assert applied.count("DeleteSecret") == 1 and "DescribeSecret" in applied, applied
    assert result.exit_code() == 0
