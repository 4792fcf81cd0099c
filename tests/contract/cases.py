"""One small case per registered adapter: its real backend or stand-in, and the test's own view.

A :class:`Case` holds an opened adapter on its backend, one inventory reference, the action
the lifecycle runs (a reversible one where the adapter has one), and ``observe``: the
backend's state read *without* the adapter (boto3 against moto, hvac against OpenBao, the
stand-in's ``/_sandbox/state`` and ``/_sandbox/requests`` over HTTP, ``nft`` in the namespace,
the denylist file and a request through Squid, the flag file). ``faults`` say how to make the
backend fail (stand-in fault injection, a closed loopback port, a missing namespace, a proxy
that is not running) and what the adapter must raise then.

Backends per adapter (see ``tests/contract/conftest.py`` for where each fixture lives)::

    fake                 in-process switches (fail_rate / throttle_rate options)
    flagfile             a real flagd JSON file in tmp_path
    vault                OpenBao dev server (session), fresh KV v2 mount per test
    aws-secrets/-ssm/-iam, aws-sg   moto server (session) + its fault-injecting proxy
    gcp-secrets, gcp-keys           the GCP stand-in (per test)
    openai, anthropic               the OpenAI / Anthropic admin stand-ins (per test)
    *-batch (5)                     the four batch stand-ins (session, reset per test)
    unleash              Unleash 7.5.1 on PostgreSQL (session), fresh flag per test
    launchdarkly         the LaunchDarkly stand-in (session, reset per test)
    nftables             two network namespaces + veth (session, root)
    squid                a private Squid on loopback (session, root)
    slack, pagerduty     the Slack / PagerDuty stand-ins (session, reset per test)
"""

from __future__ import annotations

import configparser
import hashlib
import ipaddress
import json
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from adapters.base import Adapter, PlanContext

__all__ = ["BUILDERS", "CANARY", "Case", "Fault", "UNDO_EXACT", "UNDO_NONE", "UNDO_NOTIFY",
           "build", "closed_port"]

UNDO_EXACT = "exact"
"""The inverse restores the exact prior state (independently compared)."""
UNDO_NONE = "unsupported"
"""Irreversible action: ``inverse`` raises UndoUnsupported."""
UNDO_NOTIFY = "notify"
"""A notification: the inverse sends the all-clear / resolve; that one cannot be undone."""

CANARY = "sk-contract-" + "5b1e9d07c3a2" * 3
"""A key value planted in secret stores: it must never appear in any adapter output."""
AWS_SECRET = "contract-aws-secret-" + "9f2c4e6a8b0d"
"""The console's own AWS secret access key (env var): never in any adapter output."""


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def digest(value: Any) -> str:
    """A short fingerprint, so observed states never hold a secret value themselves."""
    raw = value if isinstance(value, bytes) else str(value).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class Fault:
    """One way the backend fails, and what the adapter must raise while it does.

    Attributes:
        label: Shown in assertion messages.
        adapter: The adapter to call while the fault is on (the case's own, or one built
            on a broken endpoint).
        on: Switches the fault on (stand-in fault injection), or nothing.
        off: Switches it off again.
        retryable: The ``retryable`` every raised AdapterError must have.
        status: The ``status`` it must carry (None: not checked).
        retry_after: The ``retry_after`` it must carry (None: not checked).
        calls: Which phases talk to the backend: ``plan``, ``apply``, ``read``.
    """

    label: str
    adapter: Callable[[], Adapter]
    on: Callable[[], None] = lambda: None
    off: Callable[[], None] = lambda: None
    retryable: bool = True
    status: int | None = None
    retry_after: float | None = None
    calls: tuple[str, ...] = ("plan", "apply", "read")


@dataclass
class Case:
    """An adapter on its real backend, plus the test's own view of that backend.

    Attributes:
        adapter: Opened on the backend.
        action: The action the lifecycle runs.
        ref: One inventory reference.
        observe: The backend's state, read without the adapter.
        killed: Whether an observed state shows the action in effect.
        secrets: Values that must never appear in a Change, Verdict, error or undo data.
        undo: UNDO_EXACT, UNDO_NONE or UNDO_NOTIFY.
        ctx: The plan context.
        writes: Non-GET requests the stand-in received (HTTP stand-ins only).
        faults: Ways to make the backend fail.
        readback: ``read(change)`` reflects the change (False: a notification, which
            cannot be read back).
        replan_noop: A second plan is a no-op (False: every run notifies once).
        reapply_same: Re-applying leaves the observed state as it is (False: a webhook
            message cannot be deduplicated, a re-apply posts it again).
        cleared: For a notification: whether an observed state shows the all-clear (the
            inverse) arrived.
        bad_ref: A reference to a target that does not exist or is malformed (None: the
            adapter has no such reference, e.g. a notification names only a contact).
    """

    adapter: Adapter
    action: str
    ref: dict[str, Any]
    observe: Callable[[], Any]
    killed: Callable[[Any], bool]
    secrets: list[str] = field(default_factory=list)
    undo: str = UNDO_EXACT
    ctx: PlanContext = field(default_factory=lambda: PlanContext(
        "app", "step", run_id="r-contract", incident="IR-contract", operator="tester",
        runbook="kill-switch"))
    writes: Callable[[], list[str]] | None = None
    faults: list[Fault] = field(default_factory=list)
    readback: bool = True
    replan_noop: bool = True
    reapply_same: bool = True
    cleared: Callable[[Any], bool] | None = None
    bad_ref: dict[str, Any] | None = None


