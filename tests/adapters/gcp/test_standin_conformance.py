"""The GCP stand-in speaks the documented protocols.

Secret Manager: driven with the official ``google-cloud-secret-manager`` client (REST transport,
AnonymousCredentials, SDK retries off). IAM keys: no official REST client ships, so raw httpx
calls with the documented request/response shapes (test-backends.md section 3,
provider-apis.md 5.1 / 5.3).
"""

from __future__ import annotations

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.cloud import secretmanager_v1 as sm

from console.sandbox.standin import Faults
from tests.adapters.gcp.conftest import CANARY, OLD, PROJECT, SA, SECRET, Gcp

NR = {"retry": None, "timeout": 5}
QUERY = {"$alt": ["json;enum-encoding=int"]}
State = sm.SecretVersion.State


def test_get_list_access(gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    v = client.get_secret_version(name=f"{SECRET}/versions/1", **NR)
    assert v.state == State.DISABLED and v.name == f"{SECRET}/versions/1" and v.etag
    latest = client.get_secret_version(name=f"{SECRET}/versions/latest", **NR)
    assert latest.name.endswith("/versions/3")
    versions = list(client.list_secret_versions(request={"parent": SECRET}, **NR))
    assert [x.name.rsplit("/", 1)[1] for x in versions] == ["3", "2", "1"]
    enabled = list(client.list_secret_versions(
        request={"parent": SECRET, "filter": "state:ENABLED"}, **NR))
    assert {x.state for x in enabled} == {State.ENABLED} and len(enabled) == 2
    got = client.access_secret_version(name=f"{SECRET}/versions/2", **NR)
    assert got.payload.data.decode() == CANARY
    secrets = [s.name for s in client.list_secrets(request={"parent": f"projects/{PROJECT}"},
                                                   **NR)]
    assert SECRET in secrets and len(secrets) == 2
    assert client.get_secret(name=SECRET, **NR).name == SECRET


def test_paging(gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    pager = client.list_secret_versions(request={"parent": SECRET, "page_size": 1}, **NR)
    assert len(list(pager)) == 3
    assert any(r["query"].get("pageToken") for r in gcp.app.requests)


def test_disable_enable_destroy_add(gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    name = f"{SECRET}/versions/2"
    assert client.disable_secret_version(name=name, **NR).state == State.DISABLED
    assert client.disable_secret_version(name=name, **NR).state == State.DISABLED  # idempotent
    with pytest.raises(gexc.BadRequest) as err:  # REST maps 400 to BadRequest
        client.access_secret_version(name=name, **NR)
    assert "DISABLED state" in err.value.message
    assert err.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert client.enable_secret_version(name=name, **NR).state == State.ENABLED
    client.access_secret_version(name=name, **NR)
    etag = client.get_secret_version(name=name, **NR).etag
    with pytest.raises(gexc.Conflict) as stale:
        client.destroy_secret_version(request={"name": name, "etag": '"stale"'}, **NR)
    assert stale.value.response.json()["error"]["status"] == "ABORTED"
    done = client.destroy_secret_version(request={"name": name, "etag": etag}, **NR)
    assert done.state == State.DESTROYED and done.destroy_time
    with pytest.raises(gexc.BadRequest):
        client.enable_secret_version(name=name, **NR)
    added = client.add_secret_version(parent=SECRET, payload={"data": b"new"}, **NR)
    assert added.name.endswith("/versions/4") and added.state == State.ENABLED
    latest = client.access_secret_version(name=f"{SECRET}/versions/latest", **NR)
    assert latest.payload.data == b"new"
    created = client.create_secret(parent=f"projects/{PROJECT}", secret_id="fresh",
                                   secret={"replication": {"automatic": {}}}, **NR)
    assert created.name == f"projects/{PROJECT}/secrets/fresh"


def test_request_paths_and_query(gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    name = f"{SECRET}/versions/1"
    client.get_secret_version(name=name, **NR)
    client.disable_secret_version(name=name, **NR)
    client.enable_secret_version(name=name, **NR)
    client.access_secret_version(name=name, **NR)
    client.list_secret_versions(request={"parent": SECRET}, **NR)
    client.add_secret_version(parent=SECRET, payload={"data": b"x"}, **NR)
    client.destroy_secret_version(request={"name": name}, **NR)
    seen = [(r["method"], r["path"]) for r in gcp.app.requests]
    base = f"/v1/{SECRET}"
    assert seen == [("GET", f"{base}/versions/1"), ("POST", f"{base}/versions/1:disable"),
                    ("POST", f"{base}/versions/1:enable"), ("GET", f"{base}/versions/1:access"),
                    ("GET", f"{base}/versions"), ("POST", f"{base}:addVersion"),
                    ("POST", f"{base}/versions/1:destroy")]
    for r in gcp.app.requests:
        assert r["query"] == QUERY
        assert "authorization" not in r["headers"]
        assert r["headers"]["x-goog-api-client"].startswith("gl-python/")
        assert r["headers"]["x-goog-request-params"] in (f"name={name}", f"parent={SECRET}")


def test_regional_names(gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    regional = f"projects/{PROJECT}/locations/europe-west4/secrets/r"
    gcp.app.state["secrets"][regional] = gcp.app.state["secrets"][SECRET]
    v = client.disable_secret_version(name=f"{regional}/versions/2", **NR)
    assert v.state == State.DISABLED


def test_errors_map_to_api_core(gcp: Gcp, client: sm.SecretManagerServiceClient) -> None:
    with pytest.raises(gexc.NotFound):
        client.get_secret_version(name=f"projects/{PROJECT}/secrets/nope/versions/1", **NR)
    with pytest.raises(gexc.NotFound):
        client.access_secret_version(name=f"{SECRET}/versions/99", **NR)
    gcp.app.faults = Faults(throttle_rate=1.0, retry_after=7)
    with pytest.raises(gexc.TooManyRequests) as err:
        client.get_secret_version(name=f"{SECRET}/versions/1", **NR)
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    gcp.app.faults = Faults(error_rate=1.0)
    with pytest.raises(gexc.ServiceUnavailable):
        client.disable_secret_version(name=f"{SECRET}/versions/1", **NR)
    gcp.app.faults = Faults(error_rate=1.0, error_status=500)
    with pytest.raises(gexc.InternalServerError):
        client.list_secret_versions(request={"parent": SECRET}, **NR)


def test_old_value_is_in_a_disabled_version(gcp: Gcp, client: sm.SecretManagerServiceClient,
                                            ) -> None:
    client.enable_secret_version(name=f"{SECRET}/versions/1", **NR)
    got = client.access_secret_version(name=f"{SECRET}/versions/1", **NR)
    assert got.payload.data.decode() == OLD


# -- IAM service-account keys (documented REST shapes, raw HTTP, no credentials) ---------------

def test_iam_keys_list_disable_enable_delete(gcp: Gcp) -> None:
    base = f"/v1/projects/{PROJECT}/serviceAccounts/{SA}/keys"
    with httpx.Client(base_url=gcp.endpoint, timeout=5) as http:
        keys = http.get(base, params={"keyTypes": "USER_MANAGED"}).json()["keys"]
        assert {k["name"].rsplit("/", 1)[1] for k in keys} == {"k1aaaa", "k2bbbb", "k3cccc"}
        assert all(k["keyType"] == "USER_MANAGED" and k["name"].startswith(base[4:])
                   for k in keys)
        assert {k["name"][-6:]: k.get("disabled", False) for k in keys} == {
            "k1aaaa": False, "k2bbbb": True, "k3cccc": False}
        assert len(http.get(base).json()["keys"]) == 4  # system-managed too
        r = http.post(f"{base}/k1aaaa:disable", json={})
        assert r.status_code == 200 and r.json() == {}
        assert http.get(f"{base}/k1aaaa").json()["disabled"] is True
        assert http.post(f"{base}/k1aaaa:enable", json={}).json() == {}
        assert "disabled" not in http.get(f"{base}/k1aaaa").json()
        wildcard = f"/v1/projects/-/serviceAccounts/{SA}/keys/k3cccc:disable"
        assert http.post(wildcard, json={}).status_code == 200
        assert http.delete(f"{base}/k3cccc").json() == {}
        gone = http.get(f"{base}/k3cccc")
        assert gone.status_code == 404
        assert gone.json()["error"]["status"] == "NOT_FOUND"
        assert gone.json()["error"]["code"] == 404
        sys_key = http.post(f"{base}/sysdddd:disable", json={})
        assert sys_key.status_code == 400
        assert sys_key.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "authorization" not in gcp.app.requests[0]["headers"]


def test_iam_faults_have_google_shape(gcp: Gcp) -> None:
    gcp.app.faults = Faults(throttle_rate=1.0, retry_after=3)
    r = httpx.get(f"{gcp.endpoint}/v1/projects/{PROJECT}/serviceAccounts/{SA}/keys")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
