"""Rotation on the openai adapter: ``credential.issue`` creates a new project service account
with its key; ``credential.retire`` is the adapter's disable (a DELETE) of the old key.

Issue: ``POST /organization/projects/{project}/service_accounts`` with the name
``killswitch-rotation-<run>-<integration>``. By default the answer carries the account's first
API key, unredacted, in ``api_key`` (``{object, id, name, created_at, value, expires_at}``,
``ServiceAccountCreateResponse`` in openai-python 3.54 ``types/admin/organization/projects/``;
https://developers.openai.com/api/reference/resources/admin/subresources/organization/
subresources/projects/subresources/service_accounts/methods/create). When the answer has no key
(an organization policy, ``create_service_account_only``), one is created with ``POST
.../service_accounts/{id}/api_keys`` (``APIKeyCreateResponse``, same shape). The value goes
into :data:`~adapters.rotation.KEYRING` only; the change records the key id and fingerprint.

A new *account* rather than a new key on the old one: the old key's retire may delete a whole
service account, which would take a key created on it along.

States (``before`` / ``after`` / :func:`read_issue`): ``{"issued": bool, "held": bool}``:
the project lists the account of this run and integration, and this process holds its key.
An account of the run whose key is not held (its answer was lost to a timeout or a crash) is
worthless, since nobody ever saw its key: apply deletes it and issues again.

Undo of an issue deletes the rotation's account and with it the new key (irreversible, so the
undo change says so); the old key, deleted by retire, cannot come back (OpenAI has no
disable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.base import NOOP, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.rotation import ISSUE, KEYRING, NewKey
from adapters.rotation_help import ISSUED, held_key, new_key_in_place
from console.errors import AdapterError, UndoUnsupported

if TYPE_CHECKING:
    from adapters.openai_admin import OpenAIAdminAdapter

__all__ = ["account_name", "apply_issue", "guard_retire", "inverse_issue", "plan_issue",
           "read_issue", "verify_issue"]


def account_name(run_id: str, integration: str) -> str:
    """The name of the service account a rotation creates: one per run and integration."""
    return f"killswitch-rotation-{run_id or 'norun'}-{integration}"


def _accounts(project: str) -> str:
    return f"/organization/projects/{project}/service_accounts"


def _find(a: OpenAIAdminAdapter, project: str, name: str, target: str) -> dict[str, Any] | None:
    """The project's service account called ``name`` (every page), or None."""
    after = ""
    while True:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        body = a.api.request("GET", _accounts(project), target, params=params) or {}
        for sa in body.get("data") or []:
            if isinstance(sa, dict) and sa.get("name") == name:
                return sa
        after = str(body.get("last_id") or "")
        if not body.get("has_more") or not after:
            return None


def _run(a: OpenAIAdminAdapter, change: Change) -> str:
    return a.run_id or str(change.undo.get("run") or "")


def _held(run: str, integration: str) -> NewKey | None:
    key = held_key(run, integration)
    return key if key is not None and key.source == "issued" else None


def _state(a: OpenAIAdminAdapter, project: str, name: str, run: str, integration: str,
           target: str) -> dict[str, bool]:
    sa = _find(a, project, name, target)
    return {"issued": sa is not None, "held": sa is not None and _held(run, integration)
            is not None}