class Rig:
    """What a case builder may use: fixtures (lazily), env vars, tmp_path, cleanups."""

    def __init__(self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> None:
        self.request = request
        self.mp = monkeypatch
        self.tmp = tmp_path
        self.cleanups: list[Callable[[], None]] = []
        self.adapters: list[Adapter] = []

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    def keep(self, adapter: Adapter) -> Adapter:
        """Remember ``adapter`` so that it is closed at the end of the test."""
        self.adapters.append(adapter)
        return adapter

    def close(self) -> None:
        for a in self.adapters:
            a.close()
        for fn in reversed(self.cleanups):
            fn()


# -- stand-ins over HTTP -------------------------------------------------------------------

def standin_state(url: str) -> dict[str, Any]:
    """``GET /_sandbox/state``: the stand-in's state, not through the adapter."""
    return dict(httpx.get(f"{url}/_sandbox/state", timeout=5).json())


def standin_writes(url: str) -> list[str]:
    """Every non-GET request the stand-in received since its last reset."""
    log = httpx.get(f"{url}/_sandbox/requests", timeout=5).json()
    return [f"{r['method']} {r['path']}" for r in log if r["method"] != "GET"]


def standin_faults(url: str, **faults: Any) -> None:
    """``POST /_sandbox/faults`` (no argument: faults off)."""
    httpx.post(f"{url}/_sandbox/faults", json=faults, timeout=5).raise_for_status()


def standin_fault_set(url: str, adapter: Callable[[], Adapter],
                      calls: tuple[str, ...] = ("plan", "apply", "read")) -> list[Fault]:
    """503 on every call, then 429 with Retry-After 2, through the stand-in's injection."""
    return [
        Fault("stand-in 503", adapter, lambda: standin_faults(url, error_rate=1.0),
              lambda: standin_faults(url), status=503, calls=calls),
        Fault("stand-in 429 Retry-After 2", adapter,
              lambda: standin_faults(url, throttle_rate=1.0, retry_after=2),
              lambda: standin_faults(url), status=429, retry_after=2.0, calls=calls),
    ]


def closed_port_fault(make: Callable[[str], Adapter],
                      calls: tuple[str, ...] = ("plan", "apply", "read")) -> Fault:
    """The same backend at a loopback port nobody listens on: connection refused."""
    return Fault("connection refused", lambda: make(f"http://127.0.0.1:{closed_port()}"),
                 calls=calls)


def root_url(url: str) -> str:
    """``http://127.0.0.1:PORT`` of a URL (stand-in control endpoints live at the root)."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}:{parts.port}"


# -- in-process and files ------------------------------------------------------------------

def fake_case(rig: Rig) -> Case:
    from adapters.fake import FakeAdapter

    FakeAdapter.reset()
    rig.cleanups.append(FakeAdapter.reset)
    a = rig.keep(FakeAdapter("sim", {}))

    def observe() -> str:
        return str(FakeAdapter._memory.get("sim", {}).get("switches", {}).get("k1", "on"))

    return Case(a, "credential.disable", {"backend": "sim", "key": "k1"}, observe,
                lambda s: s == "off", bad_ref={"backend": "sim"}, faults=[
                    Fault("fail_rate 1.0", lambda: FakeAdapter("sim", {"fail_rate": 1.0}),
                          status=503),
                    Fault("throttle_rate 1.0", lambda: FakeAdapter(
                        "sim", {"throttle_rate": 1.0, "retry_after": 2}), status=429,
                        retry_after=2.0)])


def flagfile_case(rig: Rig) -> Case:
    from adapters.flagfile import FlagFileAdapter

    path = rig.tmp / "flags.json"
    path.write_text(json.dumps({"flags": {"f": {
        "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on",
        "targeting": {"if": [{"==": [{"var": "tier"}, "beta"]}, "on", "off"]}},
        "other": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}},
        indent=2))
    a = rig.keep(FlagFileAdapter("flags", {"path": str(path)}))

    def observe() -> Any:
        return json.loads(path.read_text())

    def killed(state: Any) -> bool:
        # as flagd evaluates it for every context: enabled, no targeting, default variant off
        flag = state["flags"]["f"]
        return flag.get("state") == "ENABLED" and not flag.get("targeting") and \
            flag["variants"].get(flag.get("defaultVariant")) is False

    missing = rig.tmp / "no-such-dir" / "flags.json"
    return Case(a, "flag.disable", {"backend": "flags", "flag": "f"}, observe, killed,
                bad_ref={"backend": "flags", "flag": "no-such-flag"}, faults=[
                    Fault("flag file missing", lambda: FlagFileAdapter(
                        "flags", {"path": str(missing)}), retryable=False)])


# -- OpenBao -------------------------------------------------------------------------------

def vault_case(rig: Rig) -> Case:
    import hvac

    from adapters.vault import VaultAdapter

    bao = rig.fixture("bao")
    rig.mp.setenv("KS_CONTRACT_VAULT_TOKEN", bao.token)
    client = hvac.Client(url=bao.url, token=bao.token)
    mount = f"c-{uuid.uuid4().hex[:10]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    rig.cleanups.append(client.adapter.close)
    rig.cleanups.append(lambda: client.sys.disable_secrets_engine(path=mount))
    for value in ("sk-contract-old-value-0001", CANARY):
        client.secrets.kv.v2.create_or_update_secret(path="app/key", secret={"api_key": value},
                                                     mount_point=mount)

    def observe() -> Any:
        meta = client.secrets.kv.v2.read_secret_metadata(path="app/key", mount_point=mount)
        data = meta["data"]
        return {"current": data["current_version"],
                "versions": {n: (bool(v["deletion_time"]), v["destroyed"])
                             for n, v in data["versions"].items()}}

    def killed(state: Any) -> bool:
        return bool(state["versions"][str(state["current"])][0])

    def make(url: str) -> Adapter:
        return rig.keep(VaultAdapter("vault", {"url": url, "token_env": "KS_CONTRACT_VAULT_TOKEN"}))

    return Case(make(bao.url), "credential.disable",
                {"backend": "vault", "kind": "kv", "mount": mount, "path": "app/key"},
                observe, killed, secrets=[bao.token, CANARY],
                bad_ref={"backend": "vault", "kind": "kv", "mount": mount, "path": "no/such"},
                faults=[closed_port_fault(make)])


# -- moto ----------------------------------------------------------------------------------

def _aws(rig: Rig) -> tuple[Any, dict[str, Any]]:
    moto = rig.fixture("moto_server")
    rig.mp.setenv("KS_CONTRACT_AWS_KEY", "testing")
    rig.mp.setenv("KS_CONTRACT_AWS_SECRET", AWS_SECRET)
    rig.cleanups.append(moto.faults.clear)
    return moto, {"region": "us-east-1", "access_key_env": "KS_CONTRACT_AWS_KEY",
                  "secret_key_env": "KS_CONTRACT_AWS_SECRET"}


def _boto(moto: Any, service: str) -> Any:
    """The test's own boto3 client, straight to moto (not through the fault proxy)."""
    return boto3.client(service, endpoint_url=moto.moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}))


