"""Rotation in the engine: which references a rotation step acts on, and pasted keys.

The ``rotate`` runbook's steps (``credential.issue`` -> ``credential.write`` ->
``credential.retire``) each name one action kind, and an integration's credential references
mix provider keys and store copies. :func:`skip_reason` tells the planner which references
are not a target of a step at all (a store copy is not issued a key; a provider key is not
written; downstream credentials are not rotated): those get a plan note, never an
"unsupported: will NOT happen" row.

Where the provider cannot issue a key by API (Anthropic), the operator pastes it: the console
prompts, the CLI reads ``--new-key-from FILE`` (:func:`read_key_file`,
:func:`parse_key_file`). :func:`accept_pasted_key` checks that the key is new (its
fingerprint differs from the key every readable store copy holds now) and puts it into
:data:`~adapters.rotation.KEYRING` under the plan's run; :func:`put_pasted_key` is the same
for synchronous callers (the console's prompt). A plan that needs a pasted key and has none
is refused before anything changes (:func:`require_pasted_keys`, exit 3). The value stays in
memory; only its fingerprint is returned.

An integration needs a pasted key when its plan writes store copies and no provider change
of the plan issues the key by API. A provider adapter whose ``credential.issue`` takes the
operator's key marks the change with ``undo["source"] = "pasted"`` (the word of
:attr:`adapters.rotation.NewKey.source`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.base import ERROR, UNSUPPORTED, Change
from adapters.rotation import (
    ISSUE,
    KEYRING,
    RETIRE,
    ROTATION_ACTIONS,
    WRITE,
    NewKey,
    key_fingerprint,
)
from console.errors import AdapterError, ConfigError, Refused, UsageError

if TYPE_CHECKING:
    from console.engine.model import OpResult, Plan
    from console.engine.runtime import Runtime
    from console.engine.service import Session

__all__ = ["MAX_KEY_FILE", "PASTED", "accept_pasted_key", "discard", "parse_key_file",
           "pasted_key_needed", "plan_notes", "put_pasted_key", "read_key_file",
           "require_pasted_keys", "retired_old_key", "skip_reason"]

PASTED = "pasted"
"""``undo["source"]`` of an issue change that takes the operator's pasted key."""
MAX_KEY_FILE = 64 * 1024
"""Largest ``--new-key-from`` file read, bytes."""


def skip_reason(rt: Runtime, integration: str, step_id: str, action: str,
                fields: Mapping[str, Any], role: str | None = None) -> str | None:
    """The plan note when ``fields`` is not a target of a rotation step, else None.

    Downstream credentials (``role = "downstream"``) are never rotated; a reference whose
    adapter does not offer the step's action (a store copy for ``credential.issue``, a
    provider key for ``credential.write``) is simply not this step's target. References
    whose backend cannot be built are left to the planner, which reports them.

    Args:
        rt: The planning runtime (adapters by backend, built without I/O).
        integration: The integration's id.
        step_id: The step's id.
        action: The step's action kind.
        fields: The reference's fields.
        role: The reference's ``role`` when the inventory model keeps it apart from
            ``fields`` (``downstream``: not rotated).
    """
    if action not in ROTATION_ACTIONS:
        return None
    label = f"{fields.get('backend', '?')}:" + "/".join(
        str(v) for k, v in fields.items() if k not in ("backend", "label", "role") and v)
    if (role or fields.get("role")) == "downstream":
        return (f"{integration}: step {step_id}: {label} is a downstream credential; "
                "rotate does not rotate it")
    try:
        adapter = rt.adapter(str(fields.get("backend", "")))
    except ConfigError:
        return None
    if action in adapter.ACTIONS:
        return None
    store = bool(getattr(adapter, "CAN_REVEAL", False))
    what = {ISSUE: "a store copy: it is written, not issued" if store else
            f"{adapter.name} cannot issue keys",
            WRITE: f"not a store copy ({adapter.name} holds no copy to write)",
            RETIRE: "a store copy: its old key is replaced, not retired" if store else
            f"{adapter.name} cannot retire keys"}[action]
    return f"{integration}: step {step_id} skips {label} ({what})"


