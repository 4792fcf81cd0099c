"""Regional Secret Manager secrets and the User-Agent of the GCP adapters (issue 9).

A regional secret (``projects/P/locations/L/secrets/S``) must go to the regional endpoint
of its location: the global stand-in refuses regional names as Google's global endpoint does
(test_standin_conformance.py proves both stand-ins with the official client). Every request
carries ``User-Agent: killswitch/<version> run/<run id>``.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from adapters.base import PlanContext
from adapters.gcp_keys import GcpServiceAccountKeyAdapter
from adapters.gcp_secrets import GcpSecretManagerAdapter
from console.config import Config, load_config
from console.engine.service import Session
from console.errors import AdapterError
from console.sandbox import api_gcp, standins
from tests.adapters.gcp.conftest import (
    CANARY,
    LOCATION,
    OLD,
    PROJECT,
    REGIONAL,
    SA,
    SECRET,
    Gcp,
)

CTX = PlanContext(integration="support-bot", step="revoke", run_id="r-plan")
UA = f"killswitch/{version('killswitch')} run/"


def regional_adapter(gcp: Gcp, regional: Gcp, **opts: Any) -> GcpSecretManagerAdapter:
    a = GcpSecretManagerAdapter("gcp-sm", {"endpoint": gcp.endpoint, "anonymous": True,
                                           "regional_endpoint": regional.endpoint,
                                           "project": PROJECT, **opts})
    a.open()
    return a


def test_regional_secret_lifecycle_goes_to_the_regional_endpoint(gcp: Gcp,
                                                                 regional: Gcp) -> None:
    a = regional_adapter(gcp, regional)
    ref = {"backend": "gcp-sm", "name": REGIONAL}
    original = regional.versions(REGIONAL)
    (ch,) = a.plan("credential.disable", ref, CTX)
    assert ch.before == {"versions": {"1": "DISABLED", "2": "ENABLED"}}
    assert ch.undo == {"versions": ["2"]} and ch.target == f"gcp-sm:{REGIONAL}"
    applied = a.apply(ch)
    verdict = a.verify(ch)
    assert verdict.ok and verdict.state == "dead", verdict
    assert regional.versions(REGIONAL) == {"1": "DISABLED", "2": "DISABLED"}
    assert a.reveal(ref) is None
    undo = a.inverse(ch, applied)
    a.apply(undo)
    assert a.verify(undo).ok and regional.versions(REGIONAL) == original
    assert a.reveal(ref) == CANARY
    # by id, with project and location: the same secret
    (same,) = a.plan("credential.disable", {"name": "support-bot-openai", "project": PROJECT,
                                            "location": LOCATION}, CTX)
    assert same.target == ch.target
    # every call went to the regional endpoint, none to the global one
    assert regional.app.requests and not gcp.app.requests
    assert all(r["path"].startswith(f"/v1/projects/{PROJECT}/locations/{LOCATION}/")
               for r in regional.app.requests)
    # a global secret on the same backend still goes to the global endpoint
    (glob,) = a.plan("credential.disable", {"name": SECRET}, CTX)
    assert glob.before["versions"] and gcp.app.requests
    assert OLD not in str(ch.to_dict())
    a.close()


def test_endpoint_of_each_name() -> None:
    a = GcpSecretManagerAdapter("gcp-sm", {"project": PROJECT})
    assert a.endpoint_of(REGIONAL) == f"https://secretmanager.{LOCATION}.rep.googleapis.com"
    assert a.endpoint_of(SECRET) == ""  # the client's default: secretmanager.googleapis.com
    tpl = GcpSecretManagerAdapter("gcp-sm", {"regional_endpoint": "http://127.0.0.1:9/{location}"})
    assert tpl.endpoint_of(REGIONAL) == f"http://127.0.0.1:9/{LOCATION}"
    with pytest.raises(AdapterError, match="regional_endpoint"):  # sandbox never calls Google
        GcpSecretManagerAdapter("gcp-sm", {"anonymous": True}).endpoint_of(REGIONAL)
    with pytest.raises(AdapterError, match="http://"):
        GcpSecretManagerAdapter("gcp-sm", {"regional_endpoint": "127.0.0.1:8384"})
    for bad in (f"projects/{PROJECT}/locations/evil.example.com/secrets/s",
                f"projects/{PROJECT}/regions/{LOCATION}/secrets/s"):
        with pytest.raises(AdapterError, match="not a secret name"):
            a.plan("credential.disable", {"name": bad}, CTX)


def test_secret_manager_user_agent_names_the_run(gcp: Gcp, regional: Gcp) -> None:
    a = regional_adapter(gcp, regional)
    (ch,) = a.plan("credential.disable", {"name": SECRET}, CTX)
    a.run_id = "r-apply"  # what the engine's Runtime sets on the adapter of a run
    a.apply(ch)
    agents = [r["headers"].get("user-agent") for r in gcp.app.requests]
    assert agents[0] == UA + "r-plan"
    assert UA + "r-apply" in agents and set(agents) <= {UA + "r-plan", UA + "r-apply"}
    a.plan("credential.disable", {"name": REGIONAL}, CTX)
    assert {r["headers"].get("user-agent") for r in regional.app.requests} == {UA + "r-apply"}
    assert all(r["headers"]["x-goog-api-client"].startswith("gl-python/")
               for r in gcp.app.requests)  # the SDK's own header is kept
    a.close()


def test_iam_keys_user_agent_names_the_run(gcp: Gcp) -> None:
    a = GcpServiceAccountKeyAdapter("gcp-keys", {"endpoint": gcp.endpoint, "anonymous": True})
    a.open()
    (ch,) = a.plan("credential.disable", {"service_account": SA}, CTX)
    a.run_id = "r-apply"
    a.apply(ch)
    agents = [r["headers"].get("user-agent") for r in gcp.app.requests]
    assert agents[0] == UA + "r-plan" and agents[-1] == UA + "r-apply"
    fresh = GcpServiceAccountKeyAdapter("gcp-keys", {"endpoint": gcp.endpoint,
                                                     "anonymous": True})
    fresh.read(ch)
    assert gcp.app.requests[-1]["headers"]["user-agent"] == UA + "-"  # no run known
    a.close()
    fresh.close()


def _config(root: Path, gcp: Gcp, regional: Gcp, ports: str = "",
            regional_option: bool = True) -> Config:
    option = f'regional_endpoint = "{regional.endpoint}"' if regional_option else ""
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "runbooks" / "contain.toml").write_text(
        'name = "contain"\ndescription = "x"\n[[steps]]\nid = "revoke"\n'
        'action = "credential.disable"\n')
    (root / "config.toml").write_text(f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]

[sandbox]
ports = {{{ports}}}

[backends.gcp-sm]
type = "gcp-secrets"
endpoint = "{gcp.endpoint}"
{option}
anonymous = true
project = "{PROJECT}"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "team"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "gcp-sm"
name = "{REGIONAL}"
""")
    return load_config(root / "config.toml")