def _aws_faults(moto: Any, make: Callable[[str], Adapter]) -> list[Fault]:
    """Connection refused, and throttling / 503 answered by the proxy in front of moto."""

    def answer(status: int, code: str) -> Callable[[], None]:
        return lambda: moto.faults.extend([(status, code)] * 50)

    via_proxy = lambda: make(moto.url)  # noqa: E731 - a factory per fault
    return [closed_port_fault(make),
            Fault("proxy 429 ThrottlingException", via_proxy, answer(429, "ThrottlingException"),
                  moto.faults.clear, status=429, retry_after=0.0),
            Fault("proxy 503 ServiceUnavailable", via_proxy, answer(503, "ServiceUnavailable"),
                  moto.faults.clear, status=503)]


def aws_secrets_case(rig: Rig) -> Case:
    from adapters.aws_secrets import SecretsManagerAdapter

    moto, opts = _aws(rig)
    sm = _boto(moto, "secretsmanager")
    name = f"ks-contract/{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "sk-contract-older"}))
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"api_key": CANARY}))
    rig.cleanups.append(lambda: sm.delete_secret(SecretId=name,
                                                 ForceDeleteWithoutRecovery=True))

    def observe() -> Any:
        d = sm.describe_secret(SecretId=name)
        try:  # as an application reads it
            current = digest(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
                             ["SecretString"])
        except sm.exceptions.InvalidRequestException:
            current = "unreadable"
        return {"stages": {k: sorted(v) for k, v in d["VersionIdsToStages"].items() if v},
                "deleted": "DeletedDate" in d, "current": current}

    def make(url: str) -> Adapter:
        return rig.keep(SecretsManagerAdapter("aws-sm", {**opts, "endpoint_url": url}))

    return Case(make(moto.moto_url), "credential.disable",
                {"backend": "aws-sm", "secret_id": name}, observe,
                lambda s: s["deleted"] and s["current"] == "unreadable",
                secrets=[CANARY, AWS_SECRET],
                bad_ref={"backend": "aws-sm", "secret_id": "ks-contract/no-such-secret"},
                faults=_aws_faults(moto, make))