def retired_old_key(changes: list[Change], results: Mapping[str, OpResult]) -> bool:
    """Whether the proof of death should test an integration's old key after its run.

    True unless the integration's changes retire a key (``rotate``) and none of those retires
    was applied: a rotation that stopped before its retire step left the old key working on
    purpose, and one whose old key was already Inactive has nothing new to prove (the run
    that disabled it proved it). Runs that retire nothing (``kill-switch``) always prove.
    """
    retires = [c.op_id for c in changes if c.action == RETIRE]
    if not retires:
        return True
    return any(str(getattr(results.get(op), "outcome", "")) == "applied" for op in retires)


def pasted_key_needed(plan: Plan) -> list[str]:
    """Integrations of ``plan`` that need a key pasted by the operator.

    Those whose plan writes store copies while no provider change issues the key by API
    (no issue change, or one marked ``undo["source"] = "pasted"``). An issue change that
    could not be planned (an error row) still names a provider that issues keys: its run
    fails there, it needs no paste.
    """
    return _needing_paste(plan.changes, plan.integrations)


def plan_notes(changes: list[Change], integrations: list[str]) -> list[str]:
    """The plan's lines for integrations whose new key the operator pastes, and for those
    with more than one provider key to issue (refused at apply)."""
    notes = [f"{i}: new key: pasted by the operator before the run (no provider key in the "
             "inventory can issue one by API): console prompt, or --new-key-from FILE; it "
             "must differ from the current key" for i in _needing_paste(changes, integrations)]
    return notes + [f"{i}: {n} provider keys would each issue a new key; a rotation replaces "
                    "one key per integration: this run will be refused (rotate with a runbook "
                    "whose steps name one provider's backend)"
                    for i, n in _issuers(changes).items() if n > 1]


def _issuers(changes: list[Change]) -> dict[str, int]:
    count: dict[str, int] = {}
    for c in changes:
        if c.action == ISSUE and c.status not in (UNSUPPORTED, ERROR):
            count[c.integration] = count.get(c.integration, 0) + 1
    return count


def _needing_paste(changes: list[Change], integrations: list[str]) -> list[str]:
    writes: set[str] = set()
    issued: set[str] = set()
    pasted: set[str] = set()
    for c in changes:
        if c.action == WRITE and c.actionable and not c.undo.get("rollback"):
            writes.add(c.integration)
        elif c.action == ISSUE and c.status != UNSUPPORTED:  # an error row is an issuer too
            (pasted if c.undo.get("source") == PASTED else issued).add(c.integration)
    return sorted(i for i in integrations if (i in writes and i not in issued) or i in pasted)


def require_pasted_keys(plan: Plan) -> None:
    """Refuse (before anything changes) a plan whose pasted keys are not in memory, or that
    would issue two new keys for one integration.

    Raises:
        Refused: Some integration needs a pasted key and none was given, or has several
            provider keys that would each issue one (exit 3).
    """
    if plan.restore_of:
        return  # an undo writes back what the copies held before; it takes no new key
    several = sorted(i for i, n in _issuers(plan.changes).items() if n > 1)
    if several:
        raise Refused(f"{', '.join(several)}: more than one provider key would issue a new "
                      "key, and a rotation replaces one key per integration (its new key is "
                      "held once, in memory); nothing was changed",
                      hint="rotate one provider key at a time")
    missing = [i for i in pasted_key_needed(plan) if KEYRING.get(plan.run_id, i) is None]
    if missing:
        raise Refused(
            f"{', '.join(missing)} need(s) a new key pasted by the operator (the provider "
            "cannot issue one by API, or the inventory lists no provider key); nothing was "
            "changed", hint="create the new key at the provider, put it in a file only you "
            "can read (chmod 600) and pass --new-key-from FILE (one INTEGRATION_ID=KEY line "
            "per integration, or the bare key when one integration needs it)")


def discard(run_id: str) -> None:
    """Forget every new key of ``run_id`` (the run ended)."""
    KEYRING.discard(run_id)


def read_key_file(path: str) -> str:
    """The text of a ``--new-key-from`` file, refused when others can read or write it.

    Raises:
        UsageError: Missing, not a regular file, too large, not UTF-8, or its mode lets
            group or others read or write it (exit 2). The content is never quoted.
    """
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise UsageError(f"cannot read the key file {p}: {exc.strerror}", where=str(p),
                         hint="a file holding the new key, readable by you only") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"the key file {p} is not a regular file", where=str(p))
        if st.st_mode & 0o066:
            raise UsageError(f"the key file {p} can be read or written by other users (mode "
                             f"{stat.S_IMODE(st.st_mode):04o})", where=str(p),
                             hint=f"chmod 600 {p}")
        raw = fh.read(MAX_KEY_FILE + 1)
    if len(raw) > MAX_KEY_FILE:
        raise UsageError(f"the key file {p} is larger than {MAX_KEY_FILE} bytes", where=str(p))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the key file {p} is not UTF-8 text", where=str(p)) from exc


