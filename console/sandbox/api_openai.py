"""OpenAI stand-in: the Admin API for project keys and service accounts, plus ``/v1/models``.

Routes (``Authorization: Bearer`` everywhere; admin routes need a sandbox admin key)::

    GET    /v1/models                                              inference key check
    GET    /v1/organization/projects                               list (paged)
    GET    /v1/organization/projects/{p}/api_keys                  list (paged)
    GET    /v1/organization/projects/{p}/api_keys/{id}             retrieve
    DELETE /v1/organization/projects/{p}/api_keys/{id}             delete (permanent)
    GET    /v1/organization/projects/{p}/service_accounts          list (paged)
    GET    /v1/organization/projects/{p}/service_accounts/{id}     retrieve
    DELETE /v1/organization/projects/{p}/service_accounts/{id}     delete (and its keys)
    GET    /v1/organization/usage/completions|embeddings           usage buckets (paged)
    GET    /v1/organization/costs                                  cost buckets (paged)

Usage and costs are served from hourly usage seeded per project key (the last three hours
a burst): see :mod:`console.sandbox.usagereports` for the parameters and shapes.
    POST   /v1/organization/projects/{p}/service_accounts          create, with its first key
    POST   /v1/organization/projects/{p}/service_accounts/{id}/api_keys   a key for an account

Creating a service account (the rotation's ``credential.issue``) takes ``{name,
create_service_account_only?, expires_in_seconds?}`` and answers the account with its first
API key unredacted in ``api_key`` (``{object: "organization.project.service_account.api_key",
id, name, created_at, value, expires_at}``), or ``api_key: null`` and role ``none`` with
``create_service_account_only``; ``expires_in_seconds`` is 1-31536000 and refused together
with ``create_service_account_only``. ``POST .../service_accounts/{id}/api_keys`` (``{name?,
scopes?, expires_in_seconds?}``) answers the key in the same shape. Sources: openai-python
3.54.0 ``ServiceAccountCreateParams`` / ``ServiceAccountCreateResponse`` and
``APIKeyCreateParams`` / ``APIKeyCreateResponse`` (``types/admin/organization/projects/``) and
https://developers.openai.com/api/reference/resources/admin/subresources/organization/
subresources/projects/subresources/service_accounts/methods/create ("By default, this also
returns an unredacted API key for the service account"). The new key is listed among the
project's API keys (owner: the service account), works on ``/v1/models`` at once, and dies with
its own delete or its account's.

Lists answer ``{object: "list", data, first_id, last_id, has_more}`` and page with ``after``
and ``limit`` (1-100, default 20). Errors use OpenAI's shape ``{"error": {message, type,
param, code}}`` and every answer carries ``x-request-id``. ``/v1/models`` answers 200 for a
live key value and 401 (``invalid_api_key``) for a deleted or unknown one; the key is never
echoed. Admin keys accepted: the seed's ``<sandbox dir>/openai-admin.key`` and the value of
``$KILLSWITCH_SANDBOX_OPENAI_ADMIN_KEY`` when set.

Conflicts: while the state's ``conflicts`` counter is above zero, each DELETE answers 409
(a concurrent change to the same project) and counts it down. openai-python retries 409
(``_should_retry`` in ``_base_client.py``, 3.54.0: "Retry on lock timeouts") and maps it to
``ConflictError``; the stand-in lets tests prove a client does the same.

Every request (headers included, ``User-Agent`` too) is in ``GET /_sandbox/requests``.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from typing import Any

from console.sandbox.seedkeys import (
    credential_refs,
    sandbox_admin_key,
    sandbox_backends,
    sandbox_key_value,
)
from console.sandbox.standin import Request, Response, StandIn
from console.sandbox.usagereports import openai_routes, seed_usage

__all__ = ["ADMIN_KEY_ENV", "DEFAULT_PORT", "STANDIN", "OpenAIStandIn", "seed", "wanted"]

DEFAULT_PORT = 8381
ADMIN_KEY_ENV = "KILLSWITCH_SANDBOX_OPENAI_ADMIN_KEY"
_P = r"/v1/organization/projects/(?P<project>[^/]+)"
_STATUS_CODES = {401: "invalid_api_key", 404: "not_found", 409: "conflict",
                 429: "rate_limit_exceeded"}


def redact(value: str) -> str:
    """OpenAI-style redacted form: the first three and last four characters."""
    return f"{value[:3]}...{value[-4:]}"


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API shows it: without the stand-in's private fields."""
    return {k: v for k, v in obj.items() if k not in ("value", "keys")}


