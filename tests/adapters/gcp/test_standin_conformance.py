"""The GCP stand-ins speak the documented protocols.

Secret Manager: driven with the official ``google-cloud-secret-manager`` client (REST transport,
AnonymousCredentials, SDK retries off), on the global endpoint and on the regional one. IAM
keys: no official REST client ships, so raw httpx calls with the documented request/response
shapes (test-backends.md section 3, provider-apis.md 5.1 / 5.3).
"""

from __future__ import annotations

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager_v1 as sm

from console.sandbox.standin import Faults
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


def test_regional_names_only_on_the_regional_endpoint(
        gcp: Gcp, regional: Gcp, client: sm.SecretManagerServiceClient) -> None:
    """The global endpoint refuses a regional name (400 INVALID_ARGUMENT, in the words of
    googleapis/google-cloud-python#13389); the regional endpoint serves it, with the client
    built as Google's regional samples build it (``api_endpoint``)."""
    name = f"{REGIONAL}/versions/2"
    with pytest.raises(gexc.BadRequest) as err:  # REST maps 400 to BadRequest
        client.disable_secret_version(name=name, **NR)
    assert err.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert f"The provided Secret ID [{name}] does not match the expected format " \
        "[projects/*/secrets/*/versions/*]" in err.value.message
    with pytest.raises(gexc.BadRequest):
        list(client.list_secrets(request={"parent": f"projects/{PROJECT}/locations/{LOCATION}"},
                                 **NR))
    assert REGIONAL not in gcp.app.state["secrets"] and SECRET in gcp.app.state["secrets"]

    rc = sm.SecretManagerServiceClient(
        credentials=AnonymousCredentials(), transport="rest",
        client_options=ClientOptions(api_endpoint=regional.endpoint))
    try:
        v = rc.disable_secret_version(name=name, **NR)
        assert v.state == State.DISABLED and v.name == name
        with pytest.raises(gexc.BadRequest) as off:
            rc.access_secret_version(name=name, **NR)
        assert off.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
        assert rc.enable_secret_version(name=name, **NR).state == State.ENABLED
        assert rc.access_secret_version(name=f"{REGIONAL}/versions/latest",
                                        **NR).payload.data.decode() == CANARY
        assert [x.name for x in rc.list_secret_versions(request={"parent": REGIONAL}, **NR)] \
            == [f"{REGIONAL}/versions/2", f"{REGIONAL}/versions/1"]
        parent = f"projects/{PROJECT}/locations/{LOCATION}"
        assert [x.name for x in rc.list_secrets(request={"parent": parent}, **NR)] == [REGIONAL]
        made = rc.create_secret(parent=parent, secret_id="fresh", secret={}, **NR)
        assert made.name == f"{parent}/secrets/fresh"
        with pytest.raises(gexc.BadRequest) as glob:
            rc.get_secret_version(name=f"{SECRET}/versions/1", **NR)
        assert "[projects/*/locations/*/secrets/*/versions/*]" in glob.value.message
        with pytest.raises(gexc.NotFound):
            rc.get_secret_version(name=f"projects/{PROJECT}/locations/us-east1/secrets/x/"
                                  "versions/1", **NR)
    finally:
        rc.transport.close()
    seen = [(r["method"], r["path"]) for r in regional.app.requests]
    assert seen[:3] == [("POST", f"/v1/{name}:disable"), ("GET", f"/v1/{name}:access"),
                        ("POST", f"/v1/{name}:enable")]
    assert all(r["query"]["$alt"] == QUERY["$alt"] for r in regional.app.requests)


def test_regional_endpoint_serves_only_its_own_location(regional: Gcp) -> None:
    """A regional endpoint "only allows requests to proceed if the affected resource exists
    in the location specified by the endpoint" (Secret Manager locations doc): checked when
    the Host is a rep.googleapis.com name (the status is unconfirmed)."""
    path = f"/v1/{REGIONAL}/versions/2"
    with httpx.Client(base_url=regional.endpoint, timeout=5) as http:
        ok = http.get(path, headers={"Host": f"secretmanager.{LOCATION}.rep.googleapis.com"})
        assert ok.status_code == 200 and ok.json()["name"] == REGIONAL + "/versions/2"
        for host in ("secretmanager.us-east1.rep.googleapis.com", "secretmanager.googleapis.com"):
            bad = http.get(path, headers={"Host": host})
            assert bad.status_code == 400, host
            assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert http.get(path).status_code == 200  # loopback: the sandbox serves any location
        sa_keys = http.get(f"/v1/projects/{PROJECT}/serviceAccounts/{SA}/keys")
        assert sa_keys.status_code == 404  # IAM lives on the global server (and host)


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
