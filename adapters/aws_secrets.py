"""AWS Secrets Manager adapter (boto3): stop readers of a stored key copy, reversibly.

Default method: ``schedule-deletion``. Scheduled deletion makes every read of the secret
(any version, any stage) fail at once with an explicit "marked deleted" error, so
applications notice immediately instead of carrying a bogus value to the provider, and
``RestoreSecret`` brings back exactly the same version ids and stages with nothing lost
within the recovery window (default 7 days, the plan states the deletion date). Choose
``tombstone`` per credential when the secret must stay present (replicated secrets cannot be
deleted, or an application crash-loops on a missing secret); it moves ``AWSCURRENT`` to a
tombstone value and undo moves it back, but the old value stays readable by version id or
``AWSPREVIOUS``. Tombstone versions are named ``killswitch-tombstone-<32 hex>``, so a plan
knows an already-tombstoned secret from ``DescribeSecret`` alone (one read per secret).

Backend options: those of :mod:`adapters.aws_common`, plus::

    method = "schedule-deletion"        # default method: schedule-deletion | tombstone
    recovery_window_days = 7            # 7..30, for schedule-deletion

Inventory references (``secret_id``, like the API's ``SecretId``: a field named ``secret``
would be redacted from the audit trail by the scrubber, and restore needs it)::

    {backend = "aws-sandbox-sm", secret_id = "ai/support-bot/openai"}           # name or ARN
    {backend = "aws-sandbox-sm", secret_id = "ai/claims/bedrock", method = "tombstone",
     field = "api_key"}                  # field: JSON key holding the value (reveal)
    {backend = "aws-sandbox-sm", secret_id = "...", recovery_window_days = 30}

State shapes (``before`` / ``after`` / :meth:`SecretsManagerAdapter.read`)::

    {"exists": true, "current_version": "<AWSCURRENT id>", "deleted": false,
     "stages": {"<version id>": ["AWSCURRENT"], "<version id>": ["AWSPREVIOUS"]}}
    {"exists": false}                    # after credential.destroy

``stages`` lists only versions that carry a label; values never appear anywhere.

Rotation (:mod:`adapters.aws_secrets_rotation`): ``credential.write`` puts the run's new key
as a new AWSCURRENT version (the old one becomes AWSPREVIOUS); undo moves AWSCURRENT back.

Example runbook step::

    [[steps]]
    id = "revoke-aws-sm"
    action = "credential.disable"
    options = {method = "tombstone"}    # optional: overrides the reference and backend
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from adapters import aws_secrets_rotation as rotation
from adapters.aws_common import (
    AwsClients,
    finish,
    is_tombstone,
    pick_value,
    string_fields,
    tombstone_value,
)
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.evidence import EvidenceSink
from adapters.rotation import WRITE
from adapters.specs.aws import AWS_SECRETS, SecretsManagerOptions
from console.errors import AdapterError, NotFound, UndoUnsupported

__all__ = ["METHODS", "SecretsManagerAdapter"]

METHODS = ("schedule-deletion", "tombstone")
"""Reversible disable methods; the first is the default."""
SERVICE = "Secrets Manager"
CUR, PREV = "AWSCURRENT", "AWSPREVIOUS"
TOMBSTONE_PREFIX = "killswitch-tombstone-"
"""Version ids of tombstones start with this (then 32 hex digits: 53 characters, within the
API's 32..64 for ``ClientRequestToken``, which becomes the ``VersionId``), so a plan tells an
already-dead secret from ``DescribeSecret`` alone, without reading the value."""


def _stages(describe: Mapping[str, Any]) -> dict[str, list[str]]:
    raw = describe.get("VersionIdsToStages") or {}
    return {vid: sorted(labels) for vid, labels in sorted(raw.items()) if labels}


def _holder(stages: Mapping[str, list[str]], label: str) -> str | None:
    return next((vid for vid, labels in stages.items() if label in labels), None)


def _move(stages: Mapping[str, list[str]], label: str, to: str | None) -> dict[str, list[str]]:
    out = {vid: [x for x in labels if x != label] for vid, labels in stages.items()}
    if to:
        out.setdefault(to, []).append(label)
    return {vid: sorted(labels) for vid, labels in sorted(out.items()) if labels}


class SecretsManagerAdapter(Adapter):
    """Kill key copies stored in AWS Secrets Manager.

    ``credential.disable`` schedules deletion (undo ``RestoreSecret``) or writes a tombstone
    version and moves ``AWSCURRENT`` to it (undo moves it back), per the reference's
    ``method``; ``credential.destroy`` force-deletes without recovery (irreversible).
    """

    name: ClassVar[str] = "aws-secrets"
    Options: ClassVar[type[SecretsManagerOptions]] = SecretsManagerOptions
    OPTIONS: ClassVar[Mapping[str, str]] = SecretsManagerOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = AWS_SECRETS.actions  # adapters/specs/aws.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_REVEAL: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.aws = AwsClients(backend, self.options)
        self.aws.run_id_source = lambda: self.run_id
        self.method = self._method(self.options.get("method"), backend)
        self.window = self._window(self.options.get("recovery_window_days"), backend)

    @staticmethod
    def _method(raw: Any, where: str) -> str:
        method = str(raw or METHODS[0])
        if method not in METHODS:
            raise AdapterError(f"unknown Secrets Manager method {method!r}", where=where,
                               hint=f"method is one of {', '.join(METHODS)}")
        return method

    @staticmethod
    def _window(raw: Any, where: str) -> int:
        try:
            days = int(raw or 7)
        except (TypeError, ValueError) as exc:
            raise AdapterError("recovery_window_days must be an integer", where=where) from exc
        if not 7 <= days <= 30:
            raise AdapterError(f"recovery_window_days must be 7..30, got {days}", where=where)
        return days

    def open(self) -> None:
        """Build the client (no request is sent)."""
        self.aws.client("secretsmanager")

    def close(self) -> None:
        """Drop the client."""
        self.aws.close()

    @property
    def sm(self) -> Any:
        """The boto3 ``secretsmanager`` client."""
        return self.aws.client("secretsmanager")

    # -- reads ----------------------------------------------------------------------------

    def _secret(self, ref: Mapping[str, Any]) -> str:
        secret = str(ref.get("secret_id") or "").strip()
        if not secret:
            raise AdapterError("aws-secrets reference needs `secret_id` (name or ARN)",
                               where=self.backend)
        return secret

    def _state(self, secret: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            d = self.sm.describe_secret(SecretId=secret)
        except ClientError as exc:
            if (exc.response.get("Error") or {}).get("Code") == "ResourceNotFoundException":
                return {"exists": False}
            raise
        stages = _stages(d)
        return {"exists": True, "current_version": _holder(stages, CUR) or "",
                "deleted": d.get("DeletedDate") is not None, "stages": stages}

    @staticmethod
    def _string(resp: Mapping[str, Any]) -> str | None:
        value = resp.get("SecretString")
        if value is None and resp.get("SecretBinary") is not None:
            return bytes(resp["SecretBinary"]).decode(errors="replace")
        return str(value) if value is not None else None

    def _read(self, secret: str, version: str | None = None) -> tuple[str | None, str, str]:
        """A version (default: AWSCURRENT) as an application reads it, in memory.

        Returns:
            ``(value, version id, error code)``: the value is None (and the code says why,
            ``InvalidRequestException`` for a secret marked deleted) when unreadable.
        """
        from botocore.exceptions import ClientError

        kw = {"VersionId": version} if version else {"VersionStage": CUR}
        try:
            resp = self.sm.get_secret_value(SecretId=secret, **kw)
        except ClientError as exc:
            code = str((exc.response.get("Error") or {}).get("Code") or "")
            if code in ("InvalidRequestException", "ResourceNotFoundException"):
                return None, "", code
            raise
        return self._string(resp), str(resp.get("VersionId") or ""), ""

    def _value(self, secret: str, version: str | None = None) -> str | None:
        """A version's (default: AWSCURRENT's) string, in memory; None if unreadable."""
        return self._read(secret, version)[0]

    def read(self, change: Change) -> dict[str, Any]:
        """Current state of the secret, in the shape of ``change.before``."""
        if change.action == WRITE:
            return rotation.read_write(self, change)
        secret = self._secret(change.ref)
        with self.aws.errors(secret, SERVICE):
            return self._state(secret)

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the secret and return the change ``action`` would make (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the aws-secrets adapter does not offer {action}",
                               where=self.backend)
        if action == WRITE:
            return rotation.plan_write(self, ref, ctx)
        secret = self._secret(ref)
        method = self._method(ctx.options.get("method") or ref.get("method") or self.method,
                              self.backend)
        window = self._window(ref.get("recovery_window_days") or
                              ctx.options.get("recovery_window_days") or self.window,
                              self.backend)
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self.backend}:{secret}"
        with self.aws.errors(secret, SERVICE):
            before = self._state(secret)
            if not before["exists"]:
                if action == "credential.destroy":
                    return [ctx.change(target, before, before, reversible=False, status=NOOP,
                                       note=f"{secret} does not exist (already gone)")]
                raise NotFound(f"not found in {SERVICE}: {secret}", where=self.backend)
            if action == "credential.destroy":
                return [ctx.change(target, before, {"exists": False}, reversible=False, note=(
                    f"force-deletes {secret} without a recovery window: irreversible, every "
                    "version is gone for good"))]
            if action == "credential.disable":
                # one read: a Killswitch tombstone is known by its version id
                return [self._plan_disable(ctx, secret, before, method, window)]
            # enabling needs the tombstone's record of the version it replaced
            current = None if before["deleted"] else self._value(secret)
            tomb = is_tombstone(current)
            del current  # the value is never kept
        return [self._plan_enable(ctx, secret, before, tomb)]

    @staticmethod
    def _plan_disable(ctx: PlanContext, secret: str, before: dict[str, Any], method: str,
                      window: int) -> Change:
        target = f"{ctx.backend}:{secret}"
        if before["deleted"]:
            return ctx.change(target, before, before, status=NOOP,
                              note=f"{secret} is already scheduled for deletion; reads fail")
        if str(before["current_version"]).startswith(TOMBSTONE_PREFIX):
            # verify still reads the value and says "live" if it is not a tombstone
            return ctx.change(target, before, before, status=NOOP,
                              note=f"AWSCURRENT of {secret} is already a Killswitch tombstone "
                              f"version ({before['current_version']})")
        if method == "schedule-deletion":
            when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=window)).date().isoformat()
            return ctx.change(target, before, {**before, "deleted": True},
                              undo={"method": method, "recovery_window_days": window},
                              note=(f"schedules deletion of {secret} with a {window}-day "
                                    f"recovery window (gone for good about {when} unless "
                                    "restored); every read fails now; undo restores it with "
                                    "the same versions"))
        old, prev = before["current_version"], _holder(before["stages"], PREV)
        seed = f"killswitch:{ctx.run_id}:{ctx.op_id(0)}:{secret}:{old}"
        tomb_id = TOMBSTONE_PREFIX + (uuid.uuid5(uuid.NAMESPACE_URL, seed) if ctx.run_id
                                      else uuid.uuid4()).hex
        stages = _move(_move(before["stages"], PREV, old), CUR, tomb_id)
        after = {**before, "current_version": tomb_id, "stages": stages}
        return ctx.change(target, before, after,
                          undo={"method": method, "restore_version": old,
                                "previous_version": prev, "tombstone_version": tomb_id,
                                "run": ctx.run_id},
                          note=(f"writes a tombstone version {tomb_id} to {secret} and moves "
                                f"AWSCURRENT to it; undo moves AWSCURRENT back to {old}; the "
                                "old value stays readable by version id / AWSPREVIOUS"))

    @staticmethod
    def _plan_enable(ctx: PlanContext, secret: str, before: dict[str, Any],
                     tomb: dict[str, Any] | None) -> Change:
        target = f"{ctx.backend}:{secret}"
        if before["deleted"]:
            return ctx.change(target, before, {**before, "deleted": False},
                              undo={"method": "schedule-deletion"},
                              note=f"restores {secret} (cancels the scheduled deletion)")
        back = str((tomb or {}).get("previous_version") or "")
        if tomb is None or not back:
            return ctx.change(target, before, before, status=NOOP,
                              note=f"{secret} is readable (no tombstone, not deleted)")
        cur = before["current_version"]
        after = {**before, "current_version": back,
                 "stages": _move(_move(before["stages"], PREV, cur), CUR, back)}
        return ctx.change(target, before, after,
                          undo={"method": "tombstone", "restore_version": back,
                                "tombstone_version": cur, "previous_version": cur},
                          note=f"moves AWSCURRENT of {secret} back from tombstone {cur} to "
                          f"{back}")

    # -- apply ----------------------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Carry out ``change`` (idempotent); returns the version ids it used.

        ``current`` is the state the engine read just before; without it apply reads it.
        """
        if change.action == WRITE:
            return rotation.apply_write(self, change, current)
        secret = self._secret(change.ref)
        method = str(change.undo.get("method") or "")
        with self.aws.errors(secret, SERVICE):
            state = dict(current) if current is not None else self._state(secret)
            if change.action == "credential.destroy":
                if state["exists"]:
                    self.sm.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
                return {}
            if not state["exists"]:
                raise NotFound(f"not found in {SERVICE}: {secret}", where=self.backend)
            if method == "schedule-deletion":
                if change.action == "credential.disable" and not state["deleted"]:
                    days = int(change.undo.get("recovery_window_days") or self.window)
                    self.sm.delete_secret(SecretId=secret, RecoveryWindowInDays=days)
                elif change.action == "credential.enable" and state["deleted"]:
                    self.sm.restore_secret(SecretId=secret)
                return {"method": method}
            if method != "tombstone":
                raise AdapterError(f"change on {secret} names no method", where=self.backend)
            tomb_id = str(change.undo["tombstone_version"])
            if change.action == "credential.disable" and tomb_id not in state["stages"]:
                value = tombstone_value(str(change.undo.get("run") or ""), change.op_id,
                                        previous_version=str(change.undo["restore_version"]))
                put = self.sm.put_secret_value(SecretId=secret, SecretString=value,
                                               ClientRequestToken=tomb_id)
                # a version with this token already exists (unlabelled): AWS ignores the put
                # and answers that version's labels; move them as planned instead
                if CUR not in (put.get("VersionStages") or []):
                    self._restore_stages(secret, state, change.after)
            else:
                self._restore_stages(secret, state, change.after)
            return {"tombstone_version": tomb_id}

    def _restore_stages(self, secret: str, state: Mapping[str, Any],
                        target: Mapping[str, Any]) -> None:
        """Move AWSCURRENT / AWSPREVIOUS so they sit exactly where ``target`` has them."""
        want_cur = str(target["current_version"])
        want_prev = _holder(target.get("stages") or {}, PREV)
        stages = state["stages"]
        cur = _holder(stages, CUR)
        moved = False
        if cur != want_cur:
            kw = {"RemoveFromVersionId": cur} if cur else {}
            self.sm.update_secret_version_stage(SecretId=secret, VersionStage=CUR,
                                                MoveToVersionId=want_cur, **kw)
            moved = True
            # where AWS put AWSPREVIOUS after the move: read our own write back
            stages = finish(lambda: self._state(secret), secret, SERVICE)["stages"]
        prev = _holder(stages, PREV)
        if prev == want_prev:
            return
        kw = {"RemoveFromVersionId": prev} if prev else {}
        if want_prev:
            kw["MoveToVersionId"] = want_prev

        def move_prev() -> Any:
            return self.sm.update_secret_version_stage(SecretId=secret, VersionStage=PREV, **kw)

        # after the AWSCURRENT move, finish here: a half-moved state would read as drift
        finish(move_prev, secret, SERVICE) if moved else move_prev()

    # -- verify ---------------------------------------------------------------------------

    def verify(self, change: Change) -> Verdict:
        """One read, as an application would (``VersionStage=AWSCURRENT``), judged.

        A tombstoned AWSCURRENT is dead when it is not the planned ``restore_version``: the
        plan only tombstones a secret whose AWSCURRENT held no tombstone, and a version's
        value never changes, so the version id tells the tombstone from the old key.
        """
        if change.action == WRITE:
            return rotation.verify_write(self, change)
        secret = self._secret(change.ref)
        method = str(change.undo.get("method") or "")
        with self.aws.errors(secret, SERVICE):
            value, version, code = self._read(secret)
        tomb = is_tombstone(value)
        readable = value is not None
        del value  # the value is never kept
        if change.action == "credential.destroy":
            if code == "ResourceNotFoundException":
                return Verdict(True, "dead", f"{secret} no longer exists")
            return Verdict(not readable, "dead" if not readable else "live",
                           f"{secret} is {'still readable' if readable else 'being deleted'}")
        restore = str(change.undo.get("restore_version") or "")
        if change.action == "credential.enable":
            if not readable or tomb is not None:
                return Verdict(False, "dead", f"an AWSCURRENT read of {secret} still fails or "
                               "returns the tombstone")
            if method == "tombstone" and version != restore:
                return Verdict(False, "dead", f"AWSCURRENT of {secret} is {version}, not the "
                               "restored version")
            return Verdict(True, "restored", f"an AWSCURRENT read of {secret} returns the key "
                           f"(version {version})")
        if not readable:
            why = "marked deleted" if code == "InvalidRequestException" else "unreadable"
            return Verdict(True, "dead", f"an AWSCURRENT read of {secret} fails ({why})")
        if method == "tombstone" and tomb is not None and version != restore:
            return Verdict(True, "dead", f"an AWSCURRENT read of {secret} returns the "
                           f"tombstone (version {version}), not the old value of version "
                           f"{restore}")
        return Verdict(False, "live", f"an AWSCURRENT read of {secret} still returns a key")

    # -- undo -----------------------------------------------------------------------------

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that undoes a disable (restore, or move AWSCURRENT back) or an enable.

        Raises:
            UndoUnsupported: destroy, and changes that did nothing.
        """
        if change.action == WRITE:
            return rotation.inverse_write(self, change, applied)
        if not change.reversible or change.action == "credential.destroy":
            raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone: "
                                  "force delete is permanent", where=change.target,
                                  hint="store a newly issued key")
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in the "
                                  "wanted state before this run", where=change.target)
        back = "credential.enable" if change.action == "credential.disable" \
            else "credential.disable"
        undo = {**change.undo, **dict(applied)}
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action=back, backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after=dict(change.before), reversible=True, undo=undo,
            note=(f"restores {change.target} to version {change.before.get('current_version')}"
                  f" with the same stages" if back == "credential.enable"
                  else f"disables {change.target} again"),
            inverse_of=change.op_id)

    # -- reveal / scan --------------------------------------------------------------------

    def reveal(self, ref: Mapping[str, Any]) -> str | None:
        """The key the reference points at (AWSCURRENT), in memory only; None if unreadable."""
        secret = self._secret(ref)
        with self.aws.errors(secret, SERVICE):
            return pick_value(self._value(secret), str(ref.get("field") or "") or None)

    def scan(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every readable AWSCURRENT value (each JSON string field), with a reference."""
        with self.aws.errors("list_secrets", SERVICE):
            pages = self.sm.get_paginator("list_secrets").paginate()
            names = [s["Name"] for page in pages for s in page.get("SecretList") or []]
        for secret in names:
            with self.aws.errors(secret, SERVICE):
                raw = self._value(secret)
            if raw is None or is_tombstone(raw):
                continue
            for field, value in string_fields(raw):
                ref: dict[str, Any] = {"backend": self.backend, "secret_id": secret}
                if field is not None:
                    ref["field"] = field
                yield ref, value

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: ``DescribeSecret`` and every version id with its stages, deprecated
        ones included (:mod:`adapters.preserve_aws`); never a value."""
        from adapters.preserve_aws import preserve_secret

        preserve_secret(self, ref, sink)
