"""Rotation on the aws-secrets adapter: ``credential.write`` = the new key as a new AWSCURRENT.

``PutSecretValue`` without ``VersionStages`` gives the new version ``AWSCURRENT`` and moves
``AWSPREVIOUS`` to the version that held it (botocore ``secretsmanager`` service model,
``PutSecretValue``: "If you don't include VersionStages, then Secrets Manager automatically
moves the staging label AWSCURRENT to this version"; "the operation also automatically moves
the staging label AWSPREVIOUS to the version that AWSCURRENT was removed from"). The
``ClientRequestToken`` is derived from the run and the change, so a retried put is ignored
by AWS instead of making a second version.

A JSON secret keeps its other fields (:func:`adapters.rotation_stores.compose`). A secret a
kill-switch left dead is written too: a tombstone's shape is taken from the version it
replaced (read in memory), and a secret scheduled for deletion is restored first
(``RestoreSecret``), then written, in the same change.

States (``before`` / :func:`read_write`)::

    {"version": "<AWSCURRENT id>", "deleted": false, "holds": "the key from before ..."}
    {"version": "<the same id>", "deleted": false, "holds": "the new key of this rotation"}

Undo (restore, with consent: it brings the old key back into the copy) moves ``AWSCURRENT``
back to the version the write replaced (``UpdateSecretVersionStage``); the new version stays,
as ``AWSPREVIOUS``. A secret that was scheduled for deletion stays restored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.aws_common import finish, is_tombstone
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
    from adapters.aws_secrets import SecretsManagerAdapter

__all__ = ["apply_write", "inverse_write", "plan_write", "read_write", "verify_write"]

SERVICE = "Secrets Manager"
CUR = "AWSCURRENT"


def _now(a: SecretsManagerAdapter, secret: str) -> dict[str, Any]:
    st = a._state(secret)
    if not st["exists"]:
        raise NotFound(f"not found in {SERVICE}: {secret}", where=a.backend)
    return {"version": st["current_version"], "deleted": st["deleted"]}


def plan_write(a: SecretsManagerAdapter, ref: Mapping[str, Any],
               ctx: PlanContext) -> list[Change]:
    """Observe the secret's AWSCURRENT version (read-only) and plan the new key's version."""
    from adapters.aws_secrets import TOMBSTONE_PREFIX

    secret = a._secret(ref)
    ctx = plan_context(a, WRITE, ref, ctx)
    with a.aws.errors(secret, SERVICE):
        now = _now(a, secret)
    v = now["version"]
    note = (f"writes the rotation's new key to {secret} as a new version (AWSCURRENT; version "
            f"{v} becomes AWSPREVIOUS)")
    if now["deleted"]:
        note += "; the secret is scheduled for deletion: it is restored first (RestoreSecret)"
    if str(v).startswith(TOMBSTONE_PREFIX):
        note += "; AWSCURRENT is a Killswitch tombstone: the copy's shape is taken from the " \
            "version it replaced"
    return [ctx.change(f"{a.backend}:{secret}", {**now, "holds": OLD}, {**now, "holds": NEW},
                       note=note + "; undo moves AWSCURRENT back to the old version")]


def read_write(a: SecretsManagerAdapter, change: Change) -> dict[str, Any]:
    """:func:`adapters.rotation_stores.write_state` of the secret (or its rollback's state)."""
    secret = a._secret(change.ref)
    with a.aws.errors(secret, SERVICE):
        if change.undo.get("rollback"):
            return {"version": _now(a, secret)["version"]}
        return write_state(change, _now(a, secret), a.run_id, lambda: a._value(secret))


def _base(a: SecretsManagerAdapter, secret: str, value: str | None) -> str | None:
    """The text the new key is composed into: AWSCURRENT's ``value``, or the version a
    tombstone replaced (in memory only)."""
    tomb = is_tombstone(value)
    if tomb is None:
        return value
    back = str(tomb.get("previous_version") or "")
    return a._value(secret, back) if back else None


def apply_write(a: SecretsManagerAdapter, change: Change,
                current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Put the new key as a new AWSCURRENT version (restoring a deleted secret first).

    Returns:
        ``{"previous_version", "new_version", "fingerprint", "restored"}``.

    Raises:
        AdapterError: This process does not hold the new key (nothing is written), or AWS
            refused.
    """
    secret = a._secret(change.ref)
    if change.undo.get("rollback"):
        return _rollback(a, change, secret)
    key = need_key(a.run_id, change, a.backend)
    token = "killswitch-rotation-" + uuid.uuid5(
        uuid.NAMESPACE_URL, f"killswitch:{a.run_id}:{change.op_id}:{secret}").hex
    planned = str(change.before.get("version") or "")
    with a.aws.errors(secret, SERVICE):
        value, version, code = a._read(secret)  # AWSCURRENT, in memory
        restored = False
        if value is None and code == "InvalidRequestException" and change.before.get("deleted"):
            a.sm.restore_secret(SecretId=secret)  # scheduled for deletion, as planned
            restored = True
            value, version, code = finish(lambda: a._read(secret), secret, SERVICE)
        if version != planned:  # the plan's observation may be seconds old: never overwrite
            if holds(value, change.ref, key):  # by this change (a retry): done
                return {"previous_version": planned, "new_version": version,
                        "fingerprint": key.fingerprint, "restored": restored}
            del value
            raise Conflict(f"{secret} changed since the plan: AWSCURRENT is "
                           f"{version or code or '?'}, the plan saw {planned}; nothing was "
                           "written", where=a.backend)
        base = _base(a, secret, value)
        del value
        text = compose(base, change.ref, key)
        del base

        def put(text: str = text) -> Any:
            return a.sm.put_secret_value(SecretId=secret, SecretString=text,
                                         ClientRequestToken=token)

        answer = finish(put, secret, SERVICE) if restored else put()
    return {"previous_version": planned, "new_version": str(answer.get("VersionId")),
            "fingerprint": key.fingerprint, "restored": restored}


def _rollback(a: SecretsManagerAdapter, change: Change, secret: str) -> dict[str, Any]:
    back = str(change.undo["rollback_to"])
    with a.aws.errors(secret, SERVICE):
        cur = _now(a, secret)["version"]
        if cur != back:
            kw = {"RemoveFromVersionId": cur} if cur else {}
            a.sm.update_secret_version_stage(SecretId=secret, VersionStage=CUR,
                                             MoveToVersionId=back, **kw)
    return {"version": back}


def verify_write(a: SecretsManagerAdapter, change: Change) -> Verdict:
    """Read AWSCURRENT as an application would; it must hold the new key (or, for the
    rollback, be the old version again)."""
    secret = a._secret(change.ref)
    with a.aws.errors(secret, SERVICE):
        value, version, code = a._read(secret)
    if change.undo.get("rollback"):
        back = str(change.undo["rollback_to"])
        del value
        if version == back:
            return Verdict(True, "restored", f"AWSCURRENT of {secret} is version {back} again")
        return Verdict(False, "live", f"AWSCURRENT of {secret} is {version or code}, not "
                       f"version {back}")
    out = verdict(change, a.run_id, f"{secret} (AWSCURRENT {version or code})", value, SERVICE)
    del value
    return out


def inverse_write(a: SecretsManagerAdapter, change: Change,
                  applied: Mapping[str, Any]) -> Change:
    """Move AWSCURRENT back to the version the write replaced (the OLD key's).

    Raises:
        UndoUnsupported: Nothing was written.
    """
    back, new = str(applied.get("previous_version") or ""), applied.get("new_version")
    return rollback_of(
        change, applied, before={"version": new}, after={"version": back},
        undo={"rollback_to": back, "from_version": new},
        note=(f"moves AWSCURRENT of {change.target} back to version {back} (the key from "
              f"before the rotation); version {new} (the new key) stays as AWSPREVIOUS"
              + ("; the secret stays restored (it was scheduled for deletion)"
                 if applied.get("restored") else "")))
