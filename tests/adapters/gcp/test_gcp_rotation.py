"""Rotation on the GCP adapters against the GCP stand-ins: a new service-account key
(credential.issue), the key file written to Secret Manager as a new version
(credential.write), the old key disabled (credential.retire); the stand-in's key create and
addVersion checked against the documented shapes, google-auth and the official client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import google.api_core.exceptions as gexc
import httpx
import pytest
from google.auth.crypt import RSAVerifier
from google.cloud import secretmanager_v1 as sm
from google.oauth2 import service_account

from adapters.base import CURRENT_RUN, Change, PlanContext
from adapters.gcp_keys import GcpServiceAccountKeyAdapter
from adapters.gcp_secrets import GcpSecretManagerAdapter
from adapters.gcp_secrets_rotation import NEW_VERSION, crc32c
from adapters.rotation import ISSUE, KEYRING, RETIRE, WRITE, NewKey
from console.errors import AdapterError, Conflict, UndoUnsupported
from tests.adapters.gcp.conftest import CANARY, OTHER, PROJECT, REGIONAL, SA, SECRET, Gcp

RUN = "r-20261127-140000-0c0c"
INTEG = "search-embeddings"
KEY_REF = {"backend": "gcp-keys", "service_account": SA, "key": "k1aaaa"}
ALL_KEYS = {"backend": "gcp-keys", "service_account": SA}
SM_REF = {"backend": "gcp-sm", "name": SECRET}
NEW = "sk-rotated-" + "5eed" * 8


_OPEN: list[GcpServiceAccountKeyAdapter | GcpSecretManagerAdapter] = []


@pytest.fixture(autouse=True)
def run_id() -> Iterator[None]:
    """The run every call belongs to; its keys forgotten and adapters closed afterwards."""
    token = CURRENT_RUN.set(RUN)
    yield
    KEYRING.discard(RUN)
    CURRENT_RUN.reset(token)
    while _OPEN:
        _OPEN.pop().close()


def ctx(step: str) -> PlanContext:
    return PlanContext(INTEG, step, run_id=RUN)


def keys_adapter(gcp: Gcp) -> GcpServiceAccountKeyAdapter:
    a = GcpServiceAccountKeyAdapter("gcp-keys", {"endpoint": gcp.endpoint, "anonymous": True})
    _OPEN.append(a)
    return a


def sm_adapter(gcp: Gcp, **opts: Any) -> GcpSecretManagerAdapter:
    a = GcpSecretManagerAdapter("gcp-sm", {"endpoint": gcp.endpoint, "anonymous": True,
                                           "project": PROJECT, **opts})
    _OPEN.append(a)
    return a


def payload(gcp: Gcp, version: str, name: str = SECRET) -> str:
    data = gcp.app.state["secrets"][name]["versions"][version]["data"]
    return base64.b64decode(data).decode()


def writes(gcp: Gcp) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in gcp.app.requests if r["method"] != "GET"]


def secret_free(value: str, *items: object) -> None:
    for item in items:
        text = json.dumps(item.to_dict()) if isinstance(item, Change) else \
            f"{item!s} {item!r} {getattr(item, 'hint', '')}"
        assert value not in text and value[:60] not in text, type(item).__name__


# -- service-account keys ---------------------------------------------------------------------

def test_issue_creates_a_key_file_held_in_memory_that_checks_out(gcp: Gcp) -> None:
    a = keys_adapter(gcp)
    [c] = a.plan(ISSUE, KEY_REF, ctx("issue-key"))
    assert c.action == ISSUE and c.status == "observed" and c.reversible
    assert c.before == {"issued": False, "held": False}
    assert c.after == {"issued": True, "held": True}
    assert "keeps working until the retire step" in c.note and writes(gcp) == []
    undo = a.apply(c)
    key = KEYRING.get(RUN, INTEG)
    assert key is not None and key.key_id == undo["new_key_id"] and key.source == "issued"
    info = json.loads(key.value)
    assert info["private_key_id"] == key.key_id and info["client_email"] == SA
    assert service_account.Credentials.from_service_account_info(info).service_account_email \
        == SA
    assert gcp.keys()[key.key_id]["disabled"] is False
    assert a.read(c) == c.after
    verdict = a.verify(c)
    assert verdict.ok and verdict.state == "works", verdict
    assert "signature verifies" in verdict.detail and "no token was requested" in verdict.detail
    assert a.apply(c)["new_key_id"] == key.key_id and len(gcp.keys()) == 5, "idempotent"
    [again] = a.plan(ISSUE, KEY_REF, ctx("issue-key"))
    assert again.status == "noop"
    secret_free(key.value, c, again, undo, verdict)
    secret_free(info["private_key"].splitlines()[1], c, undo, verdict)


def test_verify_sees_a_disabled_or_mismatched_new_key(gcp: Gcp) -> None:
    a = keys_adapter(gcp)
    [c] = a.plan(ISSUE, KEY_REF, ctx("issue-key"))
    a.apply(c)
    key = KEYRING.get(RUN, INTEG)
    assert key is not None
    gcp.app.state["service_accounts"][SA]["keys"][key.key_id]["disabled"] = True
    verdict = a.verify(c)
    assert not verdict.ok and "disabled" in verdict.detail
    gcp.app.state["service_accounts"][SA]["keys"][key.key_id]["disabled"] = False
    other = json.loads(base64.b64decode(httpx.post(
        f"{gcp.endpoint}/v1/projects/{PROJECT}/serviceAccounts/{SA}/keys", json={}
    ).json()["privateKeyData"]))
    forged = {**json.loads(key.value), "private_key": other["private_key"]}
    KEYRING.put(RUN, INTEG, NewKey(json.dumps(forged), key_id=key.key_id))
    verdict = a.verify(c)
    assert not verdict.ok and "does not match the public key" in verdict.detail
    KEYRING.discard(RUN)
    assert "not in this process's memory" in a.verify(c).detail


def test_retire_disables_the_old_keys_and_never_the_new_one(gcp: Gcp) -> None:
    a = keys_adapter(gcp)
    [early] = a.plan(RETIRE, ALL_KEYS, ctx("retire-old"))  # planned with the run, before issue
    [c] = a.plan(ISSUE, ALL_KEYS, ctx("issue-key"))
    a.apply(c)
    key = KEYRING.get(RUN, INTEG)
    assert key is not None
    [late] = a.plan(RETIRE, ALL_KEYS, ctx("retire-old"))  # planned again once the key exists
    for retire in (early, late):
        assert retire.action == RETIRE and retire.reversible
        assert retire.undo["keys"] == ["k1aaaa", "k3cccc"], retire.undo
        assert "retires the OLD key" in retire.note
    assert late.after["keys"][key.key_id] == {"disabled": False}
    applied = a.apply(early)
    assert a.verify(early).ok and a.verify(early).state == "dead"
    states = {k: v["disabled"] for k, v in gcp.keys().items()}
    assert states["k1aaaa"] and states["k3cccc"] and not states[key.key_id]
    assert a.verify(c).ok, "the new key still checks out"
    inv = a.inverse(early, applied)
    assert inv.action == "credential.enable" and inv.undo == {"keys": ["k1aaaa", "k3cccc"]}
    assert "re-enables the OLD key" in inv.note and inv.inverse_of == early.op_id
    a.apply(inv)
    assert a.verify(inv).ok and not gcp.keys()["k1aaaa"]["disabled"]


def test_retire_disables_nothing_until_the_new_key_checks_out(gcp: Gcp) -> None:
    a = keys_adapter(gcp)
    [c] = a.plan(RETIRE, KEY_REF, ctx("retire-old"))
    with pytest.raises(Conflict, match="no new key of search-embeddings"):
        a.apply(c)
    [issue] = a.plan(ISSUE, KEY_REF, ctx("issue-key"))
    undo = a.apply(issue)
    gcp.app.state["service_accounts"][SA]["keys"][undo["new_key_id"]]["disabled"] = True
    with pytest.raises(Conflict, match="does not work"):
        a.apply(c)
    assert gcp.keys()["k1aaaa"]["disabled"] is False, "the old key stays"


def test_undo_of_issue_disables_the_new_key(gcp: Gcp) -> None:
    a = keys_adapter(gcp)
    [c] = a.plan(ISSUE, KEY_REF, ctx("issue-key"))
    undo = a.apply(c)
    inv = a.inverse(c, undo)
    assert inv.action == "credential.disable" and inv.reversible
    assert inv.ref == {"backend": "gcp-keys", "service_account": SA, "key": undo["new_key_id"]}
    assert a.read(inv) == inv.before
    a.apply(inv)
    assert a.verify(inv).ok and gcp.keys()[undo["new_key_id"]]["disabled"] is True
    assert not a.verify(c).ok
    with pytest.raises(UndoUnsupported):
        a.inverse(c, {})


def test_stand_in_key_create_has_the_documented_shape(gcp: Gcp) -> None:
    base = f"/v1/projects/{PROJECT}/serviceAccounts/{SA}/keys"
    with httpx.Client(base_url=gcp.endpoint, timeout=10) as http:
        made = http.post(base, json={"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
                                     "keyAlgorithm": "KEY_ALG_RSA_2048"}).json()
        assert set(made) >= {"name", "privateKeyType", "privateKeyData", "validAfterTime",
                             "validBeforeTime", "keyAlgorithm", "keyOrigin", "keyType"}
        kid = made["name"].rsplit("/", 1)[1]
        assert made["name"] == f"{base[4:]}/{kid}" and made["keyType"] == "USER_MANAGED"
        info = json.loads(base64.b64decode(made["privateKeyData"]))
        assert set(info) == {"type", "project_id", "private_key_id", "private_key",
                             "client_email", "client_id", "auth_uri", "token_uri",
                             "auth_provider_x509_cert_url", "client_x509_cert_url",
                             "universe_domain"}
        creds = service_account.Credentials.from_service_account_info(info)
        listed = http.get(base, params={"keyTypes": "USER_MANAGED"}).json()["keys"]
        assert kid in [k["name"].rsplit("/", 1)[1] for k in listed]
        assert all("privateKeyData" not in k for k in listed), "shown once, at create"
        pub = http.get(f"{base}/{kid}", params={"publicKeyType": "TYPE_X509_PEM_FILE"}).json()
        assert "privateKeyData" not in pub
        verifier = RSAVerifier.from_string(base64.b64decode(pub["publicKeyData"]))
        assert verifier.verify(b"m", creds.signer.sign(b"m"))
        assert "publicKeyData" not in http.get(f"{base}/{kid}").json()
        assert http.post(base, json={"privateKeyType": "TYPE_PKCS12_FILE"}).status_code == 400
        bad = http.get(f"{base}/{kid}", params={"publicKeyType": "TYPE_RAW_PUBLIC_KEY"})
        assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        nobody = http.post(f"/v1/projects/{PROJECT}/serviceAccounts/nobody@x.iam/keys",
                           json={})
        assert nobody.status_code == 404


# -- Secret Manager --------------------------------------------------------------------------

def test_write_adds_a_version_with_the_new_key_keeping_the_json_shape(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    KEYRING.put(RUN, INTEG, NewKey(NEW, key_id="key_new"))
    [c] = a.plan(WRITE, SM_REF, ctx("write-copies"))
    assert c.action == WRITE and c.reversible and c.status == "observed"
    assert c.before == {"latest_enabled": "3", "new_key": False}
    assert c.after == {"latest_enabled": NEW_VERSION, "new_key": True}
    assert writes(gcp) == [], "plan only reads"
    undo = a.apply(c)
    assert undo == {"versions": ["4"], "fingerprint": NewKey(NEW).fingerprint,
                    "previous_version": "3"}
    assert json.loads(payload(gcp, "4")) == {"api_key": NEW}, "the copy keeps its JSON shape"
    assert gcp.versions() == {"1": "DISABLED", "2": "ENABLED", "3": "ENABLED", "4": "ENABLED"}
    assert a.read(c) == c.after
    verdict = a.verify(c)
    assert verdict.ok and verdict.state == "written" and "versions/latest" in verdict.detail
    assert a.reveal(SM_REF) == NEW
    assert a.apply(c)["versions"] == ["4"] and "5" not in gcp.versions(), "idempotent"
    [again] = a.plan(WRITE, SM_REF, ctx("write-copies"))
    assert again.status == "noop"
    secret_free(NEW, c, again, undo, verdict)
    assert [w for w in writes(gcp) if w.endswith(":addVersion")] == \
        [f"POST /v1/{SECRET}:addVersion"]


def test_write_without_the_key_in_memory_fails_and_writes_nothing(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    [c] = a.plan(WRITE, SM_REF, ctx("write-copies"))
    before = gcp.versions()
    with pytest.raises(AdapterError) as err:
        a.apply(c)
    assert "the new key's value was only in memory" in err.value.msg
    assert "nothing was written" in err.value.msg and "rotate again" in err.value.hint
    assert not err.value.retryable
    assert gcp.versions() == before and writes(gcp) == []
    verdict = a.verify(c)
    assert not verdict.ok and "not in this process's memory" in verdict.detail


def test_write_undo_puts_the_previous_value_back_as_latest(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    KEYRING.put(RUN, INTEG, NewKey(NEW))
    [c] = a.plan(WRITE, SM_REF, ctx("write-copies"))
    applied = a.apply(c)
    KEYRING.discard(RUN)  # restore runs later, in another process
    inv = a.inverse(c, applied)
    assert inv.action == WRITE and not inv.reversible and inv.inverse_of == c.op_id
    assert "OLD key" in inv.note and inv.undo["restore_from"] == "3"
    assert a.read(inv) == inv.before == {"latest_enabled": "4", "new_key": True}
    a.apply(inv)
    assert payload(gcp, "5") == payload(gcp, "3")
    assert a.read(inv) == inv.after
    verdict = a.verify(inv)
    assert verdict.ok and verdict.state == "restored"
    assert a.reveal(SM_REF) == CANARY
    with pytest.raises(UndoUnsupported):
        a.inverse(inv, {"versions": ["5"]})
    secret_free(NEW, inv, verdict)


def test_write_sees_drift_and_a_disabled_latest(gcp: Gcp) -> None:
    a = sm_adapter(gcp)
    KEYRING.put(RUN, INTEG, NewKey(NEW))
    [c] = a.plan(WRITE, SM_REF, ctx("write-copies"))
    gcp.app.state["secrets"][SECRET]["versions"]["3"]["state"] = "DISABLED"  # someone acted
    assert a.read(c) == {"latest_enabled": "2", "new_key": False}, "drift, not progress"
    gcp.app.state["secrets"][SECRET]["versions"]["3"]["state"] = "ENABLED"
    a.apply(c)
    gcp.app.state["secrets"][SECRET]["versions"]["4"]["state"] = "DISABLED"
    verdict = a.verify(c)
    assert not verdict.ok and verdict.state == "dead"


def test_write_plain_values_key_files_and_regional_names(gcp: Gcp, regional: Gcp) -> None:
    a = sm_adapter(gcp, regional_endpoint=regional.endpoint)
    KEYRING.put(RUN, INTEG, NewKey(NEW))
    [plain] = a.plan(WRITE, {"backend": "gcp-sm", "name": OTHER}, ctx("write-copies"))
    a.apply(plain)
    assert payload(gcp, "2", OTHER) == NEW, "a bare copy gets the bare value"
    [reg] = a.plan(WRITE, {"backend": "gcp-sm", "name": REGIONAL}, ctx("write-copies"))
    a.apply(reg)
    assert payload(regional, "3", REGIONAL) == NEW and a.verify(reg).ok
    assert REGIONAL not in gcp.app.state["secrets"]
    key_file = json.dumps({"type": "service_account", "private_key_id": "k9",
                           "private_key": "-----BEGIN PRIVATE KEY-----\nx\n"})
    KEYRING.put(RUN, INTEG, NewKey(key_file, key_id="k9"))
    [kf] = a.plan(WRITE, SM_REF, ctx("write-copies"))
    a.apply(kf)
    assert payload(gcp, "4") == key_file and a.verify(kf).ok


def test_add_version_with_crc32c_through_the_official_client(
        gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    data = b'{"api_key": "sk-via-client"}'
    made = client.add_secret_version(request={"parent": SECRET, "payload": {
        "data": data, "data_crc32c": crc32c(data)}})
    assert made.name == f"{SECRET}/versions/4" and made.state == sm.SecretVersion.State.ENABLED
    got = client.access_secret_version(name=made.name)
    assert got.payload.data == data and got.payload.data_crc32c == crc32c(data)
    with pytest.raises(gexc.BadRequest) as err:
        client.add_secret_version(request={"parent": SECRET, "payload": {
            "data": data, "data_crc32c": crc32c(data) ^ 1}})
    assert "Checksum mismatch" in str(err.value)
    sent = [r for r in gcp.app.requests if r["path"].endswith(":addVersion")]
    assert len(sent) == 2


def test_rotation_declarations(gcp: Gcp) -> None:
    from adapters.specs.gcp import GCP_KEYS, GCP_SECRETS

    assert GCP_KEYS.actions[ISSUE].inverse == "credential.disable"
    assert GCP_KEYS.actions[RETIRE].reversible and GCP_KEYS.actions[RETIRE].inverse == \
        "credential.enable"
    assert GCP_SECRETS.actions[WRITE].reversible
    perms = [g.permission for g in GCP_SECRETS.grants_for(WRITE, SM_REF, sm_adapter(gcp).opts)]
    assert "secretmanager.versions.add" in perms
    perms = [g.permission for g in GCP_KEYS.grants_for(ISSUE, KEY_REF, keys_adapter(gcp).opts)]
    assert "iam.serviceAccountKeys.create" in perms
