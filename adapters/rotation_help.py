"""What the rotation steps of several adapters share (the contract is :mod:`adapters.rotation`).

::

    held_key(run, integration)        the run's new key from KEYRING, or None
    missing_key(...)                   the error of a step that needs the new key and has none
    as_disable(change)                 a credential.retire change as the disable it carries out
    retire_changes(changes)            disable changes relabelled credential.retire
    retire_inverse(change, inverse)    the undo of a retire: re-enable the OLD key (consent)
    new_key_in_place(...)              a retire's guard: the new key is held and works
    holds_key(text, fingerprint, ...)  whether a stored text holds the key of a fingerprint

Values stay in memory: these helpers compare fingerprints, never put a value into a change,
an error or a verdict. How a store copy is shaped around the new key is
:func:`adapters.rotation_stores.compose`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from adapters.base import Change, Verdict
from adapters.rotation import KEYRING, RETIRE, NewKey, key_fingerprint
from adapters.secretvalue import pick_value
from console.errors import AdapterError, Conflict

__all__ = ["ISSUED", "NOT_ISSUED", "as_disable", "held_key", "holds_key", "missing_key",
           "new_key_in_place", "retire_changes", "retire_inverse"]

NOT_ISSUED: Mapping[str, bool] = {"issued": False, "held": False}
"""State of an issue step before it ran: no new key at the provider, none in memory."""
ISSUED: Mapping[str, bool] = {"issued": True, "held": True}
"""State once the provider lists the new key and this process holds its value."""


def held_key(run_id: str, integration: str) -> NewKey | None:
    """The new key this process holds for ``integration`` in ``run_id`` (KEYRING), if any."""
    return KEYRING.get(run_id, integration)


def missing_key(integration: str, run_id: str, target: str, where: str) -> AdapterError:
    """The error of a step that needs the run's new key when this process does not hold it.

    Args:
        integration: The integration being rotated.
        run_id: The run (quoted).
        target: What was not written (or checked).
        where: The backend (``where`` of the error).
    """
    return AdapterError(
        f"no new key for {integration} in this process: the new key's value was only in "
        f"memory of the run that issued it (run {run_id or '-'}), and it is not here now (the "
        "run crashed or resumed elsewhere, or no issue step ran first); nothing was written "
        f"to {target}", where=where,
        hint=f"rotate again: killswitch run rotate {integration} (a new key is issued and "
             "written to every copy)")


def new_key_in_place(change: Change, key: NewKey | None, works: Callable[[NewKey], Verdict],
                     where: str) -> None:
    """A retire's guard: the old key dies only once this rotation's new key works.

    Args:
        change: The retire change.
        key: The new key this process holds for the run and integration, if any.
        works: Tests the new key at the provider (``ok`` when it works).
        where: The backend (``where`` of the error).

    Raises:
        Conflict: No new key is held, or it does not work: nothing was changed.
    """
    hint = f"rotate again: killswitch run rotate {change.integration}"
    if key is None:
        raise Conflict(f"no new key of {change.integration} from this rotation is in this "
                       f"process: retiring {change.target} would leave the integration "
                       "without a working key; nothing was changed", where=where,
                       hint=hint + " (revoke-credentials kills the old key on its own)")
    verdict = works(key)
    if not verdict.ok:
        raise Conflict(f"the new key ({key.fingerprint}) does not work ({verdict.detail}): "
                       f"{change.target} stays as it is; nothing was changed", where=where,
                       hint=hint)


def as_disable(change: Change) -> Change:
    """``change`` as ``credential.disable``: a retire is the disable of the old key."""
    return replace(change, action="credential.disable") if change.action == RETIRE else change


def retire_changes(changes: Iterable[Change]) -> list[Change]:
    """Disable changes of the OLD key, relabelled ``credential.retire`` with a note saying so."""
    return [replace(c, action=RETIRE,
                    note=f"rotation: retires the OLD key once the new one is in place; {c.note}"
                    if c.note else "rotation: retires the OLD key")
            for c in changes]


def retire_inverse(change: Change, inverse: Change) -> Change:
    """The undo of a retire (``inverse`` = the undo of the disable it carried out), saying
    that it brings the OLD key back (restore asks for explicit consent)."""
    return replace(inverse, inverse_of=change.op_id, op_id=f"{change.op_id}:undo",
                   note=f"re-enables the OLD key the rotation retired (it may be the leaked "
                   f"one): {inverse.note}")


def holds_key(text: str | None, fingerprint: str, field: str | None = None) -> bool:
    """Whether a stored ``text`` holds the key whose fingerprint is ``fingerprint`` (the whole
    text, or the key picked out of its JSON as ``reveal`` picks it)."""
    if not text or not fingerprint:
        return False
    if key_fingerprint(text) == fingerprint or key_fingerprint(text.strip()) == fingerprint:
        return True
    picked = pick_value(text, field)
    return bool(picked) and key_fingerprint(str(picked)) == fingerprint
