"""`killswitch permissions`: the least privilege of the console's identity, per backend.

Every shipped runbook on the example config renders; every AWS action named anywhere exists
in botocore's service models; resources are the ones the references name; nothing the
runbook does not do is granted.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from adapters.specs import BUILTIN, Grant, builtin_spec
from console.cli import main
from console.config import load_config
from console.permissions import aws_policy, least_privilege, vault_policy
from console.runbook import SHIPPED_DIR, load_runbook

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"
RUNBOOKS = sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))
AWS_SERVICES = {"secretsmanager": "secretsmanager", "ssm": "ssm", "iam": "iam", "ec2": "ec2",
                "kms": "kms", "bedrock": "bedrock"}
"""IAM action prefix -> botocore service model name."""


def needs(runbook: str, *ids: str, config: Path = EXAMPLE) -> dict[str, Any]:
    cfg = load_config(config)
    chosen = [i for i in cfg.integrations if not ids or i.id in ids]
    return least_privilege(cfg, load_runbook(runbook, cfg), chosen).to_dict()


def backend(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = [b for b in data["backends"] if b["backend"] == name]
    assert found, f"{name} not in {[b['backend'] for b in data['backends']]}"
    return found[0]


def actions_of(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def test_shipped_runbooks_are_all_covered() -> None:
    assert {"kill-switch", "flags-off", "cancel-batches", "block-egress",
            "revoke-credentials", "restore"} <= set(RUNBOOKS)


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_every_shipped_runbook_on_the_example_config(
        runbook: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = needs(runbook)
    assert data["runbook"] == runbook and len(data["integrations"]) == 5
    # evidence.preserve is carried out by the engine with each adapter's read-only calls;
    # until an adapter declares it as an action, its reads are a note, not grants
    assert [n for n in data["notes"] if "evidence.preserve" not in n] == []
    assert data["backends"] or runbook == "evidence", f"{runbook} needs nothing?"
    for b in data["backends"]:
        assert b["grants"] and b["actions"]
        if b["iam"] == "aws":
            assert b["policy"]["Version"] == "2012-10-17"
            for s in b["policy"]["Statement"]:
                assert s["Effect"] == "Allow" and s["Action"] == sorted(s["Action"])
                res = s["Resource"]
                assert res == "*" or all(r.startswith("arn:aws:") for r in res)
        elif b["iam"] == "gcp":
            assert b["role"]["includedPermissions"] == b["permissions"]
            assert all(re.fullmatch(r"[a-z]+\.[a-zA-Z]+\.[a-zA-Z]+", p) for p in b["permissions"])
            assert all(x["resource"].startswith("projects/") for x in b["bindings"])
        elif b["iam"] == "vault":
            assert b["policy_hcl"].count("path ") == len({g["resource"] for g in b["grants"]})
    # the command itself, text and --json
    for extra in ((), ("--json",)):
        with pytest.raises(SystemExit) as exc:
            main(["--config", str(EXAMPLE), "permissions", runbook, "provider=openai,"
                  "anthropic,bedrock,vertex", *extra])
            raise SystemExit(0)
        assert exc.value.code == 0
        out = capsys.readouterr().out
        if extra:
            assert json.loads(out)["runbook"] == runbook
        else:
            assert out.startswith(f"Least privilege of the console's identity for runbook "
                                  f"{runbook} on 5 integration(s)")


def _all_aws_actions() -> set[str]:
    names: set[str] = set()
    for name in BUILTIN:
        spec = builtin_spec(name)
        assert spec is not None
        if spec.iam == "aws":
            for action in spec.actions.values():
                names |= set(action.permissions)
    for runbook in RUNBOOKS:
        for b in needs(runbook)["backends"]:
            if b["iam"] == "aws":
                names |= actions_of(b["policy"])
    return names


def test_every_aws_action_exists_in_botocore() -> None:
    session = botocore.session.get_session()
    models: dict[str, set[str]] = {}
    names = _all_aws_actions()
    assert len(names) >= 20
    for name in sorted(names):
        prefix, _, op = name.partition(":")
        assert prefix in AWS_SERVICES, f"unknown IAM prefix in {name}"
        service = AWS_SERVICES[prefix]
        if service not in models:
            models[service] = set(session.get_service_model(service).operation_names)
        assert op in models[service], f"{name}: no operation {op} in botocore's {service} model"


def test_aws_resources_are_the_references_arns() -> None:
    data = needs("kill-switch", "support-bot", "claims-summariser")
    sm = backend(data, "aws-sandbox-sm")["policy"]
    arns = {r for s in sm["Statement"] if s["Resource"] != "*" for r in s["Resource"]}
    assert arns == {"arn:aws:secretsmanager:us-east-1:*:secret:ai/support-bot/openai-??????",
                    "arn:aws:secretsmanager:us-east-1:*:secret:ai/claims-summariser/bedrock-??????"}
    kms = [s for s in sm["Statement"] if "kms:Decrypt" in s["Action"]]
    assert kms[0]["Resource"] == "*" and kms[0]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    ssm = backend(data, "aws-sandbox-ssm")["policy"]
    assert "arn:aws:ssm:us-east-1:*:parameter/ai/claims-summariser/bedrock" in json.dumps(ssm)
    iam = backend(data, "aws-sandbox-iam")["policy"]
    assert actions_of(iam) == {"iam:ListAccessKeys", "iam:UpdateAccessKey"}
    assert "arn:aws:iam::*:user/claims-summariser-bedrock" in iam["Statement"][0]["Resource"]
    bedrock = backend(data, "bedrock-sandbox")["policy"]
    assert "arn:aws:bedrock:eu-west-2:*:model-invocation-job/*" in json.dumps(bedrock)


def test_least_privilege_grants_only_what_the_runbook_does() -> None:
    kill = needs("kill-switch", "support-bot", "claims-summariser")
    sm = actions_of(backend(kill, "aws-sandbox-sm")["policy"])
    # support-bot's copy is scheduled for deletion; claims-summariser's is tombstoned
    assert {"secretsmanager:DeleteSecret", "secretsmanager:PutSecretValue"} <= sm
    assert "secretsmanager:RestoreSecret" not in sm  # that is restore's
    assert "undelete" not in backend(kill, "vault-sandbox")["policy_hcl"]
    restore = needs("restore", "support-bot")
    assert "secretsmanager:RestoreSecret" in actions_of(backend(restore, "aws-sandbox-sm")
                                                        ["policy"])
    assert "secretsmanager:DeleteSecret" not in actions_of(backend(restore, "aws-sandbox-sm")
                                                           ["policy"])
    # OpenAI keys cannot be restored: restore needs nothing there
    assert "openai-sandbox" not in {b["backend"] for b in restore["backends"]}
    # flags-off touches flags only
    assert {b["type"] for b in needs("flags-off")["backends"]} == {"flagfile", "launchdarkly",
                                                                   "unleash"}


def test_vault_policy_has_the_exact_kv_paths() -> None:
    hcl = backend(needs("revoke-credentials", "support-bot"), "vault-sandbox")["policy_hcl"]
    assert hcl == textwrap.dedent("""\
        # Killswitch: runbook revoke-credentials, backend vault-sandbox
        path "secret/data/ai/support-bot/provider-key" {
          capabilities = ["read"]
        }

        path "secret/delete/ai/support-bot/provider-key" {
          capabilities = ["update"]
        }

        path "secret/metadata/ai/support-bot/provider-key" {
          capabilities = ["read"]
        }
        """)
    restore = backend(needs("restore", "support-bot"), "vault-sandbox")["policy_hcl"]
    assert 'path "secret/undelete/ai/support-bot/provider-key"' in restore
    assert "/delete/" not in restore


def test_vault_token_lease_and_destroy_paths(tmp_path: Path) -> None:
    spec = builtin_spec("vault")
    assert spec is not None
    opts = spec.options.parse("v", {"url": "http://x"})
    grants = [*spec.grants_for("credential.destroy", {"mount": "kv/", "path": "/a/b"}, opts),
              *spec.grants_for("credential.disable", {"kind": "token", "accessor": "acc"}, opts),
              *spec.grants_for("credential.disable", {"kind": "lease", "prefix": "db/creds/"},
                               opts)]
    hcl = vault_policy(grants)
    for path, caps in (("kv/destroy/a/b", '"update"'), ("kv/metadata/a/b", '"read"'),
                       ("auth/token/revoke-accessor", '"update"'),
                       ("auth/token/lookup-accessor", '"update"'),
                       ("sys/leases/lookup/db/creds", '"list", "sudo"'),
                       ("sys/leases/lookup/db/creds/*", '"list", "sudo"'),
                       ("sys/leases/revoke-prefix/db/creds", '"update", "sudo"')):
        assert f'path "{path}" {{\n  capabilities = [{caps}]\n}}' in hcl
    assert spec.grants_for("credential.enable", {"kind": "token", "accessor": "a"}, opts) == []


def test_gcp_permissions_role_and_bindings() -> None:
    data = needs("revoke-credentials", "search-embeddings")
    keys = backend(data, "gcp-sandbox-keys")
    assert keys["permissions"] == ["iam.serviceAccountKeys.disable",
                                   "iam.serviceAccountKeys.list"]
    assert keys["bindings"] == [{
        "resource": "projects/ks-sandbox/serviceAccounts/"
                    "search-embeddings@ks-sandbox.iam.gserviceaccount.com",
        "permissions": keys["permissions"]}]
    assert keys["role"]["roleId"] == "killswitch_revoke_credentials_gcp_sandbox_keys"
    sm = backend(data, "gcp-sandbox-sm")
    assert sm["bindings"][0]["resource"] == "projects/ks-sandbox/secrets/search-embeddings-key"
    assert "secretmanager.versions.access" in sm["permissions"]  # verify and proof of death
    vertex = backend(needs("cancel-batches", "search-embeddings"), "vertex-sandbox")
    assert vertex["permissions"] == ["aiplatform.batchPredictionJobs.cancel",
                                     "aiplatform.batchPredictionJobs.get",
                                     "aiplatform.batchPredictionJobs.list"]


def test_saas_admin_keys_scopes_and_roles() -> None:
    data = needs("kill-switch")
    openai = backend(data, "openai-sandbox")["credentials"]
    assert [c["credential"] for c in openai] == [
        "OpenAI admin key (organization owner): api.management.read",
        "OpenAI admin key (organization owner): api.management.write"]
    assert openai[1]["for"][0].startswith(
        "DELETE /v1/organization/projects/proj_support_bot/api_keys/key_support_bot")
    anthropic = backend(data, "anthropic-sandbox")["credentials"][0]
    assert anthropic["credential"].startswith("Anthropic admin key")
    assert "POST /v1/organizations/api_keys/apikey_code_review_agent (status inactive)" in \
        anthropic["for"]
    ld = backend(data, "launchdarkly-sandbox")["role_policy"]
    assert {"effect": "allow", "actions": ["updateOn"],
            "resources": ["proj/ai:env/production:flag/support-bot-enabled"]} in ld
    unleash = backend(data, "unleash-sandbox")["credentials"]
    assert any("UPDATE_FEATURE_ENVIRONMENT in environment production of project default"
               in c["credential"] for c in unleash)
    assert "incoming-webhook" in backend(data, "slack-sandbox")["credentials"][0]["credential"]
    pd = backend(data, "pagerduty-sandbox")["credentials"][0]
    assert "routing) key of service AI platform on-call" in pd["credential"]
    assert pd["for"] == ["POST /v2/enqueue (trigger; resolve on restore)"]
    batch = backend(data, "anthropic-batch-sandbox")["credentials"][0]["credential"]
    assert "workspace wrkspc_code_review_agent" in batch


def test_step_options_narrow_the_grants(tmp_path: Path) -> None:
    book = tmp_path / "tomb.toml"
    book.write_text('name = "tomb"\ndescription = "x"\n[[steps]]\nid = "t"\n'
                    'action = "credential.disable"\noptions = {method = "tombstone"}\n')
    sm = actions_of(backend(needs(str(book), "support-bot"), "aws-sandbox-sm")["policy"])
    assert "secretsmanager:PutSecretValue" in sm and "secretsmanager:DeleteSecret" not in sm


def test_aws_policy_merges_actions_sharing_resources() -> None:
    policy = aws_policy([Grant("s3:GetObject", "arn:aws:s3:::b/*"),
                         Grant("s3:PutObject", "arn:aws:s3:::b/*"),
                         Grant("ec2:DescribeVpcs"), Grant("ec2:DescribeVpcs", "arn:x")])
    assert policy["Statement"] == [
        {"Sid": "Killswitch1", "Effect": "Allow", "Action": ["ec2:DescribeVpcs"],
         "Resource": "*"},
        {"Sid": "Killswitch2", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": ["arn:aws:s3:::b/*"]}]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_action_grants_something(name: str) -> None:
    spec = builtin_spec(name)
    assert spec is not None
    samples = {
        "vault": {"path": "a"}, "flagfile": {"flag": "f"}, "unleash": {"flag": "f"},
        "launchdarkly": {"flag": "f"}, "fake": {"key": "k"}, "aws-secrets": {"secret_id": "s"},
        "aws-ssm": {"name": "/p"}, "aws-iam": {"user": "u"},
        "aws-sg": {"group_id": "sg-1", "destinations": ["10.0.0.1"]},
        "bedrock-batch": {"name_prefix": "p-"}, "gcp-secrets": {"name": "projects/p/secrets/s"},
        "gcp-keys": {"service_account": "a@p.iam.gserviceaccount.com"},
        "vertex-batch": {"project": "p", "location": "l", "labels": {"a": "b"}},
        "openai": {"project": "proj", "api_key_id": "key"}, "anthropic": {"api_key_id": "k"},
        "openai-batch": {"metadata": {"a": "b"}}, "azure-openai-batch": {"metadata": {"a": "b"}},
        "anthropic-batch": {"workspace": "w"}, "nftables": {"destinations": ["10.0.0.1"]},
        "squid": {"destinations": ["a.example"]}, "slack": {"name": "c"},
        "pagerduty": {"name": "s"},
    }
    required = {"vault": {"url": "http://x"}, "flagfile": {"path": "/f.json"},
                "unleash": {"url": "http://x"}}
    opts = spec.options.parse(name, required.get(name, {}))
    for action in spec.actions:
        ref = {"backend": "b", **samples[name]}
        assert spec.grants_for(action, ref, opts), f"{name} {action} grants nothing"
