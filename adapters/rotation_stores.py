"""What the ``credential.write`` steps of the secret stores share (aws-secrets, aws-ssm, vault).

A write puts the run's new key (:data:`~adapters.rotation.KEYRING`) into one store copy as a
new version, keeping the copy's shape (:func:`compose`). Its states never hold a value::

    before  {"version": <id the plan saw>, ..., "holds": "the key from before this rotation"}
    after   {"version": <id the plan saw>, ..., "holds": "the new key of this rotation"}

The state is the copy relative to the plan: ``version`` (and ``deleted`` ...) is the version
the write starts from, ``holds`` what the copy holds. :func:`write_state` is every store's
``read``: the planned state while the copy's version is the one the plan saw (a version's
value never changes), the ``after`` state once the copy holds the new key (compared in memory,
:func:`holds`), and otherwise the version found with why it does not hold the new key (another
value was written since the plan, or this process does not hold the new key), which the
engine refuses as drift.

A write step without the new key in memory (the run that issued it stopped) writes nothing and
fails (:func:`need_key`): rotate again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import Change, Verdict
from adapters.rotation import KEYRING, NewKey, key_fingerprint
from adapters.secretvalue import PREFERRED_FIELDS, json_object, pick_value
from console.errors import AdapterError, UndoUnsupported

__all__ = ["LOST", "NEW", "OLD", "OTHER", "compose", "fingerprint_of", "held", "holds",
           "need_key", "rollback_of", "unknown", "verdict", "write_state"]

OLD = "the key from before this rotation"
NEW = "the new key of this rotation"
OTHER = "another value, written since the plan"
LOST = ("unknown: the new key's value is not in this process's memory (the run that issued "
        "it stopped): rotate again")


def held(run: str, change: Change) -> NewKey | None:
    """The run's new key for the change's integration, if this process holds it."""
    return KEYRING.get(run, change.integration)


def need_key(run: str, change: Change, where: str) -> NewKey:
    """The run's new key, or the error of a write that has none (nothing is written).

    Raises:
        AdapterError: This process does not hold the new key.
    """
    key = held(run, change)
    if key is None:
        raise AdapterError(
            f"nothing was written to {change.target}: the new key's value was only in memory "
            f"and the run that issued it stopped (or no issue step ran first); rotate again: "
            f"killswitch run rotate {change.integration}", where=where,
            hint="a rotation that stopped after its issue step left a new key at the provider "
                 "that nobody holds: deactivate or delete it there")
    return key


def _slot(data: Mapping[str, Any], field: str | None) -> str | None:
    """The field of a stored JSON object that holds the key, as ``reveal`` picks it:
    ``field``, else the only string field, else the first usual name present."""
    if field:
        return field
    strings = [k for k, v in data.items() if isinstance(v, str) and v]
    if len(strings) == 1:
        return strings[0]
    return next((name for name in PREFERRED_FIELDS if name in strings), None)


def compose(current: str | None, ref: Mapping[str, Any], key: NewKey) -> str:
    """The text the copy holds once ``key`` is written, keeping its shape.

    * A key that is itself a JSON document (a service-account key file) replaces the text.
    * A JSON copy keeps its other fields: the referenced ``field``, else the field ``reveal``
      picks, gets the value, and every part of ``key.fields`` the copy holds is replaced too
      (an AWS access key id next to its secret). A copy holding only such parts
      (``aws_access_key_id`` + ``aws_secret_access_key``) gets no extra field; one holding
      neither gets ``api_key``.
    * A copy holding nothing readable becomes ``{field: value, **key.fields}`` when the
      reference names a field; anything else becomes the bare value.
    """
    field = str(ref.get("field") or "") or None
    if json_object(key.value) is not None:
        return key.value
    data = json_object(current) if current else None
    if data is None:
        if current is None and field:
            return json.dumps({field: key.value, **dict(key.fields)})
        return key.value
    slot = _slot(data, field)
    parts = {n: v for n, v in key.fields.items() if n in data}
    data.update(parts)
    if slot is not None and slot not in parts:
        data[slot] = key.value
    elif slot is None and not parts:
        data[PREFERRED_FIELDS[0]] = key.value
    return json.dumps(data)


def holds(current: str | None, ref: Mapping[str, Any], key: NewKey) -> bool:
    """Whether the copy's text already holds ``key`` everywhere :func:`compose` puts it."""
    if current is None:
        return False
    want = compose(current, ref, key)
    a, b = json_object(current), json_object(want)
    if a is not None and b is not None:
        return a == b
    return current.strip() == want.strip()


def fingerprint_of(current: str | None, ref: Mapping[str, Any]) -> str:
    """The fingerprint of the key a copy's text holds (as ``reveal`` picks it), or ``""``."""
    picked = pick_value(current, str(ref.get("field") or "") or None) if current else None
    return key_fingerprint(picked) if picked else ""


def write_state(change: Change, now: Mapping[str, Any], run: str,
                value: Callable[[], str | None]) -> dict[str, Any]:
    """A store's ``read`` of a write change.

    Args:
        change: The write change.
        now: The copy's version state now, in the shape of ``change.before`` without
            ``holds`` (``{"version": ..., "deleted": ...}``).
        run: The run (whose new key is compared).
        value: Reads the copy's current text (in memory), called only when needed.
    """
    planned = {k: v for k, v in change.before.items() if k != "holds"}
    if dict(now) == planned:
        return dict(change.before)  # the version the plan saw: the old value, unchanged
    key = held(run, change)
    if key is not None and holds(value(), change.ref, key):
        return {**planned, "holds": NEW}
    return {**now, "holds": OTHER if key is not None else LOST}


def verdict(change: Change, run: str, target: str, text: str | None, where: str) -> Verdict:
    """Verify of a write: the copy, read as an application reads it, holds the new key."""
    key = held(run, change)
    if key is None:
        return unknown(change, target)
    if text is None:
        return Verdict(False, "dead", f"{where}: a read of {target} fails")
    if holds(text, change.ref, key):
        return Verdict(True, "written", f"{where}: {target} holds the new key "
                       f"({key.fingerprint}), as a read by an application returns it")
    got = fingerprint_of(text, change.ref) or "no key"
    return Verdict(False, "old", f"{where}: {target} holds {got}, not the new key "
                   f"({key.fingerprint})")


def unknown(change: Change, target: str) -> Verdict:
    """The verdict of a write checked by a process that does not hold the new key."""
    return Verdict(False, "unknown", f"{target} cannot be compared with the new key of "
                   f"{change.integration}: {LOST}")


def rollback_of(change: Change, applied: Mapping[str, Any], *, before: Mapping[str, Any],
                after: Mapping[str, Any], undo: Mapping[str, Any], note: str) -> Change:
    """The undo of a write: a ``credential.write`` that puts the previous version back.

    Raises:
        UndoUnsupported: The write wrote no version.
    """
    if applied.get("new_version") in (None, ""):
        raise UndoUnsupported(f"nothing to undo on {change.target}: no version was written",
                              where=change.target)
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action=change.action, backend=change.backend,
        adapter=change.adapter, target=change.target, ref=dict(change.ref),
        before=dict(before), after=dict(after), reversible=True,
        undo={"rollback": True, **undo}, note=note, inverse_of=change.op_id)
