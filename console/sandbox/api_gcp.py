"""Google Cloud stand-in: Secret Manager v1 REST and the IAM service-account keys REST API.

One server answers both APIs (their paths do not overlap), so the sandbox backends of type
``gcp-secrets`` and ``gcp-keys`` can share one endpoint, ``http://127.0.0.1:8383``.

**Global and regional endpoints are two servers**, as at Google: regional secrets
(``projects/P/locations/L/secrets/S``) are served only by the regional endpoint
``secretmanager.L.rep.googleapis.com`` (:class:`GcpRegionalStandIn`, sandbox port 8384,
``[sandbox] ports`` key ``gcp-regional``), global ones only by ``secretmanager.googleapis.com``
(:class:`GcpStandIn`, port 8383). Sources:

* the global endpoint answers a regional name with 400 INVALID_ARGUMENT "The provided Secret
  ID [projects/.../locations/me-central2/secrets/.../versions/latest] does not match the
  expected format [projects/*/secrets/*/versions/*]" (googleapis/google-cloud-python#13389,
  google-cloud-secret-manager 2.22);
* "Regional endpoints are request endpoints that only allow requests to proceed if the
  affected resource exists in the location specified by the endpoint"
  (https://cloud.google.com/secret-manager/docs/locations#regional_endpoints); Google's own
  samples build the regional client with ``api_endpoint =
  "secretmanager.{location}.rep.googleapis.com"``
  (https://cloud.google.com/secret-manager/docs/samples/secretmanager-get-regional-secret).

The regional server answers a global name with the mirror of that error (expected format
``projects/*/locations/*/secrets/*/...``; its exact text is [unconfirmed]). When the request's
``Host`` is a ``secretmanager.X.rep.googleapis.com`` name, ``X`` must be the name's location
(400 INVALID_ARGUMENT, status [unconfirmed]); loopback hosts (the sandbox) serve any
location.

Secret Manager (``google-cloud-secret-manager`` with ``transport="rest"``)::

    GET  /v1/projects/{p}/secrets                               list secrets
    POST /v1/projects/{p}/secrets?secretId=ID                   create a secret
    GET  /v1/projects/{p}/secrets/{s}                           get a secret
    POST /v1/projects/{p}/secrets/{s}:addVersion                add a version
    GET  /v1/projects/{p}/secrets/{s}/versions?filter=state:X   list versions
    GET  /v1/projects/{p}/secrets/{s}/versions/{v|latest}       get a version
    GET  /v1/projects/{p}/secrets/{s}/versions/{v}:access       read the payload
    POST /v1/projects/{p}/secrets/{s}/versions/{v}:disable|:enable|:destroy  body {"etag"?}

The regional server serves the same routes under ``projects/{p}/locations/{l}/secrets/...``.
Enums are sent as integers when the query asks for ``$alt=json;enum-encoding=int`` (as the
official client does), as strings otherwise.

IAM service-account keys (no official REST client ships; raw HTTP; global server only)::

    GET    /v1/projects/{p}/serviceAccounts/{sa}/keys?keyTypes=USER_MANAGED
    GET    /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}?publicKeyType=TYPE_X509_PEM_FILE
    POST   /v1/projects/{p}/serviceAccounts/{sa}/keys                 create (rotation)
    POST   /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}:disable   -> {}
    POST   /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}:enable    -> {}
    DELETE /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}           -> {}

Key create (https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts.keys/
create): body ``{"privateKeyType"?, "keyAlgorithm"?}`` (defaults ``TYPE_GOOGLE_CREDENTIALS_FILE``,
``KEY_ALG_RSA_2048``; the sandbox makes no P12 file and no other algorithm: 400), answers a
``ServiceAccountKey`` with ``privateKeyData``, the base64 of a Google credentials file
(``type``, ``project_id``, ``private_key_id``, ``private_key``, ``client_email``,
``client_id``, ``auth_uri``, ``token_uri``, ``auth_provider_x509_cert_url``,
``client_x509_cert_url``, ``universe_domain``) around a real RSA 2048 key, which google-auth
loads (:mod:`console.sandbox.gcp_keyfile`). Like Google, the stand-in keeps only the public
key: ``keys.get`` with ``publicKeyType=TYPE_X509_PEM_FILE`` answers it as ``publicKeyData``
(base64 of a self-signed X.509 PEM; keys seeded without key material get a public key of a
throwaway pair).

``{p}`` may be ``-``; ``{sa}`` is the account's email. ``disabled`` is omitted from a key while
false, as proto3 JSON omits defaults.

Errors have Google's shape ``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``.
Fault injection (latency, 429 with Retry-After, 5xx, hangs) comes from
:class:`~console.sandbox.standin.StandIn`. No authentication is checked.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from console.sandbox.gcp_keyfile import crc32c, key_file, keypair
from console.sandbox.standin import Handler, Request, Response, StandIn

__all__ = ["DEFAULT_PORT", "REGIONAL_PORT", "STANDIN", "GcpRegionalStandIn", "GcpStandIn",
           "extra_standins", "seed", "wanted"]

DEFAULT_PORT = 8383
REGIONAL_PORT = 8384
"""Default port of the regional Secret Manager stand-in (``[sandbox] ports`` key
``gcp-regional``)."""
SECRET_TYPES = ("gcp-secrets",)
KEY_TYPES = ("gcp-keys",)

_STATES = {"STATE_UNSPECIFIED": 0, "ENABLED": 1, "DISABLED": 2, "DESTROYED": 3}
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
           503: "UNAVAILABLE"}
_SECRET = r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/:]+)"
_VERSION = _SECRET + r"/versions/(?P<version>[^/:]+)"
_SA = r"projects/(?P<project>[^/]+)/serviceAccounts/(?P<sa>[^/]+)"
_KEY = _SA + r"/keys/(?P<key>[^/:]+)"


def is_regional(name: str) -> bool:
    """Whether a Secret Manager name (or parent) is regional: ``projects/P/locations/L/...``."""
    parts = name.split("/")
    return len(parts) > 2 and parts[2] == "locations"


def _expected_format(target: str, regional: bool) -> str:
    """The resource-name pattern an endpoint expects for ``target``, in Google's words."""
    parts = target.split("/")
    keys = [k for k in parts[0::2] if k != "locations"]
    pieces = []
    for i, key in enumerate(keys):
        pieces.append(key if len(parts) % 2 and i == len(keys) - 1 else f"{key}/*")
        if key == "projects" and regional:
            pieces.append("locations/*")
    return "/".join(pieces)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _etag() -> str:
    return f'"{secrets.token_hex(7)}"'


