"""OpenAI Admin API adapter (httpx): delete project API keys and project service accounts.

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

OpenAI offers no way to disable a key: the only kill is DELETE, which is permanent. Both
``credential.disable`` and ``credential.destroy`` therefore plan the delete as irreversible
(``reversible=False``); the engine refuses it without ``--allow-irreversible``. The plan's
note says so and names the containment that stays reversible (flags off, egress block).

Rotation (:mod:`adapters.openai_rotation`): ``credential.issue`` creates a project service
account ``killswitch-rotation-<run>-<integration>`` with a new key (held in memory, verified
with ``GET /models``; undo deletes that account); ``credential.retire`` deletes the old key as
``credential.disable`` does (irreversible, consent required).

Backend options::

    [backends.openai-sandbox]
    type = "openai"
    base_url = "http://127.0.0.1:8381/v1"      # default https://api.openai.com/v1
    admin_key_env = "OPENAI_ADMIN_KEY"         # env var NAME holding the admin key (default)
    admin_key_file = ".sandbox/openai-admin.key"  # fallback file (optional)
    request_timeout = 30                       # seconds per HTTP call (``timeout`` too)

Inventory references::

    {backend = "openai-sandbox", project = "proj_abc", api_key_id = "key_abc"}
    {backend = "openai-sandbox", project = "proj_abc", service_account_id = "svc_acct_abc"}

State shapes (``before`` / ``after`` / :meth:`OpenAIAdminAdapter.read`)::

    api key          {"exists": true, "name": "support-bot", "redacted_value": "sk-...abcd"}
    service account  {"exists": true, "name": "support-bot", "role": "member"}
    deleted          {"exists": false}

``redacted_value`` is kept only when the API returns it visibly redacted (``...``, ``*``).

Example runbook step::

    [[steps]]
    id = "revoke-openai"
    action = "credential.destroy"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import path_option, plan_context, seconds_option
from adapters.evidence import EvidenceSink
from adapters.http import url_option
from adapters.llm_http import DEFAULT_TIMEOUT, ProviderApi, admin_hints, admin_key, probe_key
from adapters.openai_rotation import (
    apply_issue,
    guard_retire,
    inverse_issue,
    plan_issue,
    read_issue,
    verify_issue,
)
from adapters.rotation import ISSUE, RETIRE
from adapters.rotation_help import retire_changes
from adapters.specs.providers import OPENAI, OpenAIAdminOptions
from console.errors import AdapterError, UndoUnsupported

__all__ = ["OpenAIAdminAdapter"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROVIDER = "OpenAI"

# options, reference schema and permissions: adapters/specs/providers.py
_CONTAINMENT = ("flag.disable (flags off) and egress.block stay reversible; run them first "
                "if containment is enough")


def _redacted(value: Any) -> str | None:
    """``value`` when it is visibly redacted, else None (never keep a possible real key)."""
    if not isinstance(value, str) or not value:
        return None
    if ("..." in value or "*" in value or "\u2026" in value) and len(value) <= 40:
        return value
    return None


class OpenAIAdminAdapter(Adapter):
    """Kill OpenAI project API keys and service accounts through the Admin API.

    Both ``credential.disable`` and ``credential.destroy`` delete the key (OpenAI has no
    disable): irreversible, consent required; undo means issuing a new key.
    """

    name: ClassVar[str] = "openai"
    Options: ClassVar[type[OpenAIAdminOptions]] = OpenAIAdminOptions
    OPTIONS: ClassVar[Mapping[str, str]] = OpenAIAdminOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = OPENAI.actions  # specs/providers.py
    SUPPORTS_UNDO: ClassVar[bool] = False
    CAN_PROBE: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.base_url = url = url_option(backend, self.options.get("base_url"),
                                         default=DEFAULT_BASE_URL)
        self.key_env = str(self.options.get("admin_key_env") or "OPENAI_ADMIN_KEY")
        self.key_file = path_option(self.options, "admin_key_file")
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self.api = ProviderApi(self, PROVIDER, url, timeout=self.timeout,
                               hints=admin_hints(PROVIDER))

    # -- clients --------------------------------------------------------------------------

    def open(self) -> None:
        """Build the HTTP client (reads the admin key; no request is sent)."""
        if not self.api.opened:
            key = admin_key(self.backend, PROVIDER, self.key_env, self.key_file)
            self.api.open({"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()

    # -- references -----------------------------------------------------------------------

    def _ref(self, ref: Mapping[str, Any]) -> tuple[str, str, str, str]:
        """``(kind, path, target, id)`` of a reference; kind is ``key`` or ``service_account``."""
        project = str(ref.get("project") or "").strip()
        key_id = str(ref.get("api_key_id") or "").strip()
        sa_id = str(ref.get("service_account_id") or "").strip()
        if not project or bool(key_id) == bool(sa_id):
            raise AdapterError("openai reference needs `project` and exactly one of "
                               "`api_key_id` / `service_account_id`", where=self.backend,
                               hint='e.g. {backend = "openai", project = "proj_...", '
                               'api_key_id = "key_..."}')
        base = f"/organization/projects/{project}"
        if key_id:
            return "key", f"{base}/api_keys/{key_id}", \
                f"project {project} API key {key_id}", key_id
        return "service_account", f"{base}/service_accounts/{sa_id}", \
            f"project {project} service account {sa_id}", sa_id

    def _state(self, kind: str, path: str, target: str) -> dict[str, Any]:
        obj = self.api.request("GET", path, target, missing_ok=True)
        if obj is None:
            return {"exists": False}
        state: dict[str, Any] = {"exists": True, "name": str(obj.get("name") or "")}
        if kind == "key":
            red = _redacted(obj.get("redacted_value"))
            if red:
                state["redacted_value"] = red
        else:
            state["role"] = str(obj.get("role") or "")
        return state

    def read(self, change: Change) -> dict[str, Any]:
        """Current state of the key or service account (``{"exists": false}`` once deleted)."""
        if change.action == ISSUE:
            return read_issue(self, change)
        kind, path, target, _ = self._ref(change.ref)
        return self._state(kind, path, target)

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """GET the key (read-only) and plan its DELETE as irreversible."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the openai adapter does not offer {action}: OpenAI keys "
                               "cannot be re-enabled once deleted", where=self.backend,
                               hint="issue a new key and redistribute it to the stores")
        if action == ISSUE:
            return plan_issue(self, ref, ctx)
        if action == RETIRE:  # rotation: the old key dies as credential.disable kills it
            return retire_changes(self.plan("credential.disable", ref, ctx))
        kind, path, target, ident = self._ref(ref)
        ctx = plan_context(self, action, ref, ctx)
        before = self._state(kind, path, target)
        if not before["exists"]:
            return [ctx.change(f"{self.backend}:{target}", before, before, reversible=False,
                               status=NOOP, note=f"{target} is already deleted (GET answers "
                               "404)")]
        undo = {"project": str(ref.get("project")), "kind": kind, "id": ident,
                "name": before.get("name", "")}
        what = "" if kind == "key" else " together with all its keys"
        note = (f"IRREVERSIBLE: OpenAI has no disable, so this DELETES {target} "
                f"({before.get('name') or 'unnamed'}){what} for good; undo means issuing a new "
                f"key and redistributing it to every store. Safer containment: {_CONTAINMENT}; "
                "consent with --allow-irreversible only if the key must die")
        return [ctx.change(f"{self.backend}:{target}", before, {"exists": False},
                           reversible=False, undo=undo, note=note)]

    # -- apply / verify -------------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """DELETE the key or service account; an already-deleted one (404) is fine."""
        if change.action == ISSUE:
            return apply_issue(self, change)
        if change.action == RETIRE:  # the old key dies only once the new one works
            guard_retire(self, change)
        _, path, target, _ = self._ref(change.ref)
        gone = self.api.request("DELETE", path, target, missing_ok=True)
        return {"deleted": True, "already_gone": gone is None}

    def verify(self, change: Change) -> Verdict:
        """GET the key: 404 means it is deleted (an application's key is refused from now)."""
        if change.action == ISSUE:
            return verify_issue(self, change)
        kind, path, target, _ = self._ref(change.ref)
        state = self._state(kind, path, target)
        if not state["exists"]:
            return Verdict(True, "dead", f"GET {target} answers 404: deleted at OpenAI")
        return Verdict(False, "live", f"GET {target} still finds it")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Deletes cannot be undone; the undo of an issue deletes the rotation's account.

        Raises:
            UndoUnsupported: Always, but for ``credential.issue``.
        """
        if change.action == ISSUE:
            return inverse_issue(self, change, applied)
        raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone: the "
                              "OpenAI key was deleted", where=change.target,
                              hint="issue a new key (dashboard, or POST .../service_accounts/"
                              "{id}/api_keys) and redistribute it to the secret stores")

    # -- proof of death -------------------------------------------------------------------

    def probe(self, value: str) -> Verdict:
        """``GET /models`` with the key as a Bearer token, exactly as an application would."""
        return probe_key(self.api, "/models", {"Authorization": f"Bearer {value}"}, value)

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: the key's metadata and the project's usage and costs over the last 24 h
        (:mod:`adapters.preserve_llm`); never the key value."""
        from adapters.preserve_llm import preserve_openai

        preserve_openai(self, ref, sink)