def plan_issue(a: OpenAIAdminAdapter, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
    """Observe the project (read-only) and plan a new service account with its key."""
    kind, path, old_target, _ = a._ref(ref)
    project = str(ref.get("project") or "").strip()
    ctx = plan_context(a, ISSUE, ref, ctx)
    run = ctx.run_id or a.run_id
    name = account_name(run, ctx.integration)
    target = f"project {project} new service account"
    old = a._state(kind, path, old_target)
    before = _state(a, project, name, run, ctx.integration, target)
    undo = {"project": project, "name": name, "run": run}
    where = f"{a.backend}:{target}"
    if before == dict(ISSUED):
        return [ctx.change(where, before, ISSUED, undo=undo, status=NOOP,
                           note=f"{name} was issued earlier in this run; its key is in memory")]
    note = (f"creates service account {name} in {project} with a new API key (POST "
            f"/organization/projects/{project}/service_accounts); the key's value stays in "
            f"memory for the write steps, the trail gets its id and fingerprint; {old_target} "
            "keeps working until the retire step")
    if not old["exists"]:
        note += f"; {old_target} no longer exists at OpenAI"
    if before["issued"]:
        note += ("; an account of that name from an earlier attempt has a key nobody holds: "
                 "apply deletes it and issues again")
    return [ctx.change(where, before, ISSUED, undo=undo, note=note)]


def read_issue(a: OpenAIAdminAdapter, change: Change) -> dict[str, bool]:
    """``{"issued", "held"}``: the rotation's account exists; this process holds its key."""
    project, name = str(change.undo.get("project")), str(change.undo.get("name"))
    return _state(a, project, name, _run(a, change), change.integration,
                  f"project {project} service account {name}")


def apply_issue(a: OpenAIAdminAdapter, change: Change) -> dict[str, Any]:
    """Create the account (and its key when the answer has none); put the key in KEYRING.

    Idempotent: an account of this run whose key is held is kept; one whose key is lost is
    deleted first (its key was never seen).

    Returns:
        ``{"new_key_id", "fingerprint", "service_account_id", "project", "name"}``.

    Raises:
        AdapterError: OpenAI refused, or answered without an account id or key value.
    """
    project, name = str(change.undo.get("project")), str(change.undo.get("name"))
    run = _run(a, change)
    target = f"project {project} service account {name}"
    found = _find(a, project, name, target)
    key = _held(run, change.integration)
    if found is not None and key is not None:
        return _undo(key, str(found.get("id") or ""), project, name)
    if found is not None:
        a.api.request("DELETE", f"{_accounts(project)}/{found.get('id')}", target,
                      missing_ok=True)
    body = a.api.request("POST", _accounts(project), target, body={"name": name}) or {}
    sa_id = str(body.get("id") or "")
    if not sa_id:
        raise AdapterError(f"OpenAI answered the creation of {target} without an account id",
                           where=a.backend)
    api_key = body.get("api_key") if isinstance(body.get("api_key"), dict) else None
    if not api_key or not api_key.get("value"):
        api_key = a.api.request("POST", f"{_accounts(project)}/{sa_id}/api_keys", target,
                                body={"name": name}) or {}
    value = str(api_key.get("value") or "")
    if not value:
        raise AdapterError(f"OpenAI created service account {sa_id} ({name}) but returned no "
                           "key value", where=a.backend,
                           hint="delete the account in the OpenAI dashboard and rotate again")
    key = NewKey(value=value, key_id=str(api_key.get("id") or ""), source="issued")
    KEYRING.put(run, change.integration, key)
    return _undo(key, sa_id, project, name)


def _undo(key: NewKey, sa_id: str, project: str, name: str) -> dict[str, Any]:
    return {"new_key_id": key.key_id, "fingerprint": key.fingerprint,
            "service_account_id": sa_id, "project": project, "name": name}


def verify_issue(a: OpenAIAdminAdapter, change: Change) -> Verdict:
    """The new key works: ``GET /models`` with it, as an application would, answers 2xx."""
    key = _held(_run(a, change), change.integration)
    if key is None:
        return Verdict(False, "unknown", f"the new key of {change.integration} is not in this "
                       "process's memory: it cannot be tested (rotate again)")
    return _works(a, key)


def guard_retire(a: OpenAIAdminAdapter, change: Change) -> None:
    """Before the old key is deleted (for good): this rotation's new key works.

    Raises:
        Conflict: No new key in memory, or OpenAI refuses it: nothing was deleted.
    """
    new_key_in_place(change, _held(a.run_id, change.integration), lambda k: _works(a, k),
                     a.backend)


def _works(a: OpenAIAdminAdapter, key: NewKey) -> Verdict:
    probe = a.probe(key.value)
    if probe.state == "live":
        return Verdict(True, "works", f"OpenAI GET /models with the new key "
                       f"({key.fingerprint}, id {key.key_id or '?'}) answered 2xx, as an "
                       "application's call would")
    if probe.state == "revoked":
        return Verdict(False, "dead", f"the new key ({key.fingerprint}) is refused: "
                       f"{probe.detail}")
    return Verdict(False, "unknown", probe.detail)


def inverse_issue(a: OpenAIAdminAdapter, change: Change, applied: Mapping[str, Any]) -> Change:
    """Delete the rotation's service account (and so the new key): irreversible.

    Raises:
        UndoUnsupported: Nothing was issued by this change.
    """
    sa_id = str(applied.get("service_account_id") or "")
    if change.status == NOOP or not sa_id:
        raise UndoUnsupported(f"nothing to undo on {change.target}: this step issued no key",
                              where=change.target)
    project = str(applied.get("project") or change.undo.get("project"))
    name = str(applied.get("name") or change.undo.get("name"))
    target = f"project {project} service account {sa_id}"
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action="credential.destroy", backend=change.backend,
        adapter=change.adapter, target=f"{change.backend}:{target}",
        ref={"backend": change.ref.get("backend", change.backend), "project": project,
             "service_account_id": sa_id},
        before={"exists": True, "name": name, "role": "member"}, after={"exists": False},
        reversible=False,
        undo={"project": project, "kind": "service_account", "id": sa_id, "name": name},
        note=f"IRREVERSIBLE: deletes {name} ({target}) that the rotation created, and with it "
        f"the new key {applied.get('fingerprint') or ''}: every copy written with it stops "
        "working", inverse_of=change.op_id)