def _fake_value() -> str:
    return "sk-sandbox-" + secrets.token_hex(16)


def new_secret(versions: list[tuple[str, str]]) -> dict[str, Any]:
    """State of one secret with ``versions`` = [(state, plaintext value), ...] from 1 up."""
    now = _now()
    out: dict[str, Any] = {"create_time": now, "etag": _etag(), "versions": {}}
    for i, (state, value) in enumerate(versions, start=1):
        out["versions"][str(i)] = {
            "state": state, "create_time": now, "etag": _etag(),
            "data": base64.b64encode(value.encode()).decode()}
    return out


def new_key(project: str, disabled: bool = False, kind: str = "USER_MANAGED") -> dict[str, Any]:
    """State of one service-account key."""
    return {"project": project, "disabled": disabled, "key_type": kind,
            "valid_after": _now(), "valid_before": "9999-12-31T23:59:59Z"}


class GcpStandIn(StandIn):
    """Secret Manager v1 and IAM service-account keys, from memory.

    State::

        {"secrets": {"projects/p/secrets/s": {"create_time", "etag", "versions": {
             "1": {"state": "ENABLED", "data": "<base64>", "create_time", "etag",
                   "destroy_time"?}}}},
         "service_accounts": {"sa@p.iam.gserviceaccount.com": {"keys": {"<id>": {
             "project", "disabled": false, "key_type": "USER_MANAGED", ...}}}}}
    """

    name: ClassVar[str] = "gcp"
    REGIONAL: ClassVar[bool] = False
    """True: the regional endpoint (regional names only); False: the global endpoint."""

    def setup(self) -> None:
        """Register the Secret Manager (and, on the global server, IAM) routes.

        Secrets this endpoint does not serve are dropped from the state (and the seed):
        the other server holds them.
        """
        for data in (self.seed, self.state):
            secrets_ = data.setdefault("secrets", {})
            for n in [n for n in secrets_ if is_regional(n) != self.REGIONAL]:
                del secrets_[n]
            data.setdefault("service_accounts", {})
        r, sm = self.route, self._served
        parent = r"/v1/(?P<parent>projects/[^/]+(?:/locations/[^/]+)?)/secrets"
        r("GET", parent, sm(self.list_secrets))
        r("POST", parent, sm(self.create_secret))
        r("GET", f"/v1/{_SECRET}", sm(self.get_secret))
        r("DELETE", f"/v1/{_SECRET}", sm(self.delete_secret))
        r("POST", f"/v1/{_SECRET}:addVersion", sm(self.add_version))
        r("GET", f"/v1/{_SECRET}/versions", sm(self.list_versions))
        r("GET", f"/v1/{_VERSION}", sm(self.get_version))
        r("GET", f"/v1/{_VERSION}:access", sm(self.access))
        r("POST", f"/v1/{_VERSION}:(?P<verb>disable|enable|destroy)", sm(self.set_state))
        if self.REGIONAL:
            return
        r("GET", f"/v1/{_SA}/keys", self.list_keys)
        r("GET", f"/v1/{_KEY}", self.get_key)
        r("POST", f"/v1/{_SA}/keys", self.create_key)
        r("POST", f"/v1/{_KEY}:(?P<verb>disable|enable)", self.set_key)
        r("DELETE", f"/v1/{_KEY}", self.delete_key)

    def _served(self, handler: Handler) -> Handler:
        """``handler``, after refusing names this endpoint does not serve (module doc)."""
        def checked(req: Request) -> Response:
            target = req.path.removeprefix("/v1/").split(":", 1)[0]
            if is_regional(target) != self.REGIONAL:
                return self.error(400, f"The provided Secret ID [{target}] does not match the "
                                  f"expected format [{_expected_format(target, self.REGIONAL)}]",
                                  "INVALID_ARGUMENT")
            host = req.headers.get("host", "").rsplit(":", 1)[0].lower()
            location = target.split("/")[3] if self.REGIONAL else ""
            m = re.fullmatch(r"secretmanager\.([a-z0-9-]+)\.rep\.googleapis\.com", host)
            if self.REGIONAL and host.endswith("googleapis.com") and \
                    (m is None or m.group(1) != location):
                return self.error(400, f"Resource [{target}] is in location [{location}], "
                                  f"not served by endpoint [{host}].", "INVALID_ARGUMENT")
            return handler(req)
        return checked

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """Google's error shape; ``kind`` is the canonical status name when given."""
        status_name = kind if kind.isupper() else _STATUS.get(status, "UNKNOWN")
        return {"error": {"code": status, "message": message, "status": status_name}}

    # -- Secret Manager ----------------------------------------------------------------
    @staticmethod
    def _ints(req: Request) -> bool:
        return "enum-encoding=int" in (req.arg("$alt") or "")

    def _secret(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.state["secrets"].get(name)
        return found

    def _secret_json(self, name: str, s: dict[str, Any]) -> dict[str, Any]:
        out = {"name": name, "createTime": s["create_time"], "etag": s["etag"]}
        if not self.REGIONAL:  # a regional secret has no replication policy
            out["replication"] = {"automatic": {}}
        return out

    def _version_json(self, req: Request, name: str, v: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "createTime": v["create_time"], "etag": v["etag"],
                               "state": _STATES[v["state"]] if self._ints(req) else v["state"]}
        if not self.REGIONAL:
            out["replicationStatus"] = {"automatic": {}}
        if v.get("destroy_time"):
            out["destroyTime"] = v["destroy_time"]
        return out

    def _no_secret(self, name: str) -> Response:
        return self.error(404, f"Secret [{name}] not found or has no versions.", "NOT_FOUND")

    def _resolve(self, req: Request) -> tuple[str, dict[str, Any]] | Response:
        """The version a request names (``latest`` = the most recently created)."""
        name = req.params["secret"]
        s = self._secret(name)
        if s is None or not s["versions"]:
            return self._no_secret(name)
        vid = req.params["version"]
        if vid == "latest":
            vid = max(s["versions"], key=int)
        v = s["versions"].get(vid)
        if v is None:
            return self.error(404, f"Secret Version [{name}/versions/{vid}] not found.",
                              "NOT_FOUND")
        return f"{name}/versions/{vid}", v

    @staticmethod
    def _page(req: Request, items: list[Any]) -> tuple[list[Any], str]:
        size = int(req.arg("pageSize") or 0) or 25000
        start = int(req.arg("pageToken") or 0)
        page = items[start:start + size]
        return page, str(start + size) if start + size < len(items) else ""

    def list_secrets(self, req: Request) -> Response:
        """``GET .../secrets``."""
        prefix = req.params["parent"] + "/secrets/"
        names = sorted(n for n in self.state["secrets"]
                       if n.startswith(prefix) and "/" not in n[len(prefix):])
        page, token = self._page(req, names)
        body: dict[str, Any] = {"secrets": [self._secret_json(n, self.state["secrets"][n])
                                            for n in page], "totalSize": len(names)}
        if token:
            body["nextPageToken"] = token
        return Response(200, body)

    def create_secret(self, req: Request) -> Response:
        """``POST .../secrets?secretId=ID``."""
        sid = req.arg("secretId") or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", sid):
            return self.error(400, f"Invalid secretId [{sid}].", "INVALID_ARGUMENT")
        name = f"{req.params['parent']}/secrets/{sid}"
        if name in self.state["secrets"]:
            return self.error(409, f"Secret [{name}] already exists.", "ALREADY_EXISTS")
        self.state["secrets"][name] = new_secret([])
        return Response(200, self._secret_json(name, self.state["secrets"][name]))

    def get_secret(self, req: Request) -> Response:
        """``GET .../secrets/{s}``."""
        name = req.params["secret"]
        s = self._secret(name)
        if s is None:
            return self.error(404, f"Secret [{name}] not found.", "NOT_FOUND")
        return Response(200, self._secret_json(name, s))

    def delete_secret(self, req: Request) -> Response:
        """``DELETE .../secrets/{s}``."""
        name = req.params["secret"]
        if self.state["secrets"].pop(name, None) is None:
            return self.error(404, f"Secret [{name}] not found.", "NOT_FOUND")
        return Response(200, {})

    def add_version(self, req: Request) -> Response:
        """``POST .../secrets/{s}:addVersion`` body ``{"payload": {"data": b64, "dataCrc32c"?}}``.

        ``data`` is at most 64 KiB; a ``dataCrc32c`` (int64, sent as a decimal string by the
        REST transport) is checked against the received data, stored, and returned by
        ``:access`` (``SecretPayload`` in the Secret Manager v1 reference: "If specified,
        SecretManagerService will verify the integrity of the received data"); the status
        of a mismatch is [unconfirmed] (400 INVALID_ARGUMENT here).
        """
        name = req.params["secret"]
        s = self._secret(name)
        if s is None:
            return self.error(404, f"Secret [{name}] not found.", "NOT_FOUND")
        payload = (req.body or {}).get("payload") or {}
        data = payload.get("data") or ""
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            return self.error(400, "Invalid payload data: not base64.", "INVALID_ARGUMENT")
        if len(raw) > 65536:
            return self.error(400, "Secret payload data must be no larger than 64KiB.",
                              "INVALID_ARGUMENT")
        crc = payload.get("dataCrc32c")
        if crc is not None and str(crc) != str(crc32c(raw)):
            return self.error(400, "Checksum mismatch: the received payload data does not "
                              "match data_crc32c.", "INVALID_ARGUMENT")
        vid = str(max((int(k) for k in s["versions"]), default=0) + 1)
        s["versions"][vid] = {"state": "ENABLED", "create_time": _now(), "etag": _etag(),
                              "data": data, "crc32c": str(crc32c(raw))}
        s["etag"] = _etag()
        return Response(200, self._version_json(req, f"{name}/versions/{vid}", s["versions"][vid]))

    def list_versions(self, req: Request) -> Response:
        """``GET .../versions`` (newest first; ``filter=state:ENABLED`` and the like)."""
        name = req.params["secret"]
        s = self._secret(name)
        if s is None:
            return self.error(404, f"Secret [{name}] not found.", "NOT_FOUND")
        wanted = None
        flt = (req.arg("filter") or "").strip()
        if flt:
            m = re.fullmatch(r"state\s*[:=]\s*(ENABLED|DISABLED|DESTROYED)", flt)
            if not m:
                return self.error(400, f"Invalid filter [{flt}].", "INVALID_ARGUMENT")
            wanted = m.group(1)
        ids = sorted((k for k, v in s["versions"].items()
                      if wanted is None or v["state"] == wanted), key=int, reverse=True)
        page, token = self._page(req, ids)
        body: dict[str, Any] = {
            "versions": [self._version_json(req, f"{name}/versions/{k}", s["versions"][k])
                         for k in page], "totalSize": len(ids)}
        if token:
            body["nextPageToken"] = token
        return Response(200, body)

    def get_version(self, req: Request) -> Response:
        """``GET .../versions/{v}``."""
        found = self._resolve(req)
        if isinstance(found, Response):
            return found
        return Response(200, self._version_json(req, *found))

    def access(self, req: Request) -> Response:
        """``GET .../versions/{v}:access``: the payload of an ENABLED version only."""
        found = self._resolve(req)
        if isinstance(found, Response):
            return found
        name, v = found
        if v["state"] != "ENABLED":
            # [unconfirmed] real GCP is said to answer FAILED_PRECONDITION here
            # (provider-apis.md section 9); over REST the client raises BadRequest for it.
            return self.error(400, f"Secret Version [{name}] is in {v['state']} state.",
                              "FAILED_PRECONDITION")
        payload = {"data": v["data"],
                   "dataCrc32c": v.get("crc32c") or str(crc32c(base64.b64decode(v["data"])))}
        return Response(200, {"name": name, "payload": payload})

    def set_state(self, req: Request) -> Response:
        """``POST .../versions/{v}:disable|:enable|:destroy`` with optional ``etag``."""
        found = self._resolve(req)
        if isinstance(found, Response):
            return found
        name, v = found
        etag = (req.body or {}).get("etag") if isinstance(req.body, dict) else None
        if etag and etag != v["etag"]:
            # [unconfirmed] AIP-154 says a stale etag fails with ABORTED
            return self.error(409, f"Etag [{etag}] does not match the current etag of "
                              f"Secret Version [{name}].", "ABORTED")
        verb = req.params["verb"]
        if v["state"] == "DESTROYED":
            if verb == "destroy":
                return Response(200, self._version_json(req, name, v))
            return self.error(400, f"Secret Version [{name}] is in DESTROYED state.",
                              "FAILED_PRECONDITION")
        target = {"disable": "DISABLED", "enable": "ENABLED", "destroy": "DESTROYED"}[verb]
        if v["state"] != target:
            v["state"], v["etag"] = target, _etag()
            if target == "DESTROYED":
                v["data"], v["destroy_time"] = "", _now()
        return Response(200, self._version_json(req, name, v))

    # -- IAM service-account keys ------------------------------------------------------
    def _account(self, req: Request) -> dict[str, Any] | Response:
        sa = req.params["sa"]
        acct = self.state["service_accounts"].get(sa)
        project = req.params["project"]
        if acct is None or project not in ("-", acct["project"]):
            return self.error(404, f"Unknown service account [{sa}] in project [{project}].",
                              "NOT_FOUND")
        found: dict[str, Any] = acct
        return found

    @staticmethod
    def _key_json(project: str, sa: str, kid: str, k: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": f"projects/{project}/serviceAccounts/{sa}/keys/{kid}",
            "validAfterTime": k["valid_after"], "validBeforeTime": k["valid_before"],
            "keyAlgorithm": "KEY_ALG_RSA_2048", "keyOrigin": "GOOGLE_PROVIDED",
            "keyType": k["key_type"]}
        if k["disabled"]:
            out["disabled"] = True
        return out

    def _key(self, req: Request) -> tuple[str, dict[str, Any], dict[str, Any]] | Response:
        acct = self._account(req)
        if isinstance(acct, Response):
            return acct
        kid = req.params["key"]
        k = acct["keys"].get(kid)
        if k is None:
            return self.error(404, f"Service account key {kid} does not exist.", "NOT_FOUND")
        return kid, k, acct

    def list_keys(self, req: Request) -> Response:
        """``GET .../keys?keyTypes=USER_MANAGED`` (repeatable; all types when absent)."""
        acct = self._account(req)
        if isinstance(acct, Response):
            return acct
        types = set(req.query.get("keyTypes") or [])
        sa = req.params["sa"]
        keys = [self._key_json(acct["project"], sa, kid, k) for kid, k in acct["keys"].items()
                if not types or k["key_type"] in types]
        return Response(200, {"keys": keys})

    def get_key(self, req: Request) -> Response:
        """``GET .../keys/{key}``."""
        found = self._key(req)
        if isinstance(found, Response):
            return found
        kid, k, acct = found
        out = self._key_json(acct["project"], req.params["sa"], kid, k)
        kind = req.arg("publicKeyType") or "TYPE_NONE"
        if kind not in ("TYPE_NONE", "TYPE_X509_PEM_FILE"):
            return self.error(400, f"publicKeyType {kind} is not served by the sandbox.",
                              "INVALID_ARGUMENT")
        if kind == "TYPE_X509_PEM_FILE":
            if not k.get("public_pem"):
                k["public_pem"] = keypair(kid, k["valid_before"])[1]
            out["publicKeyData"] = base64.b64encode(k["public_pem"].encode()).decode()
        return Response(200, out)

    def create_key(self, req: Request) -> Response:
        """``POST .../keys``: a new user-managed key and its JSON key file (shown once)."""
        acct = self._account(req)
        if isinstance(acct, Response):
            return acct
        body = req.body if isinstance(req.body, dict) else {}
        kind = body.get("privateKeyType") or "TYPE_GOOGLE_CREDENTIALS_FILE"
        alg = body.get("keyAlgorithm") or "KEY_ALG_RSA_2048"
        if kind != "TYPE_GOOGLE_CREDENTIALS_FILE" or alg != "KEY_ALG_RSA_2048":
            return self.error(400, f"The sandbox creates TYPE_GOOGLE_CREDENTIALS_FILE keys with "
                              f"KEY_ALG_RSA_2048 only, not {kind} / {alg}.", "INVALID_ARGUMENT")
        sa, project = req.params["sa"], acct["project"]
        kid = secrets.token_hex(20)
        key = new_key(project)
        private, key["public_pem"] = keypair(kid, key["valid_before"])
        acct["keys"][kid] = key
        out = self._key_json(project, sa, kid, key)
        out["privateKeyType"] = kind
        out["privateKeyData"] = base64.b64encode(
            key_file(project, sa, kid, private).encode()).decode()
        return Response(200, out)

    def set_key(self, req: Request) -> Response:
        """``POST .../keys/{key}:disable|:enable`` -> empty (idempotent here [unconfirmed])."""
        found = self._key(req)
        if isinstance(found, Response):
            return found
        _, k, _ = found
        if k["key_type"] != "USER_MANAGED":
            return self.error(400, "System-managed keys cannot be disabled or enabled.",
                              "FAILED_PRECONDITION")
        k["disabled"] = req.params["verb"] == "disable"
        return Response(200, {})

    def delete_key(self, req: Request) -> Response:
        """``DELETE .../keys/{key}`` -> empty; permanent."""
        found = self._key(req)
        if isinstance(found, Response):
            return found
        kid, _, acct = found
        del acct["keys"][kid]
        return Response(200, {})


class GcpRegionalStandIn(GcpStandIn):
    """The regional Secret Manager endpoint: ``projects/P/locations/L/secrets/...`` only."""

    name: ClassVar[str] = "gcp-regional"
    REGIONAL: ClassVar[bool] = True


STANDIN = GcpStandIn


def _backends(config: Any, types: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {name: dict(b.options) for name, b in (config.backends or {}).items()
            if b.type in types}


def _refs(config: Any, types: tuple[str, ...]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    backends = _backends(config, types)
    out = []
    for integ in config.integrations:
        for ref in integ.credentials:
            fields = ref.fields() if hasattr(ref, "fields") else dict(ref)
            if fields.get("backend") in backends:
                out.append((integ.id, fields, backends[fields["backend"]]))
    return out


def _provider_value(config: Any, integration: str) -> str:
    """The sandbox provider key of ``integration`` (see ``seedkeys``), else a fake value."""
    from console.sandbox.seedkeys import integration_key_value

    return integration_key_value(config, integration) or _fake_value()


def secret_name(ref: dict[str, Any], options: dict[str, Any]) -> str:
    """The full secret name of a reference (``name`` / ``secret``: full name, or an id with
    ``project`` and, for a regional secret, ``location``)."""
    sid = str(ref.get("name") or ref.get("secret") or "")
    if sid.startswith("projects/"):
        return sid
    project = str(ref.get("project") or options.get("project") or "")
    location = f"/locations/{ref['location']}" if ref.get("location") else ""
    return f"projects/{project}{location}/secrets/{sid}"


def seed(config: Any) -> dict[str, Any]:
    """Initial state from the inventory refs on ``gcp-secrets`` / ``gcp-keys`` backends.

    Each referenced secret gets version 1 DISABLED (a rotated-out fake value) and version 2
    ENABLED holding the integration's sandbox provider key (``console.sandbox.seedkeys``, the
    value the OpenAI / Anthropic stand-in issues) or else a fake ``sk-sandbox-<hex>``.
    Each referenced service account gets its listed key (or one user-managed key) enabled,
    plus one system-managed key.
    """
    state: dict[str, Any] = {"secrets": {}, "service_accounts": {}}
    for integration, ref, options in _refs(config, SECRET_TYPES):
        if ref.get("name") or ref.get("secret"):
            name = secret_name(ref, options)
            state["secrets"].setdefault(name, new_secret(
                [("DISABLED", _fake_value()), ("ENABLED", _provider_value(config, integration))]))
    for _, ref, options in _refs(config, KEY_TYPES):
        sa = str(ref.get("service_account") or "")
        if not sa:
            continue
        m = re.search(r"@([^.]+)\.iam\.gserviceaccount\.com$", sa)
        project = str(ref.get("project") or options.get("project") or (m and m.group(1)) or "-")
        acct = state["service_accounts"].setdefault(sa, {"project": project, "keys": {}})
        kid = str(ref.get("key") or secrets.token_hex(20))
        acct["keys"].setdefault(kid, new_key(project))
        if not any(k["key_type"] == "SYSTEM_MANAGED" for k in acct["keys"].values()):
            acct["keys"][secrets.token_hex(20)] = new_key(project, kind="SYSTEM_MANAGED")
    return state


def wanted(config: Any) -> bool:
    """True when the config has a ``gcp-secrets`` or ``gcp-keys`` backend."""
    return bool(_backends(config, SECRET_TYPES + KEY_TYPES))


def extra_standins(config: Any) -> list[tuple[type[StandIn], int]]:
    """The regional endpoint (class, default port) when a ``gcp-secrets`` backend's
    ``regional_endpoint`` points at this machine; it is seeded like the global one."""
    for options in _backends(config, SECRET_TYPES).values():
        host = urlsplit(str(options.get("regional_endpoint") or "")).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            return [(GcpRegionalStandIn, REGIONAL_PORT)]
    return []