def aws_ssm_case(rig: Rig) -> Case:
    from adapters.aws_ssm import SsmParameterAdapter

    moto, opts = _aws(rig)
    ssm = _boto(moto, "ssm")
    name = f"/ks-contract/{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=name, Value="sk-contract-older", Type="SecureString")
    ssm.put_parameter(Name=name, Value=json.dumps({"api_key": CANARY}), Type="SecureString",
                      Overwrite=True)
    rig.cleanups.append(lambda: ssm.delete_parameter(Name=name))

    def observe() -> Any:
        # Parameter Store only appends versions (undo writes the old value as a new one), so
        # the exact state an application sees is the type and the value, not the version
        p = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        try:
            tomb = json.loads(p["Value"]).get("revoked_by") == "killswitch"
        except (ValueError, AttributeError):
            tomb = False
        return {"type": p["Type"], "value": digest(p["Value"]), "tombstone": tomb}

    def make(url: str) -> Adapter:
        return rig.keep(SsmParameterAdapter("aws-ssm", {**opts, "endpoint_url": url}))

    return Case(make(moto.moto_url), "credential.disable", {"backend": "aws-ssm", "name": name},
                observe, lambda s: s["tombstone"], secrets=[CANARY, AWS_SECRET],
                bad_ref={"backend": "aws-ssm", "name": "/ks-contract/no-such-parameter"},
                faults=_aws_faults(moto, make))


def aws_iam_case(rig: Rig) -> Case:
    from adapters.aws_iam import IamAccessKeyAdapter

    moto, opts = _aws(rig)
    iam = _boto(moto, "iam")
    user = f"ks-contract-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    made = [iam.create_access_key(UserName=user)["AccessKey"] for _ in range(2)]
    iam.update_access_key(UserName=user, AccessKeyId=made[1]["AccessKeyId"], Status="Inactive")

    def drop() -> None:
        for k in made:
            iam.delete_access_key(UserName=user, AccessKeyId=k["AccessKeyId"])
        iam.delete_user(UserName=user)

    rig.cleanups.append(drop)

    def observe() -> Any:
        return {digest(m["AccessKeyId"]): m["Status"]
                for m in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}

    def make(url: str) -> Adapter:
        return rig.keep(IamAccessKeyAdapter("aws-iam", {**opts, "endpoint_url": url}))

    # secret access keys are secrets; full key ids must stay out too (the adapter names keys
    # by a handle, because the audit scrubber redacts full ids and restore reads the trail)
    secrets = [AWS_SECRET, *(k["SecretAccessKey"] for k in made),
               *(k["AccessKeyId"] for k in made)]
    return Case(make(moto.moto_url), "credential.disable", {"backend": "aws-iam", "user": user},
                observe, lambda s: set(s.values()) == {"Inactive"}, secrets=secrets,
                bad_ref={"backend": "aws-iam", "user": "ks-contract-no-such-user"},
                faults=_aws_faults(moto, make))


def aws_sg_case(rig: Rig) -> Case:
    from adapters.aws_sg import SecurityGroupEgressAdapter

    moto, opts = _aws(rig)
    ec2 = _boto(moto, "ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    gid = ec2.create_security_group(GroupName=f"ks-contract-{uuid.uuid4().hex[:8]}",
                                    Description="contract", VpcId=vpc)["GroupId"]
    rig.cleanups.append(lambda: ec2.delete_security_group(GroupId=gid))
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "corp"},
                      {"CidrIp": "192.168.0.0/16"}]},
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
         "IpRanges": [{"CidrIp": "172.16.0.0/12"}]}])
    destinations = ["10.1.2.3", "172.16.5.0/24"]

    def observe() -> Any:
        group = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
        flat = []
        for p in group["IpPermissionsEgress"]:
            for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", []):
                flat.append((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"),
                             r.get("CidrIp") or r.get("CidrIpv6"), r.get("Description")))
        return sorted(flat, key=str)

    def killed(state: Any) -> bool:
        nets = [ipaddress.ip_network(d) for d in destinations]
        return not any(ipaddress.ip_network(rule[3]).overlaps(n)
                       for rule in state for n in nets)

    def make(url: str) -> Adapter:
        return rig.keep(SecurityGroupEgressAdapter("ec2", {**opts, "endpoint_url": url}))

    return Case(make(moto.moto_url), "egress.block",
                {"backend": "ec2", "group_id": gid, "destinations": destinations},
                observe, killed, secrets=[AWS_SECRET],
                bad_ref={"backend": "ec2", "group_id": "sg-0000000000000dead",
                         "destinations": destinations},
                faults=_aws_faults(moto, make))