def page(items: list[dict[str, Any]], req: Request, after_param: str = "after") -> Response:
    """One page of ``items`` in OpenAI's list shape."""
    try:
        limit = max(1, min(100, int(req.arg("limit") or 20)))
    except ValueError:
        limit = 20
    after = req.arg(after_param)
    start = 0
    if after:
        ids = [i["id"] for i in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start:start + limit]
    return Response(200, {"object": "list", "data": chunk,
                          "first_id": chunk[0]["id"] if chunk else None,
                          "last_id": chunk[-1]["id"] if chunk else None,
                          "has_more": start + limit < len(items)})


class OpenAIStandIn(StandIn):
    """The OpenAI Admin API and the models check, served from memory."""

    name = "openai"

    def setup(self) -> None:
        """Register the routes."""
        self.route("GET", r"/v1/models", self.models)
        self.route("GET", r"/v1/organization/projects", self.list_projects)
        self.route("GET", _P + r"/api_keys", self.list_keys)
        self.route("GET", _P + r"/api_keys/(?P<id>[^/]+)", self.get_key)
        self.route("DELETE", _P + r"/api_keys/(?P<id>[^/]+)", self.delete_key)
        self.route("GET", _P + r"/service_accounts", self.list_accounts)
        self.route("GET", _P + r"/service_accounts/(?P<id>[^/]+)", self.get_account)
        self.route("DELETE", _P + r"/service_accounts/(?P<id>[^/]+)", self.delete_account)
        openai_routes(self)  # usage and costs: console/sandbox/usagereports.py
        self.route("POST", _P + r"/service_accounts", self.create_account)
        self.route("POST", _P + r"/service_accounts/(?P<id>[^/]+)/api_keys",
                   self.create_account_key)

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """OpenAI's error shape."""
        return {"error": {"message": message, "type": kind or "invalid_request_error",
                          "param": None, "code": _STATUS_CODES.get(status)}}

    def handle(self, req: Request) -> Response:
        """Answer, adding OpenAI's ``x-request-id`` header."""
        resp = self.handle_inner(req)
        resp.headers.setdefault("x-request-id", f"req_{random.getrandbits(64):016x}")
        return resp

    def handle_inner(self, req: Request) -> Response:
        """The base dispatch, with admin auth checked on admin routes."""
        if req.path.startswith("/v1/organization/") and not self._admin(req):
            return self.error(401, "Invalid admin API key. Admin endpoints need an "
                              "organization admin key.", "invalid_request_error")
        return super().handle(req)

    # -- auth -----------------------------------------------------------------------------
    def _admin(self, req: Request) -> bool:
        key = req.bearer
        if not key:
            return False
        env = os.environ.get(ADMIN_KEY_ENV, "").strip()
        return key in self.state.get("admin_keys", []) or (bool(env) and key == env)

    def _live_values(self) -> set[str]:
        out: set[str] = set()
        for proj in self.state.get("projects", {}).values():
            out.update(k["value"] for k in proj["api_keys"].values())
            for sa in proj["service_accounts"].values():
                out.update(sa.get("keys", []))
        return out

    def _project(self, req: Request) -> dict[str, Any] | None:
        project: dict[str, Any] | None = self.state.get("projects", {}).get(
            req.params["project"])
        return project

    def _missing(self, what: str, ident: str) -> Response:
        return self.error(404, f"No such {what}: {ident}", "invalid_request_error")

    def _conflict(self, what: str, ident: str) -> Response | None:
        """409 while the ``conflicts`` counter is above zero (counted down)."""
        if int(self.state.get("conflicts") or 0) <= 0:
            return None
        self.state["conflicts"] = int(self.state["conflicts"]) - 1
        return self.error(409, f"The {what} {ident} is being modified by another request; "
                          "try again", "invalid_request_error")

    # -- routes ---------------------------------------------------------------------------
    def models(self, req: Request) -> Response:
        """200 with a model list for a live key value, 401 otherwise."""
        if not req.bearer or req.bearer not in self._live_values():
            return self.error(401, "Incorrect API key provided. You can find your API key "
                              "at https://platform.openai.com/account/api-keys.",
                              "invalid_request_error")
        models = [{"id": m, "object": "model", "created": 1700000000,
                   "owned_by": "killswitch-sandbox"} for m in ("gpt-4o", "gpt-4o-mini")]
        return Response(200, {"object": "list", "data": models})

    def list_projects(self, req: Request) -> Response:
        """Projects, paged."""
        items = [public(p) for p in self.state.get("projects", {}).values()]
        return page([{k: v for k, v in p.items() if k not in ("api_keys", "service_accounts")}
                     for p in items], req)

    def list_keys(self, req: Request) -> Response:
        """Project API keys, paged."""
        proj = self._project(req)
        if proj is None:
            return self._missing("project", req.params["project"])
        return page([public(k) for k in proj["api_keys"].values()], req)

    def get_key(self, req: Request) -> Response:
        """One project API key."""
        proj = self._project(req)
        key = (proj or {}).get("api_keys", {}).get(req.params["id"])
        if key is None:
            return self._missing("API key", req.params["id"])
        return Response(200, public(key))

    def delete_key(self, req: Request) -> Response:
        """Delete a project API key (permanent; a second delete answers 404)."""
        proj = self._project(req)
        if proj is None or req.params["id"] not in proj["api_keys"]:
            return self._missing("API key", req.params["id"])
        busy = self._conflict("API key", req.params["id"])
        if busy:
            return busy
        del proj["api_keys"][req.params["id"]]
        return Response(200, {"object": "organization.project.api_key.deleted",
                              "id": req.params["id"], "deleted": True})

    def list_accounts(self, req: Request) -> Response:
        """Project service accounts, paged."""
        proj = self._project(req)
        if proj is None:
            return self._missing("project", req.params["project"])
        return page([public(s) for s in proj["service_accounts"].values()], req)

    def get_account(self, req: Request) -> Response:
        """One project service account."""
        proj = self._project(req)
        sa = (proj or {}).get("service_accounts", {}).get(req.params["id"])
        if sa is None:
            return self._missing("service account", req.params["id"])
        return Response(200, public(sa))

    def delete_account(self, req: Request) -> Response:
        """Delete a service account and, with it, every key it owns."""
        proj = self._project(req)
        if proj is None or req.params["id"] not in proj["service_accounts"]:
            return self._missing("service account", req.params["id"])
        busy = self._conflict("service account", req.params["id"])
        if busy:
            return busy
        del proj["service_accounts"][req.params["id"]]
        for kid in [k for k, v in proj["api_keys"].items()
                    if (v.get("owner") or {}).get("service_account", {}).get("id")
                    == req.params["id"]]:
            del proj["api_keys"][kid]  # a created account's keys go with it
        return Response(200, {"object": "organization.project.service_account.deleted",
                              "id": req.params["id"], "deleted": True})

    # -- rotation: new service accounts and keys -------------------------------------------
    def _expiry(self, body: dict[str, Any]) -> int | None | Response:
        """``expires_at`` from ``expires_in_seconds`` (1-31536000), or the 400 answer."""
        secs = body.get("expires_in_seconds")
        if secs is None:
            return None
        if not isinstance(secs, int) or isinstance(secs, bool) or not 1 <= secs <= 31536000:
            return self.error(400, "expires_in_seconds must be an integer between 1 and "
                              "31536000", "invalid_request_error")
        return int(time.time()) + secs

    def _new_key(self, proj: dict[str, Any], sa: dict[str, Any], name: str,
                 expires_at: int | None) -> dict[str, Any]:
        """A new key of ``sa``, listed among the project's keys; the created-key answer."""
        kid, value = f"key_{secrets.token_hex(8)}", f"sk-svcacct-{secrets.token_hex(24)}"
        obj = key_object(kid, name, value)
        obj["expires_at"] = expires_at
        obj["owner"] = {"type": "service_account", "service_account": public(sa)}
        proj["api_keys"][kid] = obj
        return {"object": "organization.project.service_account.api_key", "id": kid,
                "name": name, "created_at": obj["created_at"], "value": value,
                "expires_at": expires_at}

    def create_account(self, req: Request) -> Response:
        """Create a service account; by default with its first key, unredacted."""
        proj = self._project(req)
        if proj is None:
            return self._missing("project", req.params["project"])
        body = req.body if isinstance(req.body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return self.error(400, "Missing required parameter: 'name'.",
                              "invalid_request_error")
        only = bool(body.get("create_service_account_only"))
        expires = self._expiry(body)
        if isinstance(expires, Response):
            return expires
        if only and expires is not None:
            return self.error(400, "expires_in_seconds cannot be set with "
                              "create_service_account_only", "invalid_request_error")
        sid = f"svc_acct_{secrets.token_hex(8)}"
        sa: dict[str, Any] = {"object": "organization.project.service_account", "id": sid,
                              "name": name, "role": "none" if only else "member",
                              "created_at": int(time.time()), "keys": []}
        proj["service_accounts"][sid] = sa
        api_key = None if only else self._new_key(proj, sa, "Secret Key", expires)
        return Response(200, {**public(sa), "api_key": api_key})

    def create_account_key(self, req: Request) -> Response:
        """Create an API key for an existing service account (its value shown once)."""
        proj = self._project(req)
        sa = (proj or {}).get("service_accounts", {}).get(req.params["id"])
        if proj is None or sa is None:
            return self._missing("service account", req.params["id"])
        body = req.body if isinstance(req.body, dict) else {}
        expires = self._expiry(body)
        if isinstance(expires, Response):
            return expires
        name = body.get("name") if isinstance(body.get("name"), str) else ""
        return Response(200, self._new_key(proj, sa, str(name or "Secret Key"), expires))


STANDIN = OpenAIStandIn


def key_object(key_id: str, name: str, value: str) -> dict[str, Any]:
    """A project API key as the stand-in stores it (``value`` stays private)."""
    return {"object": "organization.project.api_key", "id": key_id, "name": name,
            "redacted_value": redact(value), "created_at": int(time.time()),
            "last_used_at": None, "expires_at": None,
            "owner": {"type": "service_account",
                      "service_account": {"id": f"svc_acct_{name}", "name": name,
                                          "role": "member", "created_at": 1700000000}},
            "owner_project_access": "active", "value": value}


def seed(config: Any) -> dict[str, Any]:
    """Projects, keys and service accounts named by credential refs on sandbox backends."""
    projects: dict[str, Any] = {}
    for integration, ref in credential_refs(config, "openai"):
        pid = str(ref.get("project") or "")
        if not pid:
            continue
        proj = projects.setdefault(pid, {"object": "organization.project", "id": pid,
                                         "name": pid, "created_at": 1700000000,
                                         "archived_at": None, "status": "active",
                                         "api_keys": {}, "service_accounts": {}})
        if ref.get("api_key_id"):
            kid = str(ref["api_key_id"])
            proj["api_keys"][kid] = key_object(
                kid, integration, sandbox_key_value(config, "openai", kid))
        if ref.get("service_account_id"):
            sid = str(ref["service_account_id"])
            proj["service_accounts"][sid] = {
                "object": "organization.project.service_account", "id": sid,
                "name": integration, "role": "member", "created_at": 1700000000,
                "keys": [sandbox_key_value(config, "openai", sid)]}
    usage = seed_usage([(pid, kid) for pid, p in projects.items() for kid in p["api_keys"]],
                       ("gpt-4o", "gpt-4o-mini"), embeddings="text-embedding-3-small")
    return {"admin_keys": [sandbox_admin_key(config, "openai")], "projects": projects,
            "usage": usage}


def wanted(config: Any) -> bool:
    """True when an ``openai`` backend points at this machine."""
    return bool(sandbox_backends(config, "openai"))