def parse_key_file(text: str, needed: list[str], known: list[str], where: str = "") -> dict[
        str, str]:
    """The pasted keys of a ``--new-key-from`` file, by integration.

    The file holds ``INTEGRATION_ID=KEY`` lines (blank lines and ``#`` comments ignored), or
    one bare key (its whole content, stripped) when exactly one integration needs one.

    Args:
        text: The file's content.
        needed: Integrations of the plan that need a pasted key.
        known: Every integration id of the plan (what an ``ID=`` prefix may name).
        where: The file (for errors).

    Raises:
        UsageError: A line names no integration of the plan, a key is empty, a bare key
            while several integrations need one, or keys for integrations that need none
            (exit 2). Key values are never quoted.
    """
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise UsageError("the key file holds no key", where=where)
    pairs: dict[str, str] = {}
    for n, line in lines:
        ident, sep, value = line.partition("=")
        if sep and ident.strip() in known:
            if not value.strip():
                raise UsageError(f"line {n}: the key of {ident.strip()} is empty", where=where)
            pairs[ident.strip()] = value.strip()
    if pairs:
        stray = [n for n, line in lines if line.partition("=")[0].strip() not in pairs]
        if stray:
            raise UsageError(f"line(s) {', '.join(map(str, stray))} of the key file are not "
                             "INTEGRATION_ID=KEY for an integration of this plan",
                             where=where, hint=f"integrations: {', '.join(known)}")
        extra = sorted(set(pairs) - set(needed))
        if extra:
            raise UsageError(f"{', '.join(extra)} need(s) no pasted key: the provider issues "
                             "the new key itself", where=where,
                             hint="drop those lines from the key file")
        return pairs
    if len(needed) != 1:
        raise UsageError(f"the key file holds one bare key, but {len(needed)} integrations "
                         f"need one ({', '.join(needed) or 'none'})", where=where,
                         hint="write one INTEGRATION_ID=KEY line per integration")
    return {needed[0]: "\n".join(line for _, line in lines).strip()}


async def accept_pasted_key(rt: Runtime, plan: Plan, integration: str, value: str) -> str:
    """Check a pasted key and hold it for ``plan``'s run; returns its fingerprint.

    The key must differ from the key the integration has now: every store copy the plan
    writes to is read (in memory) and compared by fingerprint.

    Raises:
        UsageError: Empty, or ``integration`` is not in the plan (exit 2).
        Refused: It is the key the integration has now (exit 3).
    """
    from console.engine.proof import revealer

    value = value.strip()
    if not value:
        raise UsageError(f"the pasted key for {integration} is empty")
    if integration not in plan.integrations:
        raise UsageError(f"{integration} is not an integration of this plan",
                         hint=f"integrations: {', '.join(plan.integrations)}")
    fp = key_fingerprint(value)
    copies: list[Change] = [c for c in plan.changes
                            if c.integration == integration and c.action == WRITE]
    for c in copies:
        try:
            if not getattr(rt.adapter(c.backend), "CAN_REVEAL", False):
                continue
            old = await rt.read_call(c.backend, revealer(c.ref))
        except (AdapterError, ConfigError):
            continue
        same = bool(old) and key_fingerprint(str(old)) == fp
        del old
        if same:
            raise Refused(f"the pasted key for {integration} is the key it has now ({fp}, "
                          f"as {c.target} holds it): nothing was changed",
                          hint="create a NEW key at the provider and paste that one")
    KEYRING.put(plan.run_id, integration, NewKey(value=value, source=PASTED))
    return fp


def put_pasted_key(session: Session, plan: Plan, integration: str, value: str) -> str:
    """:func:`accept_pasted_key` for synchronous callers (the console's paste prompt, run in
    a worker thread): checked against the store copies on the session's runtime; returns the
    key's fingerprint (show that, never the key)."""
    rt = session.runtime.view(run_id=plan.run_id)
    return session.sync(accept_pasted_key(rt, plan, integration, value))