# -- GCP stand-in --------------------------------------------------------------------------

def gcp_secrets_case(rig: Rig) -> Case:
    from adapters.gcp_secrets import GcpSecretManagerAdapter
    from tests.adapters.gcp.conftest import CANARY as GCP_CANARY
    from tests.adapters.gcp.conftest import OLD, PROJECT, SECRET

    gcp = rig.fixture("gcp")

    def observe() -> Any:
        versions = standin_state(gcp.endpoint)["secrets"][SECRET]["versions"]
        return {n: v["state"] for n, v in versions.items()}

    def make(url: str) -> Adapter:
        return rig.keep(GcpSecretManagerAdapter("gcp-sm", {"endpoint": url, "anonymous": True,
                                                           "project": PROJECT}))

    return Case(make(gcp.endpoint), "credential.disable", {"backend": "gcp-sm", "name": SECRET},
                observe, lambda s: "ENABLED" not in s.values(), secrets=[GCP_CANARY, OLD],
                writes=lambda: standin_writes(gcp.endpoint),
                bad_ref={"backend": "gcp-sm", "name": f"projects/{PROJECT}/secrets/no-such"},
                faults=[*standin_fault_set(gcp.endpoint, lambda: make(gcp.endpoint)),
                        closed_port_fault(make)])


def gcp_keys_case(rig: Rig) -> Case:
    from adapters.gcp_keys import GcpServiceAccountKeyAdapter
    from tests.adapters.gcp.conftest import SA

    gcp = rig.fixture("gcp")

    def observe() -> Any:
        keys = standin_state(gcp.endpoint)["service_accounts"][SA]["keys"]
        return {k: bool(v.get("disabled")) for k, v in keys.items()}

    def make(url: str) -> Adapter:
        return rig.keep(GcpServiceAccountKeyAdapter("gcp-keys", {"endpoint": url,
                                                                 "anonymous": True}))

    return Case(make(gcp.endpoint), "credential.disable",
                {"backend": "gcp-keys", "service_account": SA}, observe,
                lambda s: all(v for k, v in s.items() if not k.startswith("sys")),
                writes=lambda: standin_writes(gcp.endpoint),
                bad_ref={"backend": "gcp-keys",
                         "service_account": "nobody@ks-test.iam.gserviceaccount.com"},
                faults=[*standin_fault_set(gcp.endpoint, lambda: make(gcp.endpoint)),
                        closed_port_fault(make)])


# -- OpenAI / Anthropic admin stand-ins ----------------------------------------------------

def openai_case(rig: Rig) -> Case:
    from tests.adapters.llm.conftest import OPENAI_KEY, PROJECT

    llm = rig.fixture("llm")
    root = root_url(llm.openai_url)

    def observe() -> Any:
        return sorted(standin_state(root)["projects"][PROJECT]["api_keys"])

    def make(url: str) -> Adapter:
        return rig.keep(llm.openai_adapter(base_url=f"{url}/v1"))

    # OpenAI has no disable: credential.disable deletes, irreversibly
    return Case(make(root), "credential.disable",
                {"backend": "openai-sandbox", "project": PROJECT, "api_key_id": OPENAI_KEY},
                observe, lambda s: OPENAI_KEY not in s, undo=UNDO_NONE,
                secrets=[llm.value("openai", OPENAI_KEY), llm.admin_key("openai")],
                writes=lambda: standin_writes(root),
                # a missing key plans as "already deleted" (404 is the goal): malformed instead
                bad_ref={"backend": "openai-sandbox", "api_key_id": OPENAI_KEY},
                faults=[*standin_fault_set(root, lambda: make(root)), closed_port_fault(make)])


def anthropic_case(rig: Rig) -> Case:
    from tests.adapters.llm.conftest import ANTHROPIC_KEY

    llm = rig.fixture("llm")
    root = root_url(llm.anthropic_url)

    def observe() -> Any:
        return standin_state(root)["api_keys"][ANTHROPIC_KEY]["status"]

    def make(url: str) -> Adapter:
        return rig.keep(llm.anthropic_adapter(base_url=url))

    return Case(make(root), "credential.disable",
                {"backend": "anthropic-sandbox", "api_key_id": ANTHROPIC_KEY}, observe,
                lambda s: s == "inactive",
                secrets=[llm.value("anthropic", ANTHROPIC_KEY), llm.admin_key("anthropic")],
                writes=lambda: standin_writes(root),
                bad_ref={"backend": "anthropic-sandbox", "api_key_id": "apikey_no_such"},
                faults=[*standin_fault_set(root, lambda: make(root)), closed_port_fault(make)])


# -- batch stand-ins -----------------------------------------------------------------------

_CANCEL_WORDS = {"cancelling", "cancelled", "canceling", "canceled", "Stopping", "Stopped",
                 "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"}
