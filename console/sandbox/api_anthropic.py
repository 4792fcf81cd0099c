"""Anthropic stand-in: the Admin API for API keys, plus ``/v1/models``.

Routes (both auth styles accepted: ``x-api-key`` as documented and ``Authorization: Bearer``
as anthropic 2.x sends; any ``anthropic-version``; ``?beta=true`` ignored)::

    GET  /v1/models                                 inference key check (paged list)
    GET  /v1/organizations/api_keys                 list: status, workspace_id, after_id,
                                                    before_id, limit (1-1000, default 20)
    GET  /v1/organizations/api_keys/{id}            retrieve
    POST /v1/organizations/api_keys/{id}            update {"status"?, "name"?}
    GET  /v1/organizations/usage_report/messages    usage buckets (paged, next_page)
    GET  /v1/organizations/cost_report              cost buckets (paged, next_page)

Lists answer ``{data, has_more, first_id, last_id}``. Errors use Anthropic's shape
``{"type": "error", "error": {"type", "message"}, "request_id"}``. ``/v1/models`` answers
200 for an ``active`` key value and 401 (``authentication_error``) for an inactive, archived
or unknown one. An archived key cannot be set back (400). Admin keys accepted: the seed's
``<sandbox dir>/anthropic-admin.key`` and ``$KILLSWITCH_SANDBOX_ANTHROPIC_ADMIN_KEY`` when set.

Conflicts: while the state's ``conflicts`` counter is above zero, each update answers 409
``conflict_error`` (a concurrent change to the same key) and counts it down, the way the API
answers a write that raced another one. Anthropic documents 409 ``conflict_error`` among its
HTTP errors (https://docs.anthropic.com/en/api/errors) and anthropic-sdk-python retries 409
(``_should_retry`` in ``_base_client.py``, 2.12.0).

Creating keys: the Admin API has none (anthropic-sdk-python 2.12 ``organization.api_keys``
offers ``retrieve``, ``update`` and ``list`` only), so ``POST /v1/organizations/api_keys``
answers 404 here too. Keys are created in the Claude Console (Settings -> API keys, the value
shown once: https://platform.claude.com/docs/en/get-api-key); the sandbox's stand-in for that
Console button, outside the provider's namespace, is ``POST /_sandbox/console/api_keys``
``{name?, workspace_id?}`` -> ``{id, name, status, value}``: an active key that works on
``/v1/models`` and is listed by the Admin API (the rotation demo pastes its value).

Every request (headers included, ``User-Agent`` too) is in ``GET /_sandbox/requests``.
"""

from __future__ import annotations

import os
import random
import secrets
from typing import Any

from console.sandbox.seedkeys import (
    credential_refs,
    sandbox_admin_key,
    sandbox_backends,
    sandbox_key_value,
)
from console.sandbox.standin import Request, Response, StandIn
from console.sandbox.usagereports import anthropic_routes, seed_usage

__all__ = ["ADMIN_KEY_ENV", "DEFAULT_PORT", "STANDIN", "AnthropicStandIn", "seed", "wanted"]

DEFAULT_PORT = 8382
ADMIN_KEY_ENV = "KILLSWITCH_SANDBOX_ANTHROPIC_ADMIN_KEY"
_STATUSES = ("active", "inactive", "archived")
_KINDS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 429: "rate_limit_error",
          500: "api_error",
          529: "overloaded_error"}


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """A key as the API shows it (the value stays private)."""
    return {k: v for k, v in obj.items() if k != "value"}


def page(items: list[dict[str, Any]], req: Request) -> Response:
    """One page in Anthropic's list shape (``after_id`` / ``before_id`` / ``limit``)."""
    try:
        limit = max(1, min(1000, int(req.arg("limit") or 20)))
    except ValueError:
        limit = 20
    ids = [i["id"] for i in items]
    after, before = req.arg("after_id"), req.arg("before_id")
    if before:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit)
        more = start > 0
    else:
        start = ids.index(after) + 1 if after in ids else (len(items) if after else 0)
        end = start + limit
        more = end < len(items)
    chunk = items[start:end]
    return Response(200, {"data": chunk, "has_more": more,
                          "first_id": chunk[0]["id"] if chunk else None,
                          "last_id": chunk[-1]["id"] if chunk else None})


