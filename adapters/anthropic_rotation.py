"""Rotation on the anthropic adapter: the new key is pasted by the operator, then checked.

The Admin API cannot create API keys: it lists, retrieves and updates them only
(``client.organization.api_keys`` in anthropic-sdk-python 2.12 has ``retrieve``, ``update`` and
``list``, no ``create``; keys are created in the Claude Console, Settings -> API keys,
https://platform.claude.com/docs/en/get-api-key). So ``credential.issue`` plans as an observed
step whose note says the run waits for the operator's paste (console prompt; headless
``--new-key-from FILE``), and at apply takes the pasted key from
:data:`~adapters.rotation.KEYRING` and checks it:

* it is not the old key: the old key's ``partial_key_hint`` (``sk-ant-api03-R2D...igAA`` in
  Anthropic's docs) must not match the pasted value's start and end;
* it works: ``GET /v1/models`` with it answers 2xx (:meth:`probe`);
* its id, when exactly one active key's hint matches it, is recorded (undo sets that key
  inactive; without an id the undo is left to the Console).

No pasted key fails clearly and changes nothing. ``credential.retire`` sets the OLD key
inactive, as ``credential.disable`` does (undo: active again, only with consent).

States (``before`` / ``after`` / :func:`read_issue`): ``{"checked": bool}``: this process
holds a pasted key for the run and integration that passed the checks. Pasting after the plan
is not drift: the state only changes when apply has checked the key.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.base import NOOP, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.rotation import ISSUE, KEYRING, NewKey
from adapters.rotation_help import held_key, new_key_in_place
from console.errors import AdapterError, Unavailable, UndoUnsupported

if TYPE_CHECKING:
    from adapters.anthropic_admin import AnthropicAdminAdapter

__all__ = ["PASTE_NOTE", "apply_issue", "guard_retire", "hint_matches", "inverse_issue",
           "plan_issue", "read_issue", "verify_issue"]

PASTE_NOTE = ("Anthropic cannot issue keys by API: the run waits for the operator to paste the "
              "new key (console prompt; headless --new-key-from FILE)")

_CHECKED: dict[tuple[str, str, str], str] = {}
"""(backend, run, integration) -> fingerprint of the pasted key that passed the checks."""
_LOCK = threading.Lock()


def hint_matches(hint: Any, value: str) -> bool:
    """Whether a ``partial_key_hint`` (``start...end``) could be the hint of ``value``."""
    if not isinstance(hint, str) or not value:
        return False
    for sep in ("...", "\u2026"):
        if sep in hint:
            start, _, end = hint.partition(sep)
            return bool(start) and bool(end) and len(start) + len(end) >= 6 and \
                value.startswith(start) and value.endswith(end)
    return False


def _run(a: AnthropicAdminAdapter, change: Change) -> str:
    return a.run_id or str(change.undo.get("run") or "")


def _checked(backend: str, run: str, integration: str) -> bool:
    key = held_key(run, integration)
    with _LOCK:
        return key is not None and _CHECKED.get((backend, run, integration)) == key.fingerprint


def plan_issue(a: AnthropicAdminAdapter, ref: Mapping[str, Any],
               ctx: PlanContext) -> list[Change]:
    """Observe the old key (read-only) and plan the wait for the operator's paste."""
    key_id, path, target = a._ref(ref)
    ctx = plan_context(a, ISSUE, ref, ctx)
    run = ctx.run_id or a.run_id
    old = a.api.request("GET", path, target, missing_ok=True)
    before = {"checked": _checked(a.backend, run, ctx.integration)}
    where = f"{a.backend}:new key replacing {target}"
    undo = {"run": run, "old_key_id": key_id, "source": "pasted"}  # the engine asks for it
    if before["checked"]:
        return [ctx.change(where, before, {"checked": True}, undo=undo, status=NOOP,
                           note=f"the pasted key was checked earlier in this run; {PASTE_NOTE}")]
    pasted = held_key(run, ctx.integration)
    note = (f"{PASTE_NOTE}; create it in the Claude Console (Settings -> API keys) in the "
            f"workspace of {target}; apply checks that it is not the old key and that it "
            "works (GET /v1/models) before any copy is written")
    if pasted is not None:
        note += f"; a key is pasted already ({pasted.fingerprint})"
    if old is None:
        note += f"; {target} no longer exists at Anthropic"
    return [ctx.change(where, before, {"checked": True}, undo=undo, note=note)]


def read_issue(a: AnthropicAdminAdapter, change: Change) -> dict[str, bool]:
    """``{"checked": bool}`` (no provider call: the state is this process's memory)."""
    return {"checked": _checked(a.backend, _run(a, change), change.integration)}


def _find(a: AnthropicAdminAdapter, value: str) -> list[str]:
    """Ids of active keys whose hint matches ``value`` (every page)."""
    found, after = [], ""
    while True:
        params: dict[str, Any] = {"status": "active", "limit": 1000,
                                  **({"after_id": after} if after else {})}
        body = a.api.request("GET", "/v1/organizations/api_keys", "the organization's API keys",
                             params=params) or {}
        found += [str(k.get("id")) for k in body.get("data") or []
                  if isinstance(k, dict) and hint_matches(k.get("partial_key_hint"), value)]
        after = str(body.get("last_id") or "")
        if not body.get("has_more") or not after:
            return found


