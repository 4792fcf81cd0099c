"""Anthropic Admin API adapter (httpx): set API keys inactive, and back to their prior status.

Every request carries ``User-Agent: killswitch/<version> run/<run id>``
(:func:`adapters.common.user_agent`), so the provider's own logs show which run acted.

``credential.disable`` sets a key's status to ``inactive`` (reversible: undo is
``credential.enable``, which sets the recorded prior status back, ``active``). The Admin API
has no delete; ``archived`` is treated as one-way: plan refuses to enable an archived key and
reports disable as a no-op for it.

Rotation (:mod:`adapters.anthropic_rotation`): the Admin API cannot create keys, so
``credential.issue`` waits for the key the operator pasted (console prompt, ``--new-key-from
FILE``) and checks that it is new and works; ``credential.retire`` sets the old key inactive
as ``credential.disable`` does.

Backend options::

    [backends.anthropic-sandbox]
    type = "anthropic"
    base_url = "http://127.0.0.1:8382"        # default https://api.anthropic.com (no /v1)
    admin_key_env = "ANTHROPIC_ADMIN_KEY"     # env var NAME holding the admin key (default)
    admin_key_file = ".sandbox/anthropic-admin.key"  # fallback file (optional)
    anthropic_version = "2023-06-01"          # anthropic-version header (default)
    request_timeout = 30                      # seconds per HTTP call (``timeout`` too)

Inventory reference::

    {backend = "anthropic-sandbox", api_key_id = "apikey_01abc"}

State shape (``before`` / ``after`` / :meth:`AnthropicAdminAdapter.read`)::

    {"status": "active"}          # active | inactive | archived | expired

Example runbook step::

    [[steps]]
    id = "revoke-anthropic"
    action = "credential.disable"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.anthropic_rotation import (
    apply_issue,
    guard_retire,
    inverse_issue,
    plan_issue,
    read_issue,
    verify_issue,
)
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import path_option, plan_context, seconds_option
from adapters.evidence import EvidenceSink
from adapters.http import url_option
from adapters.llm_http import DEFAULT_TIMEOUT, ProviderApi, admin_hints, admin_key, probe_key
from adapters.rotation import ISSUE, RETIRE
from adapters.rotation_help import as_disable, retire_changes, retire_inverse
from adapters.specs.providers import ANTHROPIC, AnthropicAdminOptions
from console.errors import AdapterError, Conflict, UndoUnsupported

__all__ = ["AnthropicAdminAdapter"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
PROVIDER = "Anthropic"
_ONE_WAY = ("archived", "expired")

# options, reference schema and permissions: adapters/specs/providers.py


class AnthropicAdminAdapter(Adapter):
    """Deactivate Anthropic API keys through the Admin API (undo: reactivate).

    ``credential.disable`` sets ``status`` to ``inactive``; ``credential.enable`` sets the
    status recorded before the kill (``active``) back.
    """

    name: ClassVar[str] = "anthropic"
    Options: ClassVar[type[AnthropicAdminOptions]] = AnthropicAdminOptions
    OPTIONS: ClassVar[Mapping[str, str]] = AnthropicAdminOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = ANTHROPIC.actions  # specs/providers.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_PROBE: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        url = url_option(backend, self.options.get("base_url"), default=DEFAULT_BASE_URL)
        self.base_url = url.removesuffix("/v1")
        self.key_env = str(self.options.get("admin_key_env") or "ANTHROPIC_ADMIN_KEY")
        self.key_file = path_option(self.options, "admin_key_file")
        self.version = str(self.options.get("anthropic_version") or DEFAULT_VERSION)
        self.timeout = seconds_option(backend, self.options, DEFAULT_TIMEOUT)
        self.api = ProviderApi(self, PROVIDER, self.base_url, timeout=self.timeout,
                               hints=admin_hints(PROVIDER))

    # -- clients --------------------------------------------------------------------------

    def open(self) -> None:
        """Build the HTTP client (reads the admin key; no request is sent)."""
        if not self.api.opened:
            key = admin_key(self.backend, PROVIDER, self.key_env, self.key_file)
            self.api.open({"x-api-key": key, "anthropic-version": self.version})

    def close(self) -> None:
        """Close the HTTP client."""
        self.api.close()

    # -- references and reads -------------------------------------------------------------

    def _ref(self, ref: Mapping[str, Any]) -> tuple[str, str, str]:
        """``(key_id, path, target)`` of a reference."""
        key_id = str(ref.get("api_key_id") or "").strip()
        if not key_id:
            raise AdapterError("anthropic reference needs `api_key_id`", where=self.backend,
                               hint='e.g. {backend = "anthropic", api_key_id = "apikey_..."}')
        return key_id, f"/v1/organizations/api_keys/{key_id}", f"API key {key_id}"

    def _state(self, path: str, target: str) -> dict[str, Any]:
        obj = self.api.request("GET", path, target) or {}
        return {"status": str(obj.get("status") or "unknown")}

    def read(self, change: Change) -> dict[str, Any]:
        """Current ``{"status": ...}`` of the key (``{"checked": ...}`` for an issue)."""
        if change.action == ISSUE:
            return read_issue(self, change)
        _, path, target = self._ref(change.ref)
        return self._state(path, target)

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """GET the key (read-only) and plan the status change.

        Raises:
            Conflict: Enabling an archived or expired key (one-way states).
        """
        if action not in self.ACTIONS:
            raise AdapterError(f"the anthropic adapter does not offer {action}: the Admin "
                               "API cannot delete keys", where=self.backend,
                               hint="use credential.disable (status inactive)")
        if action == ISSUE:  # rotation: the operator pastes the new key
            return plan_issue(self, ref, ctx)
        if action == RETIRE:  # rotation: the old key goes inactive, as credential.disable
            return retire_changes(self.plan("credential.disable", ref, ctx))
        key_id, path, target = self._ref(ref)
        ctx = plan_context(self, action, ref, ctx)
        name = f"{self.backend}:{target}"
        before = self._state(path, target)
        status = before["status"]
        if action == "credential.disable":
            if status == "inactive" or status in _ONE_WAY:
                return [ctx.change(name, before, before, status=NOOP,
                                   note=f"{target} is already {status}: no call can use it")]
            after = {"status": "inactive"}
            note = (f"sets {target} inactive; undo sets it back to {status}")
        else:
            if status in _ONE_WAY:
                raise Conflict(f"{target} is {status}, which cannot be reactivated",
                               where=self.backend, status=409,
                               hint="issue a new key in the Anthropic console")
            wanted = str(ctx.options.get("status") or "active")
            if status == wanted:
                return [ctx.change(name, before, before, status=NOOP,
                                   note=f"{target} is already {status}")]
            after = {"status": wanted}
            note = f"sets {target} back to {wanted}"
        return [ctx.change(name, before, after, reversible=True,
                           undo={"api_key_id": key_id, "status": status}, note=note)]

    # -- apply / verify / undo ------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST the planned status (idempotent: the same status twice is harmless); for an
        issue, check the pasted key (:func:`adapters.anthropic_rotation.apply_issue`)."""
        if change.action == ISSUE:
            return apply_issue(self, change)
        if change.action == RETIRE:  # the old key goes only once the pasted one works
            guard_retire(self, change)
        _, path, target = self._ref(change.ref)
        self.api.request("POST", path, target, body={"status": change.after["status"]})
        return {"status": change.before.get("status")}

    def verify(self, change: Change) -> Verdict:
        """GET the key and read ``status``; the probe proves it further where a value is known."""
        if change.action == ISSUE:
            return verify_issue(self, change)
        _, path, target = self._ref(change.ref)
        now = self._state(path, target)["status"]
        want = change.after.get("status")
        if now == want:
            word = "restored" if want == "active" else "dead"
            return Verdict(True, word, f"GET {target} reports status {now}")
        word = "live" if now == "active" else "dead"
        return Verdict(False, word, f"GET {target} reports status {now}, expected {want}")

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that sets the status recorded before ``change`` back.

        Raises:
            UndoUnsupported: The change was a no-op.
        """
        if change.action == ISSUE:
            return inverse_issue(self, change, applied)
        if change.action == RETIRE:
            return retire_inverse(change, self.inverse(as_disable(change), applied))
        if change.status == NOOP or not change.reversible:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in the "
                                  "wanted state before this run", where=change.target)
        prior = str(applied.get("status") or change.undo.get("status")
                    or change.before.get("status") or "active")
        back = "credential.enable" if change.action == "credential.disable" \
            else "credential.disable"
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action=back, backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after={"status": prior}, reversible=True,
            undo={**change.undo, "status": change.after.get("status")},
            note=f"sets {change.target} back to {prior}", inverse_of=change.op_id)

    # -- proof of death -------------------------------------------------------------------

    def probe(self, value: str) -> Verdict:
        """``GET /v1/models`` with the key in ``x-api-key``, exactly as an application would."""
        return probe_key(self.api, "/v1/models",
                         {"x-api-key": value, "anthropic-version": self.version}, value)

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: the key's metadata, its usage over the last 24 h and its workspace's
        costs (:mod:`adapters.preserve_llm`); never ``partial_key_hint``."""
        from adapters.preserve_llm import preserve_anthropic

        preserve_anthropic(self, ref, sink)
