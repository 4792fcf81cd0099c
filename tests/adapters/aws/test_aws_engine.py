"""The engine over the three AWS adapters, through a proxy that fails 30% of calls.

moto has no fault injection, so a small HTTP proxy on 127.0.0.1 sits in front of it and
answers a share of requests the way AWS does when it throttles (400 ThrottlingException /
Throttling) or fails (500 InternalFailure / ServiceFailure); the rest are forwarded.
"""

from __future__ import annotations

import functools
import http.client
import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from console.config import load_config
from console.engine.limits import RetryPolicy
from console.engine.service import Session
from console.errors import IrreversibleNotAllowed
from tests.adapters.aws.conftest import CANARY, client

USER = "claims-summariser-bedrock"


class FaultProxy(ThreadingHTTPServer):
    """Forwards to moto; answers ``rate`` of the requests with a throttle or a 500."""

    daemon_threads = True

    def __init__(self, upstream: str, rate: float, seed: int = 4) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlsplit(upstream)
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.faults = 0
        self.forwarded = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy

    def _fault(self, query: bool, throttle: bool) -> None:
        if query:  # IAM: query protocol, XML errors
            code = "Throttling" if throttle else "ServiceFailure"
            body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                    f"<Message>Rate exceeded</Message></Error>"
                    "<RequestId>f-1</RequestId></ErrorResponse>").encode()
            ctype = "text/xml"
        else:  # Secrets Manager, SSM: JSON protocol
            code = "ThrottlingException" if throttle else "InternalFailure"
            body = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
            ctype = "application/x-amz-json-1.1"
        self.send_response(400 if throttle else 500)
        self.send_header("Content-Type", ctype)
        self.send_header("x-amzn-ErrorType", code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            fault = self.server.rng.random() < self.server.rate
            throttle = self.server.rng.random() < 0.6
            if fault:
                self.server.faults += 1
            else:
                self.server.forwarded += 1
        if fault:
            query = "x-amz-json" not in (self.headers.get("Content-Type") or "")
            return self._fault(query, throttle)
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=10)
        conn.request(self.command, self.path, body=body, headers=dict(self.headers))
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server",
                                 "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(moto: str, request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    server = FaultProxy(moto, getattr(request, "param", 0.3))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("console.engine.runtime.RetryPolicy",
                        functools.partial(RetryPolicy, base=0.01, cap=0.05))


def planted(moto: str) -> dict[str, Any]:
    """Two SM secrets, one SSM parameter and an IAM user with one key, all holding the canary."""
    sm, ssm, iam = (client(moto, s) for s in ("secretsmanager", "ssm", "iam"))
    for name in ("ai/claims/bedrock", "ai/support-bot/openai"):
        sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "sk-old"}))
        sm.put_secret_value(SecretId=name, SecretString=json.dumps({"api_key": CANARY}))
    ssm.put_parameter(Name="/ai/claims/bedrock", Value=CANARY, Type="SecureString")
    iam.create_user(UserName=USER)
    iam.create_access_key(UserName=USER)
    return {"sm": sm, "ssm": ssm, "iam": iam}


def snapshot(c: dict[str, Any]) -> dict[str, Any]:
    """Everything undo must restore, read straight from moto."""
    out: dict[str, Any] = {}
    for name in ("ai/claims/bedrock", "ai/support-bot/openai"):
        d = c["sm"].describe_secret(SecretId=name)
        out[name] = ({k: sorted(v) for k, v in d["VersionIdsToStages"].items() if v},
                     "DeletedDate" in d)
    p = c["ssm"].get_parameter(Name="/ai/claims/bedrock", WithDecryption=True)["Parameter"]
    out["ssm"] = p["Value"] == CANARY
    out["iam"] = {k["AccessKeyId"]: k["Status"]
                  for k in c["iam"].list_access_keys(UserName=USER)["AccessKeyMetadata"]}
    return out