_URL_OPTIONS = ("base_url", "endpoint", "endpoint_url")


def _batch_case(rig: Rig, provider: str) -> Case:
    from tests.adapters.batches.conftest import PROVIDERS

    box = rig.fixture("batches")
    integration, backend, standin, _ = PROVIDERS[provider]
    app = box.app(provider)
    url = f"http://127.0.0.1:{box.ports[standin]}"
    ref = box.ref(provider)

    def mine(job: dict[str, Any]) -> bool:
        if provider in ("openai", "azure"):
            return bool(job.get("metadata", {}).get("integration") == integration)
        if provider == "anthropic":
            return bool(job.get("_workspace") == ref["workspace"])
        if provider == "bedrock":
            return str(job.get("jobName", "")).startswith(ref["name_prefix"])
        return bool(job.get("labels", {}).get("integration") == integration)

    def observe() -> Any:
        # whether each job was told to stop (its status moves on with reads and time, so
        # the status itself is not a fixed state)
        jobs = standin_state(url).get("jobs", {})
        return {jid: (str(j.get(app.STATUS)) in _CANCEL_WORDS
                      or bool(j.get("cancel_initiated_at")), mine(j))
                for jid, j in jobs.items()}

    base = observe()

    def killed(state: Any) -> bool:
        others_same = all(state[j] == base[j] for j in base if not base[j][1])
        return others_same and any(state[j][0] and not base[j][0] for j in base if base[j][1])

    def make(endpoint: str | None = None) -> Adapter:
        opts = {}
        if endpoint is not None:
            key = next(k for k in _URL_OPTIONS if k in box.config.backends[backend].options)
            tail = "/v1" if provider == "openai" else ""
            opts[key] = endpoint + tail
        return rig.keep(box.adapter(provider, **opts))

    secrets = []
    for path in (box.root / ".sandbox").glob("*"):
        if not path.is_file() or path.name.endswith(".lock"):
            continue
        text = path.read_text()
        if path.name == "bedrock-credentials":
            ini = configparser.ConfigParser()
            ini.read_string(text)
            secrets += [s["aws_secret_access_key"] for s in ini.values()
                        if "aws_secret_access_key" in s]
        else:
            secrets += [line.strip() for line in text.splitlines() if len(line.strip()) >= 12]
    assert secrets, "the batch stand-ins' keys were not found"

    bad = {k: v for k, v in ref.items()
           if k not in ("metadata", "workspace", "name_prefix", "labels")}
    return Case(make(), "batch.cancel", ref, observe, killed, undo=UNDO_NONE,
                ctx=PlanContext(integration, "cancel-batches", run_id="r-contract"),
                secrets=secrets, writes=lambda: standin_writes(url), bad_ref=bad,
                faults=[*standin_fault_set(url, make), closed_port_fault(make)])


def openai_batch_case(rig: Rig) -> Case:
    return _batch_case(rig, "openai")


def azure_batch_case(rig: Rig) -> Case:
    return _batch_case(rig, "azure")


def anthropic_batch_case(rig: Rig) -> Case:
    return _batch_case(rig, "anthropic")


def bedrock_batch_case(rig: Rig) -> Case:
    return _batch_case(rig, "bedrock")


def vertex_batch_case(rig: Rig) -> Case:
    return _batch_case(rig, "vertex")


# -- flags ---------------------------------------------------------------------------------

def unleash_case(rig: Rig) -> Case:
    from adapters.unleash import UnleashAdapter
    from console.sandbox import unleash as sb

    server = rig.fixture("unleash")
    rig.fixture("unleash_env")
    flag = server.new_flag()  # on in production and development

    def make(url: str) -> Adapter:
        return rig.keep(UnleashAdapter("unleash-test", {
            "url": url, "token_env": "KS_TEST_UNLEASH_TOKEN",
            "client_token_env": "KS_TEST_UNLEASH_CLIENT"}))

    return Case(make(server.url), "flag.disable", {"backend": "unleash-test", "flag": flag},
                lambda: server.state(flag), lambda s: not any(s.values()),
                secrets=[sb.ADMIN_TOKEN, *sb.CLIENT_TOKENS.values()],
                bad_ref={"backend": "unleash-test", "flag": "ks-no-such-flag"},
                faults=[closed_port_fault(make)])