class AnthropicStandIn(StandIn):
    """The Anthropic Admin API (API keys) and the models check, served from memory."""

    name = "anthropic"

    def setup(self) -> None:
        """Register the routes."""
        self.route("GET", r"/v1/models", self.models)
        self.route("GET", r"/v1/organizations/api_keys", self.list_keys)
        self.route("GET", r"/v1/organizations/api_keys/(?P<id>[^/]+)", self.get_key)
        self.route("POST", r"/v1/organizations/api_keys/(?P<id>[^/]+)", self.update_key)
        anthropic_routes(self)  # usage and cost reports: console/sandbox/usagereports.py

    def error_body(self, status: int, message: str, kind: str = "") -> Any:
        """Anthropic's error shape."""
        kind = _KINDS.get(status, kind or "api_error")
        return {"type": "error", "error": {"type": kind, "message": message},
                "request_id": f"req_{random.getrandbits(64):016x}"}

    def handle(self, req: Request) -> Response:
        """Check admin auth on ``/v1/organizations/``, then the base dispatch."""
        if req.path == "/_sandbox/console/api_keys" and req.method == "POST":
            with self.lock:
                return self.console_create(req)
        if req.path.startswith("/v1/organizations/") and not self._admin(req):
            return self.error(401, "invalid x-api-key: admin endpoints need an admin key")
        return super().handle(req)

    def console_create(self, req: Request) -> Response:
        """The Claude Console's "Create key" (sandbox only): a new active key, value once."""
        body = req.body if isinstance(req.body, dict) else {}
        kid = f"apikey_01{secrets.token_hex(10)}"
        value = f"sk-ant-api03-{secrets.token_hex(24)}"
        name = str(body.get("name") or "pasted-by-operator")[:500]
        key = key_object(kid, name, value)
        if isinstance(body.get("workspace_id"), str) and body["workspace_id"]:
            ws = body["workspace_id"]
            key["workspace_id"], key["scope"] = ws, {"type": "workspace", "workspace_id": ws}
        self._keys()[kid] = key
        return Response(200, {"id": kid, "name": name, "status": "active", "value": value})

    def _admin(self, req: Request) -> bool:
        key = req.bearer
        env = os.environ.get(ADMIN_KEY_ENV, "").strip()
        return bool(key) and (key in self.state.get("admin_keys", []) or key == env)

    def _keys(self) -> dict[str, dict[str, Any]]:
        keys: dict[str, dict[str, Any]] = self.state.setdefault("api_keys", {})
        return keys

    # -- routes ---------------------------------------------------------------------------
    def models(self, req: Request) -> Response:
        """200 with a model list for an active key value, 401 otherwise."""
        key = req.bearer
        live = any(k["value"] == key and k["status"] == "active" for k in self._keys().values())
        if not key or not live:
            return self.error(401, "invalid x-api-key")
        models = [{"type": "model", "id": m, "display_name": m,
                   "created_at": "2025-09-29T00:00:00Z"}
                  for m in ("claude-sonnet-4-5", "claude-haiku-4-5")]
        return page(models, req)

    def list_keys(self, req: Request) -> Response:
        """API keys, filtered by ``status`` / ``workspace_id``, paged."""
        items = [public(k) for k in self._keys().values()]
        status, ws = req.arg("status"), req.arg("workspace_id")
        if status:
            items = [k for k in items if k["status"] == status]
        if ws:
            items = [k for k in items if (k.get("workspace_id") or "") == ws]
        return page(items, req)

    def get_key(self, req: Request) -> Response:
        """One API key."""
        key = self._keys().get(req.params["id"])
        if key is None:
            return self.error(404, f"API key {req.params['id']} not found")
        return Response(200, public(key))

    def update_key(self, req: Request) -> Response:
        """Set ``status`` and/or ``name``; archived keys stay archived."""
        key = self._keys().get(req.params["id"])
        if key is None:
            return self.error(404, f"API key {req.params['id']} not found")
        body = req.body if isinstance(req.body, dict) else {}
        status = body.get("status")
        if status is not None and status not in _STATUSES:
            return self.error(400, f"status: must be one of {', '.join(_STATUSES)}")
        if status and key["status"] == "archived" and status != "archived":
            return self.error(400, "an archived API key cannot be reactivated")
        if int(self.state.get("conflicts") or 0) > 0:
            self.state["conflicts"] = int(self.state["conflicts"]) - 1
            return self.error(409, f"API key {req.params['id']} was changed by another "
                              "request at the same time; try again")
        if status:
            key["status"] = status
        if isinstance(body.get("name"), str) and body["name"]:
            key["name"] = body["name"][:500]
        return Response(200, public(key))


STANDIN = AnthropicStandIn


def key_object(key_id: str, name: str, value: str) -> dict[str, Any]:
    """An API key as the stand-in stores it (``value`` stays private)."""
    return {"type": "api_key", "id": key_id, "name": name, "status": "active",
            "partial_key_hint": f"{value[:10]}...{value[-4:]}",
            "created_at": "2025-01-01T00:00:00Z", "expires_at": None,
            "created_by": {"id": "user_sandbox", "type": "user"},
            "workspace_id": "wrkspc_sandbox",
            "scope": {"type": "workspace", "workspace_id": "wrkspc_sandbox"}, "value": value}


def seed(config: Any) -> dict[str, Any]:
    """An active key per ``api_key_id`` named by credential refs on sandbox backends."""
    keys: dict[str, Any] = {}
    for integration, ref in credential_refs(config, "anthropic"):
        kid = str(ref.get("api_key_id") or "")
        if kid:
            keys[kid] = key_object(kid, integration,
                                   sandbox_key_value(config, "anthropic", kid))
    usage = seed_usage([(str(k["workspace_id"]), kid) for kid, k in keys.items()],
                       ("claude-sonnet-4-5", "claude-haiku-4-5"))
    return {"admin_keys": [sandbox_admin_key(config, "anthropic")], "api_keys": keys,
            "usage": usage}


def wanted(config: Any) -> bool:
    """True when an ``anthropic`` backend points at this machine."""
    return bool(sandbox_backends(config, "anthropic"))
