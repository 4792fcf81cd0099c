"""AWS IAM access-key adapter (boto3): deactivate the keys an integration (e.g. Bedrock) uses.

``credential.disable`` sets the keys ``Inactive`` (undo: ``credential.enable`` puts back
exactly the statuses seen at plan time); ``credential.destroy`` deletes them (irreversible:
AWS never shows a secret access key again, restore means issuing a new key). AWS never
returns a secret key, so this adapter cannot reveal or scan.

Backend options: those of :mod:`adapters.aws_common` (IAM is global; region only picks the
endpoint), plus for evidence ``cloudtrail_endpoint_url`` (the CloudTrail endpoint, e.g. the
sandbox's stand-in ``http://127.0.0.1:8397``; default AWS's) and ``cloudtrail_regions``
(default: the backend's region); see :mod:`adapters.preserve_aws`.

Inventory references (a reference names a user; the sandbox cannot choose key ids, so
``access_key_id`` is optional: without it the change covers every key of the user)::

    {backend = "aws-sandbox-iam", user = "claims-summariser-bedrock"}
    {backend = "aws-sandbox-iam", user = "claims-summariser-bedrock",
     access_key_id = "AKIA..."}          # key ids are identifiers, not secrets

State shape (``before`` / ``after`` / :meth:`IamAccessKeyAdapter.read`)::

    {"user": "claims-summariser-bedrock", "keys": {"AKIA…Q2ZTFTT1": "Active",
                                                   "AKIA…B7MISEKU": "Inactive"}}

Keys are named by a handle (``AKIA…`` + the id's last 8 characters): the audit scrubber
redacts full access key ids, and restore is planned from the audit trail.

A key created between plan and apply changes the state, so the engine refuses the stale plan
rather than leave a new key live.

Rotation (:mod:`adapters.aws_iam_rotation`): ``credential.issue`` creates a new access key
(its secret in memory only; refused in the plan when the user already has IAM's two keys);
``credential.retire`` sets the old key(s) Inactive once the new one is in place; ``probe``
tests a key at STS (``GetCallerIdentity`` signed with it) where option ``probe_keys`` allows.

Example runbook step::

    [[steps]]
    id = "deactivate-iam-keys"
    action = "credential.disable"
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from adapters import aws_iam_rotation as rotation
from adapters.aws_common import AwsClients, finish
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.evidence import EvidenceSink
from adapters.rotation import ISSUE, RETIRE
from adapters.specs.aws import AWS_IAM, IamOptions
from console.errors import AdapterError, NotFound, UndoUnsupported

__all__ = ["IamAccessKeyAdapter"]

SERVICE = "IAM"


def handle(key_id: str) -> str:
    """How a key appears in states and notes: ``AKIA…`` plus its last 8 characters.

    Full key ids look like secrets to the audit scrubber (which redacts them), and a
    restore is planned from the audit trail, so states name keys by this stable handle.
    """
    return f"{key_id[:4]}…{key_id[-8:]}"


def _matches(wanted: str, key_id: str) -> bool:
    """Whether a reference's ``access_key_id`` (full id, handle, or the scrubber's redacted
    form ``[REDACTED sha256:<12 hex>]``) names ``key_id``."""
    if wanted in (key_id, handle(key_id)):
        return True
    fp = hashlib.sha256(key_id.encode()).hexdigest()[:12]
    return wanted.startswith("[REDACTED ") and f"sha256:{fp}" in wanted


class IamAccessKeyAdapter(Adapter):
    """Deactivate (reversible) or delete (irreversible) IAM users' access keys."""

    name: ClassVar[str] = "aws-iam"
    Options: ClassVar[type[IamOptions]] = IamOptions
    OPTIONS: ClassVar[Mapping[str, str]] = IamOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = AWS_IAM.actions  # adapters/specs/aws.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_REVEAL: ClassVar[bool] = False
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.aws = AwsClients(backend, self.options)
        self.aws.run_id_source = lambda: self.run_id
        self._key_ids: dict[tuple[str, str], str] = {}
        """``(user, handle) -> access key id`` of every key a read listed: states name keys
        by handle only, and apply, given the state the engine just read, writes by id."""
        self._run_users: dict[str, dict[str, None]] = {}
        """Users listed per run, newest last: whose key ids :meth:`probe` signs with."""
        if rotation.probing(self):  # capabilities are class attributes (see the fake)
            self.__class__ = _Probing

    def open(self) -> None:
        """Build the client (no request is sent)."""
        self.aws.client("iam")

    def close(self) -> None:
        """Drop the client."""
        self.aws.close()

    @property
    def iam(self) -> Any:
        """The boto3 ``iam`` client."""
        return self.aws.client("iam")

    # -- reads ----------------------------------------------------------------------------

    def _ids(self, ref: Mapping[str, Any]) -> tuple[str, str | None, str]:
        user = str(ref.get("user") or "").strip()
        if not user:
            raise AdapterError("aws-iam reference needs `user` (the IAM user name)",
                               where=self.backend)
        key = str(ref.get("access_key_id") or "").strip() or None
        return user, key, f"{user}/{key}" if key else f"{user} (every access key)"

    def _list(self, user: str, key: str | None) -> dict[str, tuple[str, str]]:
        """``{handle: (access key id, status)}`` of the user's keys (or the one named)."""
        self.remember(self.run_id, user)
        pages = self.iam.get_paginator("list_access_keys").paginate(UserName=user)
        out = {}
        for page in pages:
            for m in page.get("AccessKeyMetadata") or []:
                kid = str(m["AccessKeyId"])
                self._key_ids[(user, handle(kid))] = kid
                if key is None or _matches(key, kid):
                    out[handle(kid)] = (kid, str(m["Status"]))
        return dict(sorted(out.items()))

    def _keys(self, user: str, key: str | None) -> dict[str, str]:
        return {h: status for h, (_, status) in self._list(user, key).items()}

    def remember(self, run: str, user: str) -> None:
        """Note that ``run`` acts on ``user`` (its keys are what :meth:`probe` tries)."""
        users = self._run_users.setdefault(run, {})
        users.pop(user, None)
        users[user] = None

    def candidates(self) -> list[str]:
        """Access key ids a bare secret may pair with: those of the users listed for the
        current run, most recently listed first (every user listed, outside a run)."""
        users = list(self._run_users.get(self.run_id) or
                     {u: None for run in self._run_users.values() for u in run})
        return [kid for user in reversed(users)
                for (u, _), kid in sorted(self._key_ids.items()) if u == user]

    def read(self, change: Change) -> dict[str, Any]:
        """Current statuses of the user's (or the one named) access keys."""
        if change.action == ISSUE:
            return rotation.read_issue(self, change)
        if change.action == RETIRE or change.undo.get("rotation") == rotation.UNRETIRE:
            return rotation.read_retire(self, change)
        user, key, target = self._ids(change.ref)
        with self.aws.errors(target, SERVICE):
            return {"user": user, "keys": self._keys(user, key)}

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the keys and return the change ``action`` would make (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the aws-iam adapter does not offer {action}",
                               where=self.backend)
        if action == ISSUE:
            return rotation.plan_issue(self, ref, ctx)
        if action == RETIRE:
            return rotation.plan_retire(self, ref, ctx)
        user, key, target = self._ids(ref)
        ctx = plan_context(self, action, ref, ctx)
        where = f"{self.backend}:{target}"
        with self.aws.errors(target, SERVICE):
            keys = self._keys(user, key)
        before = {"user": user, "keys": keys}
        if key is not None and not keys and action != "credential.destroy":
            raise NotFound(f"not found in IAM: access key {key} of user {user}",
                           where=self.backend)
        if action == "credential.destroy":
            after = {"user": user, "keys": {}}
            if not keys:
                return [ctx.change(where, before, after, reversible=False, status=NOOP,
                                   note=f"{target}: no access key left to delete")]
            return [ctx.change(where, before, after, reversible=False,
                               note=(f"deletes access key(s) {', '.join(keys)} of {user}: "
                                     "irreversible, restore means issuing a new key"))]
        status = "Inactive" if action == "credential.disable" else "Active"
        after = {"user": user, "keys": dict.fromkeys(keys, status)}
        if after == before:
            word = "no access keys" if not keys else f"every key is already {status}"
            return [ctx.change(where, before, after, status=NOOP, note=f"{target}: {word}")]
        todo = [k for k, s in keys.items() if s != status]
        return [ctx.change(where, before, after, undo={"keys": dict(keys)},
                           note=(f"sets access key(s) {', '.join(todo)} of {user} {status}; "
                                 "undo restores each key's status as seen now"))]

    # -- apply ----------------------------------------------------------------------------

    def _now(self, user: str, key: str | None,
             current: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
        """``({handle: status}, {handle: key id})``: from ``current`` and the ids its read
        listed when it can, else from a new ListAccessKeys."""
        if current is not None and current.get("user") == user:
            now = {str(h): str(st) for h, st in (current.get("keys") or {}).items()}
            ids = {h: self._key_ids.get((user, h), "") for h in now}
            if all(ids.values()):
                return now, ids
        listed = self._list(user, key)
        return ({h: st for h, (_, st) in listed.items()},
                {h: kid for h, (kid, _) in listed.items()})

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Set every planned key to its planned status (or delete it); idempotent.

        ``current`` is the state the engine read just before (the key ids come from that
        read); without it apply lists the keys itself.
        """
        from botocore.exceptions import ClientError

        if change.action == ISSUE:
            return rotation.apply_issue(self, change, current)
        if change.action == RETIRE or change.undo.get("rotation") == rotation.UNRETIRE:
            return rotation.apply_retire(self, change, current)
        if change.undo.get("rotation") == rotation.UNISSUE:
            rotation.guard_unissue(self, change)
        user, key, target = self._ids(change.ref)
        with self.aws.errors(target, SERVICE):
            now, ids = self._now(user, key, current)
            if change.action == "credential.destroy":
                for h in change.before.get("keys") or {}:
                    if h not in now:
                        continue
                    try:
                        finish(partial(self.iam.delete_access_key, UserName=user,
                                       AccessKeyId=ids[h]), target, SERVICE)
                    except ClientError as exc:  # NoSuchEntity: already deleted
                        if (exc.response.get("Error") or {}).get("Code") != "NoSuchEntity":
                            raise
                return {}
            wrote = False
            for h, status in (change.after.get("keys") or {}).items():
                if h not in now:
                    raise NotFound(f"access key {h} of {user} no longer exists",
                                   where=self.backend)
                if now[h] != status:
                    update = partial(self.iam.update_access_key, UserName=user,
                                     AccessKeyId=ids[h], Status=status)
                    # after the first write, finish here: a half-done set reads as drift
                    if wrote:
                        finish(update, target, SERVICE)
                    else:
                        update()
                    wrote = True
            return {"keys": dict(change.undo.get("keys") or change.before.get("keys") or {})}

    # -- verify ---------------------------------------------------------------------------

    def verify(self, change: Change) -> Verdict:
        """List the keys again: every planned key must have its planned status (or be gone)."""
        if change.action == ISSUE:
            return rotation.verify_issue(self, change)
        if change.action == RETIRE or change.undo.get("rotation") == rotation.UNRETIRE:
            return rotation.verify_retire(self, change)
        user, key, target = self._ids(change.ref)
        with self.aws.errors(target, SERVICE):
            now = self._keys(user, key)
        if change.action == "credential.destroy":
            left = [k for k in change.before.get("keys") or {} if k in now]
            if left:
                return Verdict(False, "live", f"ListAccessKeys still shows {', '.join(left)}")
            return Verdict(True, "dead", f"ListAccessKeys no longer shows the key(s) of {user}")
        want = dict(change.after.get("keys") or {})
        wrong = [f"{k} is {now.get(k, 'missing')}" for k, s in want.items() if now.get(k) != s]
        if change.action == "credential.enable":
            if wrong:
                return Verdict(False, "dead", "ListAccessKeys: " + ", ".join(wrong))
            return Verdict(True, "restored", f"ListAccessKeys shows the planned statuses for "
                           f"{user}")
        extra = [k for k, s in now.items() if k not in want and s == "Active"]
        if wrong or extra:
            bits = wrong + [f"{k} (new since the plan) is Active" for k in extra]
            return Verdict(False, "live", "ListAccessKeys: " + ", ".join(bits))
        return Verdict(True, "dead", f"ListAccessKeys shows every key of {target} Inactive "
                       "(IAM propagation takes seconds)")

    # -- undo -----------------------------------------------------------------------------

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that puts back each key's prior status.

        Raises:
            UndoUnsupported: delete, and changes that did nothing.
        """
        if change.action == ISSUE:
            return rotation.inverse_issue(self, change, applied)
        if change.action == RETIRE:
            return rotation.inverse_retire(self, change, applied)
        if not change.reversible or change.action == "credential.destroy":
            raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone: "
                                  "a deleted access key is gone for good",
                                  where=change.target, hint="issue a new access key")
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in the "
                                  "wanted state before this run", where=change.target)
        back = "credential.enable" if change.action == "credential.disable" \
            else "credential.disable"
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action=back, backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after=dict(change.before), reversible=True,
            undo={"keys": dict(change.after.get("keys") or {})},
            note=f"puts back the key statuses of {change.target}: "
            + ", ".join(f"{k} {s}" for k, s in (change.before.get("keys") or {}).items()),
            inverse_of=change.op_id)

    def probe(self, value: str) -> Verdict:
        """STS ``GetCallerIdentity`` signed with the key, as an application would call
        (:func:`adapters.aws_iam_rotation.probe`); only where ``probe_keys`` allows."""
        return rotation.probe(self, value)

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: the user's access keys, when each was last used, and each key's
        CloudTrail events of the last 24 h (:mod:`adapters.preserve_aws`)."""
        from adapters.preserve_aws import preserve_iam

        preserve_iam(self, ref, sink)


class _Probing(IamAccessKeyAdapter):
    """The aws-iam adapter of a backend that tests keys at STS (``probe_keys``)."""

    CAN_PROBE: ClassVar[bool] = True