def launchdarkly_case(rig: Rig) -> Case:
    from adapters.launchdarkly import LaunchDarklyAdapter
    from tests.adapters.flags.conftest import LD_TOKEN

    _, url = rig.fixture("ld")
    flag = "support-bot-enabled"  # on in production, staging and test

    def observe() -> Any:
        envs = standin_state(url)["projects"]["ai"]["flags"][flag]["environments"]
        return {e: v["on"] for e, v in envs.items()}

    def make(base: str) -> Adapter:
        return rig.keep(LaunchDarklyAdapter("ld", {"base_url": base,
                                                   "token_env": "KS_TEST_LD_TOKEN"}))

    return Case(make(url), "flag.disable", {"backend": "ld", "project": "ai", "flag": flag},
                observe, lambda s: not any(s.values()), secrets=[LD_TOKEN],
                ctx=PlanContext("support-bot", "flags-off", {"reason": "contract"},
                                run_id="r-contract", incident="IR-contract"),
                writes=lambda: standin_writes(url),
                bad_ref={"backend": "ld", "project": "ai", "flag": "no-such-flag"},
                faults=[*standin_fault_set(url, lambda: make(url)), closed_port_fault(make)])


# -- egress on this host -------------------------------------------------------------------

def nftables_case(rig: Rig) -> Case:
    from adapters.nftables import NftablesAdapter

    ns = rig.fixture("netns")

    def rules() -> list[Any]:
        # every rule in the client namespace, without its packet counters; the adapter's own
        # (empty, accepting) table and chain are documented to stay after undo, so tables and
        # chains are not compared
        out = json.loads(ns.nft("-j", "-a", "list", "ruleset"))["nftables"]
        return sorted(json.dumps({**i["rule"], "expr": [e for e in i["rule"]["expr"]
                                                         if "counter" not in e]},
                                 sort_keys=True) for i in out if "rule" in i)

    def drop_table() -> None:  # whatever a failed test left behind
        subprocess.run(["ip", "netns", "exec", ns.cli, "nft", "delete", "table", "inet",
                        "killswitch"], capture_output=True, check=False)

    rig.cleanups.append(drop_table)

    def observe() -> Any:
        return {"rules": rules(), "connects": ns.connects(timeout=0.5)}

    def make(netns: str) -> Adapter:
        return rig.keep(NftablesAdapter("fw", {"netns": netns, "probe_port": ns.port,
                                               "probe_timeout": 0.5}))

    missing = f"ks-no-such-{uuid.uuid4().hex[:6]}"
    return Case(make(ns.cli), "egress.block",
                {"backend": "fw", "destinations": ["10.200.0.1"]}, observe,
                lambda s: not s["connects"] and any("drop" in r for r in s["rules"]),
                bad_ref={"backend": "fw", "destinations": ["no-such-host.invalid"]},
                faults=[Fault("network namespace missing", lambda: make(missing),
                              retryable=False)])


def squid_case(rig: Rig) -> Case:
    from adapters.squid import SquidDenylistAdapter

    sq = rig.fixture("squid")
    url = f"http://localhost:{sq.dest_port}/"
    original = sq.denylist.read_text()

    def restore() -> None:
        if sq.denylist.read_text() != original:
            sq.denylist.write_text(original)
            subprocess.run(sq.reload_cmd(), capture_output=True, check=False)
            sq.wait_status(url, 200)

    rig.cleanups.append(restore)

    def observe() -> Any:
        text = sq.denylist.read_text()
        listed = "localhost" in text.split()
        # a reconfigure takes 1-2 s: wait for the proxy to answer as the file says
        return {"denylist": text, "status": sq.wait_status(url, 403 if listed else 200)}

    def make(reload: list[str]) -> Adapter:
        return rig.keep(SquidDenylistAdapter("proxy", {
            "denylist": str(sq.denylist), "reload": reload, "proxy": sq.proxy,
            # verify polls the proxy until it answers 403; a loaded CI machine can take
            # well over the default 5 s to finish a reconfigure (seen: ~13 s)
            "verify_wait": 60}))

    # the same reconfigure against a Squid that is not running (its pid file names nobody)
    stopped = rig.tmp / "stopped"
    stopped.mkdir()
    conf = stopped / "squid.conf"
    conf.write_text(sq.conf.read_text().replace(f"pid_filename {sq.dir}/squid.pid",
                                                f"pid_filename {stopped}/squid.pid"))
    return Case(make(sq.reload_cmd()), "egress.block",
                {"backend": "proxy", "destinations": ["localhost"]}, observe,
                lambda s: s["status"] == 403,
                bad_ref={"backend": "proxy", "destinations": ["http://not a domain/"]},
                faults=[Fault("squid not running", lambda: make(
                    ["squid", "-f", str(conf), "-k", "reconfigure"]), calls=("apply",))])


# -- notifications -------------------------------------------------------------------------

def _notify_ctx(receivers: Any) -> PlanContext:
    from tests.adapters.notify.conftest import CANARY as NOTIFY_CANARY
    from tests.adapters.notify.conftest import ROUTING_KEY

    # secrets planted in free inventory text, as tests/adapters/notify does
    return PlanContext("support-bot", "notify", run_id="r-contract", incident="IR-contract",
                       operator="tester", runbook="kill-switch", facts={
                           "name": f"Support bot {NOTIFY_CANARY}", "environment": "prod",
                           "provider": "openai", "owner": receivers.webhook_url,
                           "kill_switch_owner": {"name": "Priya", "role": "lead",
                                                 "how": f"pd {ROUTING_KEY}"}})