def apply_issue(a: AnthropicAdminAdapter, change: Change) -> dict[str, Any]:
    """Check the pasted key (new, working), record its id when found; changes nothing.

    Returns:
        ``{"new_key_id", "fingerprint"}`` (the id "" when no listed key matches it).

    Raises:
        AdapterError: No key pasted, the old key pasted again, or a key Anthropic refuses.
        Unavailable: The key could not be tested (retryable).
    """
    run, integration = _run(a, change), change.integration
    old_id = str(change.undo.get("old_key_id") or "")
    key = held_key(run, integration)
    if key is None:
        raise AdapterError(f"no new key was pasted for {integration}: {PASTE_NOTE}; nothing "
                           "was changed", where=a.backend,
                           hint="create a key in the Claude Console (Settings -> API keys), "
                           "then paste it when the console asks, or run headless with "
                           "--new-key-from FILE")
    old = a.api.request("GET", f"/v1/organizations/api_keys/{old_id}", f"API key {old_id}",
                        missing_ok=True) or {}
    ids = _find(a, key.value)
    if hint_matches(old.get("partial_key_hint"), key.value) or old_id in ids:
        raise AdapterError(f"the pasted key ({key.fingerprint}) is the OLD key {old_id}: a "
                           "rotation needs a new one; nothing was changed", where=a.backend,
                           hint="create a new key in the Claude Console and paste that")
    probe = a.probe(key.value)
    if probe.state == "revoked":
        raise AdapterError(f"the pasted key ({key.fingerprint}) is refused by Anthropic: "
                           f"{probe.detail}; nothing was changed", where=a.backend,
                           hint="paste an active key of the integration's workspace")
    if probe.state != "live":
        raise Unavailable(f"the pasted key ({key.fingerprint}) could not be tested: "
                          f"{probe.detail}", where=a.backend)
    new_id = ids[0] if len(ids) == 1 else ""
    KEYRING.put(run, integration, NewKey(key.value, key_id=new_id or key.key_id,
                                         fields=key.fields, source=key.source))
    with _LOCK:
        _CHECKED[(a.backend, run, integration)] = key.fingerprint
    return {"new_key_id": new_id, "fingerprint": key.fingerprint}


def guard_retire(a: AnthropicAdminAdapter, change: Change) -> None:
    """Before the old key goes inactive: the pasted key works (``GET /v1/models``).

    Raises:
        Conflict: No pasted key in memory, or Anthropic refuses it: nothing was changed.
    """
    def works(key: NewKey) -> Verdict:
        probe = a.probe(key.value)
        return Verdict(probe.state == "live", probe.state, probe.detail)

    new_key_in_place(change, held_key(a.run_id, change.integration), works, a.backend)


def verify_issue(a: AnthropicAdminAdapter, change: Change) -> Verdict:
    """The pasted key works (``GET /v1/models``) and, when its id is known, is active."""
    key = held_key(_run(a, change), change.integration)
    if key is None:
        return Verdict(False, "unknown", f"no pasted key of {change.integration} in this "
                       "process's memory: it cannot be tested")
    probe = a.probe(key.value)
    if probe.state != "live":
        return Verdict(False, "dead" if probe.state == "revoked" else "unknown",
                       f"the new key ({key.fingerprint}): {probe.detail}")
    status = ""
    if key.key_id:
        got = a.api.request("GET", f"/v1/organizations/api_keys/{key.key_id}",
                            f"API key {key.key_id}", missing_ok=True) or {}
        status = f"; the Admin API lists it as {key.key_id}, {got.get('status') or 'missing'}"
        if got.get("status") != "active":
            return Verdict(False, "dead", f"the new key ({key.fingerprint}) works but{status}")
    return Verdict(True, "works", f"Anthropic GET /v1/models with the new key "
                   f"({key.fingerprint}) answered 2xx, as an application's call would{status}")


def inverse_issue(a: AnthropicAdminAdapter, change: Change,
                  applied: Mapping[str, Any]) -> Change:
    """Set the pasted key inactive, when its id was found.

    Raises:
        UndoUnsupported: The key's id is unknown (deactivate it in the Console).
    """
    new_id = str(applied.get("new_key_id") or "")
    if change.status == NOOP or not new_id:
        raise UndoUnsupported(f"the new key of {change.integration} was pasted and no listed "
                              "key could be matched to it", where=change.target,
                              hint="set it inactive in the Claude Console if it must go")
    target = f"API key {new_id}"
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action="credential.disable", backend=change.backend,
        adapter=change.adapter, target=f"{change.backend}:{target}",
        ref={"backend": change.ref.get("backend", change.backend), "api_key_id": new_id},
        before={"status": "active"}, after={"status": "inactive"}, reversible=True,
        undo={"api_key_id": new_id, "status": "active"},
        note=f"sets the NEW key {new_id} ({applied.get('fingerprint') or ''}) pasted for the "
        "rotation inactive: copies written with it stop working", inverse_of=change.op_id)