async def test_engine_run_on_a_regional_secret_quotes_its_run_id(
        gcp: Gcp, regional: Gcp, tmp_path: Path) -> None:
    s = Session(_config(tmp_path, gcp, regional), operator="tester", mode="live")
    plan = await s.plan("contain", ["support-bot"])
    [c] = plan.changes
    assert c.status == "observed" and c.undo == {"versions": ["2"]}
    result = await s.apply(plan, reason="leak")
    assert result.exit_code() == 0, [(r.outcome, r.message) for r in result.results.values()]
    assert regional.versions(REGIONAL) == {"1": "DISABLED", "2": "DISABLED"}
    assert not gcp.app.requests
    agents = {r["headers"].get("user-agent") for r in regional.app.requests
              if r["method"] == "POST"}
    assert agents == {UA + plan.run_id}, "the disable names the run in the provider's log"


def test_sandbox_serves_regional_secrets_on_a_second_port(gcp: Gcp, regional: Gcp,
                                                          tmp_path: Path) -> None:
    config = _config(tmp_path, gcp, regional, ports='"gcp-regional" = 18384')
    servers = {cls.name: port for _, cls, port in standins._servers(config)}
    assert servers == {"gcp": api_gcp.DEFAULT_PORT, "gcp-regional": 18384}
    assert "gcp-regional=http://127.0.0.1:18384" in standins._urls(config)
    seed = api_gcp.seed(config)
    app = api_gcp.GcpRegionalStandIn(seed)
    assert set(app.state["secrets"]) == {REGIONAL}
    assert REGIONAL not in api_gcp.GcpStandIn(seed).state["secrets"]
    by_id = {"backend": "gcp-sm", "name": "s", "project": PROJECT, "location": LOCATION}
    assert api_gcp.secret_name(by_id, {}) == f"projects/{PROJECT}/locations/{LOCATION}/secrets/s"
    plain = _config(tmp_path, gcp, regional, regional_option=False)
    assert [cls.name for _, cls, _ in standins._servers(plain)] == ["gcp"]