def write_config(root: Path, url: str, max_attempts: int) -> Path:
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "revoke.toml").write_text(
        'name = "revoke"\ndescription = "keys"\n[[steps]]\nid = "revoke"\n'
        'action = "credential.disable"\n')
    (root / "runbooks" / "destroy.toml").write_text(
        'name = "destroy"\ndescription = "keys"\n[[steps]]\nid = "destroy"\n'
        'action = "credential.destroy"\n')
    aws = (f'endpoint_url = "{url}"\nregion = "us-east-1"\n'
           'access_key_env = "KS_TEST_AWS_KEY"\nsecret_key_env = "KS_TEST_AWS_SECRET"\n')
    text = f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_attempts = {max_attempts}

[backends.aws-sm]
type = "aws-secrets"
{aws}
[backends.aws-ssm]
type = "aws-ssm"
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
secret_id = "ai/claims/bedrock"
method = "tombstone"
[[integrations.credentials]]
backend = "aws-sm"
secret_id = "ai/support-bot/openai"
[[integrations.credentials]]
backend = "aws-ssm"
name = "/ai/claims/bedrock"
"""
    path = root / "config.toml"
    path.write_text(text)
    return path


async def test_converges_under_30_percent_faults(moto: str, proxy: FaultProxy,
                                                 tmp_path: Path) -> None:
    clients = planted(moto)
    original = snapshot(clients)
    config = load_config(write_config(tmp_path, proxy.url, max_attempts=40))
    s = Session(config, operator="tester", incident="INC-4", mode="live")

    plan = await s.plan("revoke", ["claims-summariser"])
    assert len(plan.changes) == 4 and {c.status for c in plan.changes} == {"observed"}
    assert snapshot(clients) == original, "plan has no side effects"
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, {k: (r.outcome, r.message) for k, r in
                                     result.results.items()}
    assert all(r.verified for r in result.results.values())
    disabled = snapshot(clients)
    assert set(disabled["iam"].values()) == {"Inactive"} and not disabled["ssm"]
    assert disabled["ai/support-bot/openai"][1], "default method schedules deletion"

    again = await s.plan("revoke", ["claims-summariser"])
    assert {c.status for c in again.changes} == {"noop"}

    undo = s.restore_plan(plan.run_id)
    back = await s.apply(undo, reason="all clear", saved=True)
    assert back.exit_code() == 0, {k: (r.outcome, r.verified, r.verdict) for k, r in
                                   back.results.items()}
    assert snapshot(clients) == original, "restore brings back the exact versions and statuses"
    assert proxy.faults > 0
    assert s.audit.verify().ok
    trail = json.dumps(s.audit.events(), default=str)
    assert CANARY not in trail and "sk-old" not in trail


@pytest.mark.parametrize("proxy", [1.0], indirect=True)
async def test_persistent_throttling_fails_with_aws_message(moto: str, proxy: FaultProxy,
                                                            tmp_path: Path) -> None:
    planted(moto)
    config = load_config(write_config(tmp_path, proxy.url, max_attempts=2))
    s = Session(config, operator="tester", incident="INC-4", mode="live")
    plan = await s.plan("revoke", ["claims-summariser"])
    assert {c.status for c in plan.changes} == {"error"}
    assert all("Rate exceeded" in c.error for c in plan.changes), [c.error for c in plan.changes]
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() != 0
    assert all("Rate exceeded" in r.message for r in result.results.values())


async def test_irreversible_needs_consent(moto: str, tmp_path: Path) -> None:
    planted(moto)
    config = load_config(write_config(tmp_path, moto, max_attempts=2))
    s = Session(config, operator="tester", incident="INC-4", mode="live")
    plan = await s.plan("destroy", ["claims-summariser"])
    assert all(not c.reversible for c in plan.changes)
    with pytest.raises(IrreversibleNotAllowed) as err:
        await s.apply(plan, reason="leak")
    assert err.value.exit_code == 3
