"""Evidence from Google Secret Manager and IAM service-account keys, against the stand-in."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from adapters.gcp_keys import GcpServiceAccountKeyAdapter
from adapters.gcp_secrets import GcpSecretManagerAdapter
from console.sandbox.api_gcp import GcpStandIn
from console.sandbox.standin import Faults
from tests.adapters.evidence.recorder import Recorder
from tests.adapters.gcp.conftest import CANARY, OLD, SA, SECRET, Gcp

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def sm_adapter(gcp: Gcp) -> GcpSecretManagerAdapter:
    return GcpSecretManagerAdapter("gcp-sm", {"endpoint": gcp.endpoint, "anonymous": True})


def key_adapter(gcp: Gcp) -> GcpServiceAccountKeyAdapter:
    return GcpServiceAccountKeyAdapter("gcp-keys", {"endpoint": gcp.endpoint, "anonymous": True})


def test_secret_versions_states_and_dates_without_payloads(gcp: Gcp) -> None:
    gcp.app.state["secrets"][SECRET]["versions"]["1"].update(
        state="DESTROYED", destroy_time="2026-11-01T00:00:00Z")
    a = sm_adapter(gcp)
    sink = Recorder()
    try:
        a.preserve({"backend": "gcp-sm", "name": SECRET}, sink)
    finally:
        a.close()
    assert sink.failures == [] and sink.sources == {"secret", "versions"}
    assert sink.data("secret")["name"] == SECRET and sink.data("secret")["create_time"]
    versions = sink.data("versions")["versions"]
    assert [(v["name"].rsplit("/", 1)[-1], v["state"]) for v in versions] == \
        [("1", "DESTROYED"), ("2", "ENABLED"), ("3", "ENABLED")]
    assert versions[0]["destroy_time"].startswith("2026-11-01")
    assert all(v["create_time"] for v in versions)
    assert not [r for r in gcp.app.requests if r["path"].endswith(":access")], "never read"
    text = sink.everything()
    assert CANARY not in text and OLD not in text
    assert base64.b64encode(CANARY.encode()).decode() not in text


def test_secret_store_down_reports_both_sources(gcp: Gcp) -> None:
    gcp.app.faults = Faults(error_rate=1.0, error_status=503)
    a = sm_adapter(gcp)
    sink = Recorder()
    try:
        a.preserve({"backend": "gcp-sm", "name": SECRET}, sink)
    finally:
        a.close()
    assert sink.items == {} and sink.failed_sources == {"secret", "versions"}


def test_service_account_keys_metadata_never_key_data(gcp: Gcp,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    shown = GcpStandIn._key_json

    def with_key_data(project: str, sa: str, kid: str, k: dict[str, Any]) -> dict[str, Any]:
        # an API that (wrongly) includes the private key: the adapter must drop it
        return {**shown(project, sa, kid, k),
                "privateKeyData": base64.b64encode(PEM.encode()).decode(),
                "publicKeyData": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"}

    monkeypatch.setattr(GcpStandIn, "_key_json", staticmethod(with_key_data))
    a = key_adapter(gcp)
    sink = Recorder()
    try:
        a.preserve({"backend": "gcp-keys", "service_account": SA}, sink)
        a.preserve({"backend": "gcp-keys", "service_account": SA, "key": "k2bbbb"},
                   one := Recorder())
    finally:
        a.close()
    assert sink.failures == []
    keys = {k["name"].rsplit("/", 1)[-1]: k for k in sink.data("keys")["keys"]}
    assert set(keys) == {"k1aaaa", "k2bbbb", "k3cccc", "sysdddd"}
    assert keys["k2bbbb"]["disabled"] is True and keys["k1aaaa"].get("disabled") is None
    assert keys["sysdddd"]["referenced"] is False and keys["k1aaaa"]["referenced"] is True
    assert {"validAfterTime", "validBeforeTime", "keyType"} <= set(keys["k1aaaa"])
    assert "privateKeyData" not in sink.everything() and "BEGIN" not in sink.everything()
    assert base64.b64encode(PEM.encode()).decode() not in sink.everything()
    assert [k["referenced"] for k in one.data("keys")["keys"]].count(True) == 1
    assert one.data("keys")["found"]
