"""Rotation on the aws-ssm adapter: ``credential.write`` = ``PutParameter Overwrite=True``.

The new key is put with the parameter's current ``Type`` (``String`` stays ``String``,
``SecureString`` keeps its KMS key) and ``Tier`` (an Advanced parameter cannot be put back as
Standard), as the adapter's tombstone put does (:meth:`SsmParameterAdapter._put`). A JSON
value keeps its other fields; a Killswitch tombstone's shape is taken from the version it
replaced. Values are read from ``GetParameterHistory`` (decrypted, in memory only).

States (``before`` / :func:`read_write`)::

    {"version": 3, "tombstone": false, "holds": "the key from before this rotation"}
    {"version": 3, "tombstone": false, "holds": "the new key of this rotation"}  # after

Undo (restore, with consent) puts the value of the version the write replaced back (a new
version again; its state is the adapter's ``value_version``: the first version holding the
current value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.aws_common import digest, is_tombstone
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
from console.errors import Conflict, NotFound

if TYPE_CHECKING:
    from adapters.aws_ssm import SsmParameterAdapter

__all__ = ["apply_write", "inverse_write", "plan_write", "read_write", "verify_write"]

SERVICE = "SSM Parameter Store"


def _history(a: SsmParameterAdapter, name: str) -> list[dict[str, Any]]:
    history = a._history(name)
    if history is None:
        raise NotFound(f"not found in {SERVICE}: {name}", where=a.backend)
    return history


def _now(history: list[dict[str, Any]]) -> dict[str, Any]:
    last = history[-1]
    return {"version": int(last["Version"]), "tombstone": is_tombstone(last.get("Value"))
            is not None}


def plan_write(a: SsmParameterAdapter, ref: Mapping[str, Any],
               ctx: PlanContext) -> list[Change]:
    """Observe the parameter's newest version (read-only) and plan the new key's version."""
    name = a._name(ref)
    ctx = plan_context(a, WRITE, ref, ctx)
    with a.aws.errors(name, SERVICE):
        history = _history(a, name)
    now, kind = _now(history), str(history[-1].get("Type") or "SecureString")
    del history  # values are never kept
    note = (f"writes the rotation's new key to {name} (PutParameter Overwrite, {kind}, same "
            f"KMS key and tier: version {now['version'] + 1})")
    if now["tombstone"]:
        note += "; it holds a Killswitch tombstone: the value's shape is taken from the " \
            "version the tombstone replaced"
    return [ctx.change(f"{a.backend}:{name}", {**now, "holds": OLD}, {**now, "holds": NEW},
                       note=note + "; undo puts the old value back")]


def read_write(a: SsmParameterAdapter, change: Change) -> dict[str, Any]:
    """:func:`adapters.rotation_stores.write_state` (or the rollback's ``value_version``)."""
    name = a._name(change.ref)
    with a.aws.errors(name, SERVICE):
        history = _history(a, name)
    if change.undo.get("rollback"):
        return {"value_version": a._value_version(history)}
    now, last = _now(history), history[-1].get("Value")
    del history  # only the newest value is kept, for the comparison below
    return write_state(change, now, a.run_id,
                       lambda: str(last) if last is not None else None)


def _value_version_of(history: list[dict[str, Any]], version: int) -> int:
    """The first version holding the value that ``version`` holds (the adapter's
    ``value_version`` of that value), or ``version`` when it is gone from the history."""
    mine = next((digest(p.get("Value")) for p in history if int(p["Version"]) == version), None)
    if mine is None:
        return version
    return next(int(p["Version"]) for p in history if digest(p.get("Value")) == mine)


def _base(history: list[dict[str, Any]]) -> str | None:
    """The text the new key is composed into: the newest value, or the one a tombstone
    replaced (in memory only)."""
    value = history[-1].get("Value")
    tomb = is_tombstone(value)
    if tomb is None:
        return str(value) if value is not None else None
    back = int(tomb.get("previous_version") or 0)
    prior = next((p for p in history if int(p["Version"]) == back), None)
    return str(prior["Value"]) if prior is not None and prior.get("Value") is not None \
        else None


def apply_write(a: SsmParameterAdapter, change: Change,
                current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Overwrite the parameter with the new key (same type, KMS key and tier).

    Returns:
        ``{"previous_version", "previous_value_version", "new_version", "fingerprint"}``.

    Raises:
        AdapterError: This process does not hold the new key (nothing is written), or AWS
            refused.
    """
    name = a._name(change.ref)
    if change.undo.get("rollback"):
        return _rollback(a, change, name)
    key = need_key(a.run_id, change, a.backend)
    with a.aws.errors(name, SERVICE):
        history = _history(a, name)
        last = history[-1]
        planned = int(change.before.get("version") or 0)
        if int(last["Version"]) != planned:  # the plan's observation may be seconds old
            done = holds(str(last.get("Value") or ""), change.ref, key)
            version, value_version = int(last["Version"]), _value_version_of(history, planned)
            del history, last
            if done:  # by this change (a retry)
                return {"previous_version": planned, "previous_value_version": value_version,
                        "new_version": version, "fingerprint": key.fingerprint}
            raise Conflict(f"{name} changed since the plan: its newest version is not "
                           f"{planned}; nothing was written", where=a.backend)
        meta = {k: last[k] for k in ("Type", "KeyId", "Tier") if last.get(k)}
        text = compose(_base(history), change.ref, key)
        previous, value_version = planned, _value_version_of(history, planned)
        del history, last
        version = a._put(name, text, meta)
        del text
    return {"previous_version": previous, "previous_value_version": value_version,
            "new_version": version, "fingerprint": key.fingerprint}


def _rollback(a: SsmParameterAdapter, change: Change, name: str) -> dict[str, Any]:
    back = int(change.undo["rollback_to"])
    with a.aws.errors(name, SERVICE):
        history = _history(a, name)
        last = history[-1]
        prior = next((p for p in history if int(p["Version"]) == back), None)
        if prior is None:
            raise NotFound(f"version {back} of {name} is no longer in the parameter history "
                           "(Parameter Store keeps 100 versions)", where=a.backend)
        if digest(prior.get("Value")) != digest(last.get("Value")):
            meta = {k: last[k] for k in ("Type", "KeyId", "Tier") if last.get(k)}
            a._put(name, str(prior["Value"]), meta)
        del prior, history, last
    return {"restore_version": back}


def verify_write(a: SsmParameterAdapter, change: Change) -> Verdict:
    """Read the newest version as ``GetParameter WithDecryption`` returns it: it must hold the
    new key (or, for the rollback, the old value again)."""
    name = a._name(change.ref)
    with a.aws.errors(name, SERVICE):
        history = a._history(name)
    if history is None:
        return Verdict(False, "dead", f"a read of {name} fails: ParameterNotFound")
    if change.undo.get("rollback"):
        vv, want = a._value_version(history), int(change.after.get("value_version") or 0)
        del history
        if vv == want:
            return Verdict(True, "restored", f"{name} holds the value of version {want} again")
        return Verdict(False, "live", f"{name} holds the value of version {vv}, not {want}")
    last = history[-1]
    value, version = last.get("Value"), last.get("Version")
    del history, last
    out = verdict(change, a.run_id, f"{name} (version {version})",
                  str(value) if value is not None else None, SERVICE)
    del value
    return out


def inverse_write(a: SsmParameterAdapter, change: Change, applied: Mapping[str, Any]) -> Change:
    """Put the value of the version the write replaced back.

    Raises:
        UndoUnsupported: Nothing was written.
    """
    back, new = int(applied.get("previous_version") or 0), applied.get("new_version")
    vv = int(applied.get("previous_value_version") or back)
    return rollback_of(
        change, applied, before={"value_version": new}, after={"value_version": vv},
        undo={"rollback_to": back},
        note=f"puts the value of version {back} of {change.target} (from before the "
        "rotation) back as a new version")