def _notify_secrets(receivers: Any) -> list[str]:
    from tests.adapters.notify.conftest import CANARY as NOTIFY_CANARY
    from tests.adapters.notify.conftest import HOOK, ROUTING_KEY

    return [receivers.webhook_url, HOOK, HOOK.rsplit("/", 1)[1], ROUTING_KEY, NOTIFY_CANARY]


def slack_case(rig: Rig) -> Case:
    from adapters.slack import SlackWebhookAdapter
    from tests.adapters.notify.conftest import HOOK

    r = rig.fixture("receivers")
    root = root_url(r.webhook_url)
    rig.mp.setenv("KS_CONTRACT_SLACK_WEBHOOK", r.webhook_url)

    def observe() -> Any:
        return [m["text"].split("\n", 1)[0] for m in standin_state(root)["messages"]]

    def make(env: str = "KS_CONTRACT_SLACK_WEBHOOK") -> Adapter:
        return rig.keep(SlackWebhookAdapter("slack-test", {"webhook_env": env,
                                                           "request_timeout": 5}))

    def refused() -> Adapter:
        rig.mp.setenv("KS_CONTRACT_SLACK_CLOSED", f"http://127.0.0.1:{closed_port()}{HOOK}")
        return make("KS_CONTRACT_SLACK_CLOSED")

    return Case(make(), "notify", {"backend": "slack-test", "name": "AI incident channel",
                                   "role": "incident channel", "how": "slack:#ai-incidents"},
                observe, lambda s: any("is running against" in m for m in s),
                undo=UNDO_NOTIFY, cleared=lambda s: any("all clear" in m for m in s),
                ctx=_notify_ctx(r), secrets=_notify_secrets(r),
                writes=lambda: standin_writes(root), readback=False, replan_noop=False,
                reapply_same=False,
                faults=[*standin_fault_set(root, make, calls=("apply",)),
                        Fault("connection refused", refused, calls=("apply",))])


def pagerduty_case(rig: Rig) -> Case:
    from adapters.pagerduty import PagerDutyAdapter
    from tests.adapters.notify.conftest import ROUTING_KEY

    r = rig.fixture("receivers")
    rig.mp.setenv("KS_CONTRACT_PD_KEY", ROUTING_KEY)

    def observe() -> Any:
        return {k: a["status"] for k, a in standin_state(r.pd_url)["alerts"].items()}

    def make(url: str) -> Adapter:
        return rig.keep(PagerDutyAdapter("pd-test", {"base_url": url, "severity": "error",
                                                     "routing_key_env": "KS_CONTRACT_PD_KEY",
                                                     "request_timeout": 5}))

    return Case(make(r.pd_url), "notify", {"backend": "pd-test", "name": "AI platform on-call",
                                           "role": "on-call"},
                observe, lambda s: "triggered" in s.values(), undo=UNDO_NOTIFY,
                cleared=lambda s: bool(s) and set(s.values()) == {"resolved"},
                ctx=_notify_ctx(r), secrets=_notify_secrets(r),
                writes=lambda: standin_writes(r.pd_url), readback=False, replan_noop=False,
                faults=[*standin_fault_set(r.pd_url, lambda: make(r.pd_url), calls=("apply",)),
                        closed_port_fault(make, calls=("apply",))])


BUILDERS: dict[str, Callable[[Rig], Case]] = {
    "fake": fake_case,
    "flagfile": flagfile_case,
    "vault": vault_case,
    "aws-secrets": aws_secrets_case,
    "aws-ssm": aws_ssm_case,
    "aws-iam": aws_iam_case,
    "aws-sg": aws_sg_case,
    "gcp-secrets": gcp_secrets_case,
    "gcp-keys": gcp_keys_case,
    "openai": openai_case,
    "anthropic": anthropic_case,
    "openai-batch": openai_batch_case,
    "azure-openai-batch": azure_batch_case,
    "anthropic-batch": anthropic_batch_case,
    "bedrock-batch": bedrock_batch_case,
    "vertex-batch": vertex_batch_case,
    "unleash": unleash_case,
    "launchdarkly": launchdarkly_case,
    "nftables": nftables_case,
    "squid": squid_case,
    "slack": slack_case,
    "pagerduty": pagerduty_case,
}
"""Every built-in adapter's case; a registered adapter without one fails the contract test."""


def build(name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Iterator[Case]:
    """The case of adapter ``name``, opened; everything it made is undone afterwards."""
    rig = Rig(request, monkeypatch, tmp_path)
    try:
        case = BUILDERS[name](rig)
        case.adapter.open()
        yield case
    finally:
        rig.close()
