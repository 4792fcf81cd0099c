"""The canary test: key values planted everywhere never reach the evidence.

Canary values (an OpenAI and an Anthropic key, an AWS secret access key, a Vault token, a
PEM private key) are planted in every store (OpenBao KV data and custom metadata, Secrets
Manager value, tags and description, SSM SecureString and String parameters, Google Secret
Manager payloads) and every provider stand-in (OpenAI ``redacted_value`` and key name,
Anthropic ``partial_key_hint``, batch output / error / result files, a CloudTrail event
record, GCP key data). Every adapter's ``preserve()`` then runs twice: into an in-memory
recorder (what the adapter hands over) and into the engine's real evidence bundle on disk,
whose every byte is searched. Neither may hold a canary, nor any 9-character piece of one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from adapters.anthropic_admin import AnthropicAdminAdapter
from adapters.anthropic_batch import AnthropicBatchAdapter
from adapters.aws_iam import IamAccessKeyAdapter
from adapters.aws_secrets import SecretsManagerAdapter
from adapters.aws_ssm import SsmParameterAdapter
from adapters.base import Adapter, PlanContext
from adapters.evidence import EVIDENCE_ACTION
from adapters.gcp_keys import GcpServiceAccountKeyAdapter
from adapters.gcp_secrets import GcpSecretManagerAdapter
from adapters.openai_admin import OpenAIAdminAdapter
from adapters.openai_batch import OpenAIBatchAdapter
from adapters.preserve_common import REDACTED
from adapters.vault import VaultAdapter
from console.engine.evidence import EvidenceBundle, evidence_change
from console.sandbox import api_anthropic, api_anthropic_batches, api_openai, api_openai_batches
from console.sandbox.api_cloudtrail import CloudTrailStandIn, event
from console.sandbox.api_gcp import GcpStandIn, new_key, new_secret
from console.sandbox.standin import StandIn, serve
from console.sandbox.usagereports import seed_usage
from tests.adapters.aws.conftest import client, options
from tests.adapters.evidence.recorder import Recorder
from tests.servers import BaoServer

OPENAI = "sk-proj-CANARY" + "Qx7Lm2Np9Rt4Vw8Yz3Bc6Df1Gh5Jk0Ab"
ANTHROPIC = "sk-ant-api03-CANARY" + "Tq4Wm8Xp2Zr6Ys0Vn3Bk7Hj1Lf5Gd9Ce"
AWS_SECRET = "CANARYwJalrXUtnFEMI/K7MDENG+bPxRfiCYzz91"
VAULT = "hvs.CANARY" + "Pq3Rs7Tu1Vw5Xy9Za2Bc6De0Fg4Hi8"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIICANARYowIBAAKCAQEA7q3Xz9Lm2Np4Rt6Vw8Yz1Bc3Df5\n"
       "CANARYsecondLineOfKeyMaterial7kQ2vX9mR4tZwP\n-----END RSA PRIVATE KEY-----\n")
PEM_B64 = base64.b64encode(PEM.encode()).decode()
CANARIES = {"openai": OPENAI, "anthropic": ANTHROPIC, "aws": AWS_SECRET, "vault": VAULT,
            "pem": PEM, "pem-base64": PEM_B64}
PREFIXES = ("sk-proj-", "sk-ant-api03-", "hvs.")
ALL = json.dumps({"api_key": OPENAI, "anthropic": ANTHROPIC,
                  "aws_secret_access_key": AWS_SECRET, "vault_token": VAULT, "pem": PEM})

ADMIN = {"openai": "sk-admin-canarytest-" + "0" * 20,
         "anthropic": "sk-ant-admin-canary-" + "0" * 20}
BATCH_KEYS = {"openai": "sk-proj-canarytest-batch-" + "1" * 16,
              "anthropic": "sk-ant-api03-canarytest-batch-" + "1" * 16}
USER = "canary-bedrock-caller"
SA = "canary-sa@ks-canary.iam.gserviceaccount.com"
SECRET = "projects/ks-canary/secrets/canary-copy"


def pieces(value: str) -> set[str]:
    """Every 9-character piece of a canary's distinctive part (its prefix and PEM armour
    are shared by every key of the kind, so they are not pieces of this one)."""
    body = value
    for prefix in PREFIXES:
        body = body.removeprefix(prefix)
    lines = [ln for ln in body.splitlines() if not ln.startswith("-----")] or [body]
    return {ln[i:i + 9] for ln in lines for i in range(len(ln) - 8)}


def assert_clean(text: str, where: str) -> None:
    for name, value in CANARIES.items():
        assert value not in text, f"canary {name} found in {where}"
        leaked = sorted(p for p in pieces(value) if p in text)
        assert not leaked, f"pieces of canary {name} found in {where}: {leaked[:3]}"


# -- the planted world ------------------------------------------------------------------------


class World:
    """The servers with canaries planted, and one adapter + reference per system."""

    def __init__(self) -> None:
        self.servers: list[Any] = []
        self.pairs: list[tuple[Adapter, dict[str, Any]]] = []

    def serve(self, app: StandIn) -> str:
        srv = serve(app, port=0)
        self.servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    def close(self) -> None:
        for adapter, _ in self.pairs:
            adapter.close()
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


def plant_llm(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    key = {**api_openai.key_object("key_canary", f"bot (was {OPENAI})", OPENAI),
           "redacted_value": OPENAI}  # an API answering the whole key: dropped anyway
    project = {"object": "organization.project", "id": "proj_canary", "name": "canary",
               "created_at": 1700000000, "status": "active", "api_keys": {"key_canary": key},
               "service_accounts": {}}
    url = world.serve(api_openai.OpenAIStandIn({
        "admin_keys": [ADMIN["openai"]], "projects": {"proj_canary": project},
        "usage": seed_usage([("proj_canary", "key_canary")], ("gpt-4o",))}))
    monkeypatch.setenv("KS_CANARY_OPENAI_ADMIN", ADMIN["openai"])
    world.pairs.append((OpenAIAdminAdapter("openai-c", {
        "base_url": f"{url}/v1", "admin_key_env": "KS_CANARY_OPENAI_ADMIN"}),
        {"backend": "openai-c", "project": "proj_canary", "api_key_id": "key_canary"}))

    akey = {**api_anthropic.key_object("apikey_canary", "canary", ANTHROPIC),
            "partial_key_hint": f"{ANTHROPIC[:24]}...{ANTHROPIC[-6:]}"}
    url = world.serve(api_anthropic.AnthropicStandIn({
        "admin_keys": [ADMIN["anthropic"]], "api_keys": {"apikey_canary": akey},
        "usage": seed_usage([("wrkspc_sandbox", "apikey_canary")], ("claude-sonnet-4-5",))}))
    monkeypatch.setenv("KS_CANARY_ANTHROPIC_ADMIN", ADMIN["anthropic"])
    world.pairs.append((AnthropicAdminAdapter("anthropic-c", {
        "base_url": url, "admin_key_env": "KS_CANARY_ANTHROPIC_ADMIN"}),
        {"backend": "anthropic-c", "api_key_id": "apikey_canary"}))


def plant_batches(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    batch = api_openai_batches.batch_object("batch_canary0001", "completed",
                                            {"integration": "canary"}, 3, 2, 1, now - 3600)
    leak = {"custom_id": "request-1", "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": f"Sure, the key is {OPENAI}\n{PEM}"}}]}}}
    more = {"custom_id": "request-2", "note": f"aws_secret_access_key={AWS_SECRET}"}
    errors = {"custom_id": "request-3", "error": {"message": f"bad token {VAULT}"}}
    url = world.serve(api_openai_batches.OpenAIBatchesStandIn({
        "keys": [BATCH_KEYS["openai"]], "jobs": {batch["id"]: batch},
        "files": {batch["output_file_id"]: json.dumps(leak) + "\n" + json.dumps(more) + "\n",
                  batch["error_file_id"]: json.dumps(errors) + "\n" + PEM}}))
    monkeypatch.setenv("KS_CANARY_OPENAI_BATCH", BATCH_KEYS["openai"])
    world.pairs.append((OpenAIBatchAdapter("openai-batch-c", {
        "base_url": f"{url}/v1", "key_env": "KS_CANARY_OPENAI_BATCH"}),
        {"backend": "openai-batch-c", "metadata": {"integration": "canary"}}))

    msg = api_anthropic_batches.batch_object("msgbatch_canary0001", "wrkspc_canary", "ended",
                                             0, 1, 0, time.time() - 3600)
    result = {"custom_id": "r1", "result": {"type": "succeeded", "message": {
        "content": [{"type": "text", "text": f"{ANTHROPIC} and {VAULT}"}]}}}
    url = world.serve(api_anthropic_batches.AnthropicBatchesStandIn({
        "keys": {BATCH_KEYS["anthropic"]: ["wrkspc_canary"]}, "jobs": {msg["id"]: msg},
        "files": {msg["id"]: json.dumps(result) + "\n"}}))
    monkeypatch.setenv("KS_CANARY_ANTHROPIC_BATCH", BATCH_KEYS["anthropic"])
    world.pairs.append((AnthropicBatchAdapter("anthropic-batch-c", {
        "base_url": url, "key_env": "KS_CANARY_ANTHROPIC_BATCH"}),
        {"backend": "anthropic-batch-c", "workspace": "wrkspc_canary"}))


def plant_aws(world: World, moto: str) -> None:
    iam = client(moto, "iam")
    iam.create_user(UserName=USER)
    kid = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    leaky = event(USER, kid, time.time() - 600, "sts.amazonaws.com", "GetSessionToken", False,
                  "203.0.113.77", f"curl/8.5 Authorization: Bearer {ANTHROPIC}",
                  params={"secretString": OPENAI, "durationSeconds": 3600},
                  extra={"responseElements": {"credentials": {
                      "accessKeyId": "ASIACANARYSESSION001", "secretAccessKey": AWS_SECRET,
                      "sessionToken": VAULT}}, "additionalEventData": {"note": PEM}})
    url = world.serve(CloudTrailStandIn({"users": {}, "keys": {}, "events": [leaky]}))
    world.pairs.append((IamAccessKeyAdapter("aws-iam-c", options(
        moto, cloudtrail_endpoint_url=url)), {"backend": "aws-iam-c", "user": USER}))

    sm = client(moto, "secretsmanager")
    sm.create_secret(Name="canary/copy", SecretString=ALL, Description=f"copy of {ANTHROPIC}",
                     Tags=[{"Key": "note", "Value": f"rotated from {OPENAI}"},
                           {"Key": "api_key", "Value": AWS_SECRET}])
    sm.put_secret_value(SecretId="canary/copy", SecretString=json.dumps({"api_key": OPENAI}))
    world.pairs.append((SecretsManagerAdapter("aws-sm-c", options(moto)),
                        {"backend": "aws-sm-c", "secret_id": "canary/copy"}))

    ssm = client(moto, "ssm")
    ssm.put_parameter(Name="/canary/secure", Value=OPENAI, Type="SecureString",
                      Description=f"was {VAULT}")
    ssm.put_parameter(Name="/canary/plain", Value=PEM, Type="String")
    ssm.put_parameter(Name="/canary/plain", Value=AWS_SECRET, Type="String", Overwrite=True)
    for name in ("/canary/secure", "/canary/plain"):
        world.pairs.append((SsmParameterAdapter("aws-ssm-c", options(moto)),
                            {"backend": "aws-ssm-c", "name": name}))


def plant_vault(world: World, root: hvac.Client, mount: str, bao: BaoServer) -> None:
    kv = root.secrets.kv.v2
    kv.create_or_update_secret(path="canary", mount_point=mount, secret=json.loads(ALL))
    kv.update_metadata(path="canary", mount_point=mount,
                       custom_metadata={"note": VAULT, "previous": OPENAI})
    world.pairs.append((VaultAdapter("vault-c", {"url": bao.url,
                                                 "token_env": "KS_TEST_VAULT_TOKEN"}),
                        {"backend": "vault-c", "mount": mount, "path": "canary"}))
    made = root.auth.token.create(policies=["default"], ttl="1h")
    world.pairs.append((VaultAdapter("vault-c", {"url": bao.url,
                                                 "token_env": "KS_TEST_VAULT_TOKEN"}),
                        {"backend": "vault-c", "kind": "token",
                         "accessor": made["auth"]["accessor"]}))
    world.canary_token = made["auth"]["client_token"]  # type: ignore[attr-defined]


def plant_gcp(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = GcpStandIn._key_json

    def with_key_data(project: str, sa: str, kid: str, k: dict[str, Any]) -> dict[str, Any]:
        return {**shown(project, sa, kid, k), "privateKeyData": PEM_B64}

    monkeypatch.setattr(GcpStandIn, "_key_json", staticmethod(with_key_data))
    url = world.serve(GcpStandIn({
        "secrets": {SECRET: new_secret([("DISABLED", AWS_SECRET), ("ENABLED", ALL)])},
        "service_accounts": {SA: {"project": "ks-canary", "keys": {"k1": new_key("ks-canary")}}}
    }))
    world.pairs.append((GcpSecretManagerAdapter("gcp-sm-c", {"endpoint": url, "anonymous": True}),
                        {"backend": "gcp-sm-c", "name": SECRET}))
    world.pairs.append((GcpServiceAccountKeyAdapter("gcp-keys-c", {"endpoint": url,
                                                                   "anonymous": True}),
                        {"backend": "gcp-keys-c", "service_account": SA}))


@pytest.fixture
def world(moto: str, root: hvac.Client, kv_mount: str, vault_env: BaoServer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World()
    try:
        plant_llm(w, monkeypatch)
        plant_batches(w, monkeypatch)
        plant_aws(w, moto)
        plant_vault(w, root, kv_mount, vault_env)
        plant_gcp(w, monkeypatch)
        yield w
    finally:
        w.close()


# -- the test ----------------------------------------------------------------------------------


def test_no_canary_reaches_the_sink_nor_the_bundle(world: World, tmp_path: Path) -> None:
    CANARIES["vault-token"] = world.canary_token  # type: ignore[attr-defined]
    try:
        handed: dict[str, Recorder] = {}
        for adapter, ref in world.pairs:
            sink = Recorder()
            adapter.preserve(ref, sink)
            assert sink.failures == [], (adapter.name, sink.failures)
            handed[f"{adapter.backend} {ref}"] = sink
            assert_clean(sink.everything(), f"what {adapter.name} handed over for {ref}")

        # the planted canaries were reached, and redacted where they were not dropped
        text = "\n".join(s.everything() for s in handed.values())
        assert text.count(REDACTED) >= 10
        batch_out = next(i for s in handed.values() for n, i in s.items.items()
                         if n.endswith("-output.jsonl"))
        assert f"the key is {REDACTED}" in batch_out.text
        trail = next(i.data for s in handed.values() for n, i in s.items.items()
                     if n.startswith("cloudtrail-"))
        record = trail["events"][0]["CloudTrailEvent"]
        assert record["requestParameters"]["secretString"] == REDACTED
        assert record["responseElements"]["credentials"]["accessKeyId"] == \
            "ASIACANARYSESSION001"

        # and through the engine's own sink: a real bundle on disk, every byte searched
        bundle = EvidenceBundle(tmp_path / "evidence", "run-canary",
                                {"cause": "leak", "mode": "exercise"})
        for n, (adapter, ref) in enumerate(world.pairs):
            ctx = PlanContext(integration=f"canary-{n}", step="preserve-evidence",
                              backend=adapter.backend, adapter=adapter.name,
                              action=EVIDENCE_ACTION, ref=ref)
            sink = bundle.sink(evidence_change(ctx, adapter, f"{adapter.backend}:{n}"))
            adapter.preserve(ref, sink)
            sink.close()
        bundle.write_manifest()
        manifest = json.loads(bundle.manifest_path.read_text())
        assert manifest["failed"] == []
        assert len(manifest["files"]) == sum(len(s.items) for s in handed.values())
        files = [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()]
        assert len(files) == len(manifest["files"]) + 1
        for path in files:
            text = path.read_bytes().decode("utf-8", "replace")
            assert_clean(text, str(path))
            # the adapters left the bundle's own scrubber nothing to do (nor a field name
            # it would take for a secret, such as "secret": evidence stays readable)
            assert "[REDACTED hmac:" not in text, path
    finally:
        CANARIES.pop("vault-token", None)
