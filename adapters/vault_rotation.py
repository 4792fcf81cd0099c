"""Rotation on the vault adapter: ``credential.write`` = the new key as a new KV v2 version.

The write is a check-and-set (``cas`` = the version the engine just read: OpenBao
``website/content/api-docs/secret/kv/kv-v2.mdx``, "If the index is non-zero the write will
only be allowed if the key's current version matches the version specified in the cas
parameter"), so a version written by someone else meanwhile is never overwritten: Vault
refuses the write, the engine reads again and refuses the change as drift.

The secret's other fields are kept (:func:`adapters.rotation_stores.compose`); when its
current version is deleted or destroyed (a kill-switch ran), the shape comes from the newest
version still readable (read in memory only). Only ``kind = "kv"`` references hold a key.

States (``before`` / :func:`read_write`)::

    {"version": 3, "deleted": false, "destroyed": false,
     "holds": "the key from before this rotation"}
    {"version": 3, ..., "holds": "the new key of this rotation"}          # after

Undo (restore, with consent) writes the data of the version the rotation replaced back as a
new version (read into memory, never kept), with check-and-set again; a version that was
deleted or destroyed cannot be put back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import hvac.exceptions

from adapters.base import Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.rotation import WRITE
from adapters.rotation_stores import (
    NEW,
    OLD,
    compose,
    holds,
    need_key,
    rollback_of,
    verdict,
    write_state,
)
from adapters.secretvalue import json_object
from console.errors import AdapterError, Conflict, UndoUnsupported

if TYPE_CHECKING:
    from adapters.vault import VaultAdapter

__all__ = ["apply_write", "inverse_write", "plan_write", "read_write", "verify_write"]


def _kv(a: VaultAdapter, ref: Mapping[str, Any]) -> tuple[str, str, str]:
    kind, ids, target = a._ref(ref)
    if kind != "kv":
        raise AdapterError(f"{target} is a Vault {kind}, not a KV v2 secret: it cannot hold "
                           "a new key", where=a.backend)
    return ids["mount"], ids["path"], target


def _data(a: VaultAdapter, mount: str, path: str, version: int) -> dict[str, Any] | None:
    """The data of one version, in memory only; None when deleted, destroyed or missing."""
    try:
        resp = a.client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, version=version, raise_on_deleted_version=False)
    except hvac.exceptions.InvalidPath:
        return None
    data = (resp.get("data") or {}).get("data")
    return dict(data) if isinstance(data, dict) else None


def _text(data: Mapping[str, Any] | None) -> str | None:
    return json.dumps(dict(data)) if data is not None else None


def plan_write(a: VaultAdapter, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
    """Observe the secret's current version (read-only) and plan the new key's version."""
    mount, path, target = _kv(a, ref)
    ctx = plan_context(a, WRITE, ref, ctx)
    with a._errors(target):
        now = a._kv_state(mount, path)
    v = now["version"]
    note = (f"writes the rotation's new key to {target} as version {v + 1} (check-and-set "
            f"on version {v})")
    if now["deleted"] or now["destroyed"]:
        note += f"; version {v} is deleted: the value's shape comes from the newest " \
            "readable version"
    return [ctx.change(f"{a.backend}:{target}", {**now, "holds": OLD}, {**now, "holds": NEW},
                       note=note + "; undo writes the old data back as a new version")]


def read_write(a: VaultAdapter, change: Change) -> dict[str, Any]:
    """:func:`adapters.rotation_stores.write_state` (or the rollback's comparison)."""
    mount, path, target = _kv(a, change.ref)
    with a._errors(target):
        now = a._kv_state(mount, path)
        if change.undo.get("rollback"):
            back = int(change.undo["rollback_to"])
            same = _data(a, mount, path, now["version"]) == _data(a, mount, path, back)
            return _rollback_state(back) if same else {"version": now["version"]}
        return write_state(change, now, a.run_id,
                           lambda: _text(_data(a, mount, path, now["version"])))


def _rollback_state(back: int) -> dict[str, Any]:
    return {"holds": f"the data of version {back}"}


def _base(a: VaultAdapter, mount: str, path: str, current: int) -> dict[str, Any] | None:
    """The data the new key is composed into: the newest readable version's (in memory)."""
    for v in range(current, 0, -1):
        data = _data(a, mount, path, v)
        if data is not None:
            return data
    return None


def apply_write(a: VaultAdapter, change: Change,
                current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the new key as a new version, check-and-set on the version read.

    Returns:
        ``{"previous_version", "new_version", "fingerprint", "previous_readable"}``.

    Raises:
        AdapterError: This process does not hold the new key (nothing is written), or Vault
            refused (a version written meanwhile fails the check-and-set).
    """
    mount, path, target = _kv(a, change.ref)
    if change.undo.get("rollback"):
        return _rollback(a, change, mount, path, target)
    key = need_key(a.run_id, change, a.backend)
    cv = int(change.before.get("version") or 0)
    with a._errors(target):
        now = int(a._kv_state(mount, path)["version"])
        if now != cv:  # written since the plan: by this change (a retry), or by someone else
            if holds(_text(_data(a, mount, path, now)), change.ref, key):
                return {"previous_version": cv, "new_version": now,
                        "fingerprint": key.fingerprint, "previous_readable": True}
            raise Conflict(f"{target} changed since the plan: version {now}, the plan saw "
                           f"{cv}; nothing was written", where=a.backend)
        base = _base(a, mount, path, cv)
        readable = base is not None and _data(a, mount, path, cv) is not None
        data = json_object(compose(_text(base), change.ref, key))
        if data is None:  # KV v2 holds objects: a bare key goes into its field
            field = str(change.ref.get("field") or "api_key")
            data = {field: key.value, **dict(key.fields)}
        del base
        resp = a.client.secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, cas=cv, mount_point=mount)
        del data
    version = int(((resp or {}).get("data") or {}).get("version") or 0)
    return {"previous_version": cv, "new_version": version, "fingerprint": key.fingerprint,
            "previous_readable": readable}


def _rollback(a: VaultAdapter, change: Change, mount: str, path: str,
              target: str) -> dict[str, Any]:
    back = int(change.undo["rollback_to"])
    with a._errors(target):
        cv = int(a._kv_state(mount, path)["version"])
        old = _data(a, mount, path, back)
        if old is None:
            raise AdapterError(f"version {back} of {target} is deleted or destroyed: its data "
                               "cannot be put back", where=a.backend)
        if _data(a, mount, path, cv) != old:
            a.client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=old, cas=cv, mount_point=mount)
        del old
    return {"restore_version": back}


def verify_write(a: VaultAdapter, change: Change) -> Verdict:
    """Read the current version as an application would: it must hold the new key (or, for
    the rollback, the old data again)."""
    mount, path, target = _kv(a, change.ref)
    with a._errors(target):
        cv = int(a._kv_state(mount, path)["version"])
        if change.undo.get("rollback"):
            back = int(change.undo["rollback_to"])
            same = _data(a, mount, path, cv) == _data(a, mount, path, back)
            if same:
                return Verdict(True, "restored", f"{target} holds the data of version {back} "
                               f"again (as version {cv})")
            return Verdict(False, "live", f"{target} version {cv} does not hold the data of "
                           f"version {back}")
        text = _text(_data(a, mount, path, cv))
    out = verdict(change, a.run_id, f"{target} (version {cv})", text, "Vault")
    del text
    return out


def inverse_write(a: VaultAdapter, change: Change, applied: Mapping[str, Any]) -> Change:
    """Write the data of the version the rotation replaced back, as a new version.

    Raises:
        UndoUnsupported: Nothing was written, or the replaced version was not readable (a
            deleted version cannot be put back).
    """
    back, new = int(applied.get("previous_version") or 0), applied.get("new_version")
    if new and not applied.get("previous_readable", True):
        raise UndoUnsupported(f"{change.target}: version {back} was already deleted when the "
                              "rotation wrote the new key; there is nothing to put back",
                              where=change.target)
    return rollback_of(
        change, applied, before={"version": new}, after=_rollback_state(back),
        undo={"rollback_to": back},
        note=f"writes the data of version {back} of {change.target} (from before the "
        "rotation) back as a new version")
