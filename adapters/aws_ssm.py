"""AWS SSM Parameter Store adapter (boto3): tombstone a SecureString key copy, with undo.

``credential.disable`` overwrites the parameter with a tombstone (``PutParameter
Overwrite=True``, same type and KMS key); undo reads the prior version's value from
``GetParameterHistory`` (in memory, at apply time) and puts it back. The value never enters a
Change: only version numbers do. ``credential.destroy`` is ``DeleteParameter`` (irreversible,
every version is gone).

Backend options: those of :mod:`adapters.aws_common`.

Inventory references::

    {backend = "aws-sandbox-ssm", name = "/ai/support-bot/openai"}
    {backend = "aws-sandbox-ssm", name = "/ai/claims/bedrock", field = "api_key"}  # JSON value

State shapes (``before`` / ``after`` / :meth:`SsmParameterAdapter.read`)::

    {"exists": true, "type": "SecureString", "value_version": 3, "tombstone": false}
    {"exists": false}                    # after credential.destroy

``value_version`` is the first version in the history holding the current value: putting the
value of version 3 back (undo) creates version 5 but reads as ``value_version`` 3 again, so
undo restores the exact prior state even though Parameter Store only ever appends versions.

Every ``PutParameter`` (tombstone and undo) sends the parameter's current ``Tier``, read from
the newest ``GetParameterHistory`` entry: without it PutParameter uses the account's default
tier, and an Advanced parameter cannot be written back as Standard ("you can't revert an
advanced parameter to a standard parameter": botocore ``ssm`` service model, ``PutParameter``
member ``Tier``; https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html).

Rotation (:mod:`adapters.aws_ssm_rotation`): ``credential.write`` overwrites the parameter with
the run's new key (same type, KMS key and tier); undo puts the old value back.

Example runbook step::

    [[steps]]
    id = "revoke-aws-ssm"
    action = "credential.disable"
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from adapters import aws_ssm_rotation as rotation
from adapters.aws_common import (
    AwsClients,
    digest,
    is_tombstone,
    pick_value,
    string_fields,
    tombstone_value,
)
from adapters.base import NOOP, ActionSpec, Adapter, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.evidence import EvidenceSink
from adapters.rotation import WRITE
from adapters.specs.aws import AWS_SSM, AwsOptions
from console.errors import AdapterError, NotFound, UndoUnsupported

__all__ = ["SsmParameterAdapter"]

SERVICE = "SSM Parameter Store"


class SsmParameterAdapter(Adapter):
    """Kill key copies stored as SSM Parameter Store (SecureString) parameters.

    ``credential.disable`` writes a tombstone value (undo: ``credential.enable`` puts the prior
    version's value back); ``credential.destroy`` deletes the parameter (irreversible).
    """

    name: ClassVar[str] = "aws-ssm"
    Options: ClassVar[type[AwsOptions]] = AwsOptions
    OPTIONS: ClassVar[Mapping[str, str]] = AwsOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = AWS_SSM.actions  # adapters/specs/aws.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_REVEAL: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        self.aws = AwsClients(backend, self.options)
        self.aws.run_id_source = lambda: self.run_id
        self._seen: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        """Per parameter, the last state read and what a put needs of the newest version
        (type, KMS key, tier, tombstone nonce; never a value), so that apply, given that
        very state by the engine, does not read again."""

    def open(self) -> None:
        """Build the client (no request is sent)."""
        self.aws.client("ssm")

    def close(self) -> None:
        """Drop the client."""
        self.aws.close()

    @property
    def ssm(self) -> Any:
        """The boto3 ``ssm`` client."""
        return self.aws.client("ssm")

    # -- reads ----------------------------------------------------------------------------

    def _name(self, ref: Mapping[str, Any]) -> str:
        name = str(ref.get("name") or ref.get("parameter") or "").strip()
        if not name:
            raise AdapterError("aws-ssm reference needs `name` (the parameter name)",
                               where=self.backend)
        return name

    def _history(self, name: str) -> list[dict[str, Any]] | None:
        """Every version (decrypted, in memory), oldest first; None if the name is missing."""
        from botocore.exceptions import ClientError

        out: list[dict[str, Any]] = []
        kw: dict[str, Any] = {}
        try:
            while True:
                page = self.ssm.get_parameter_history(Name=name, WithDecryption=True,
                                                      MaxResults=50, **kw)
                out += page.get("Parameters") or []
                if not page.get("NextToken"):
                    break
                kw["NextToken"] = page["NextToken"]
        except ClientError as exc:
            if (exc.response.get("Error") or {}).get("Code") == "ParameterNotFound":
                return None
            raise
        return sorted(out, key=lambda p: int(p["Version"])) or None

    @staticmethod
    def _value_version(history: list[dict[str, Any]]) -> int:
        now = digest(history[-1].get("Value"))
        return next(int(p["Version"]) for p in history if digest(p.get("Value")) == now)

    def _state(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        history = self._history(name)
        if history is None:
            self._seen[name] = ({"exists": False}, {})
            return {"exists": False}, []
        last = history[-1]
        tomb = is_tombstone(last.get("Value"))
        state = {"exists": True, "type": str(last.get("Type") or "SecureString"),
                 "value_version": self._value_version(history),
                 "tombstone": tomb is not None}
        meta = {k: last[k] for k in ("Type", "KeyId", "Tier") if last.get(k)}
        meta["nonce"] = (tomb or {}).get("nonce")
        self._seen[name] = (dict(state), meta)
        return state, history

    def read(self, change: Change) -> dict[str, Any]:
        """Current state of the parameter, in the shape of ``change.before``."""
        if change.action == WRITE:
            return rotation.read_write(self, change)
        name = self._name(change.ref)
        with self.aws.errors(name, SERVICE):
            return self._state(name)[0]

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe the parameter and return the change ``action`` would make (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the aws-ssm adapter does not offer {action}",
                               where=self.backend)
        if action == WRITE:
            return rotation.plan_write(self, ref, ctx)
        name = self._name(ref)
        ctx = plan_context(self, action, ref, ctx)
        target = f"{self.backend}:{name}"
        with self.aws.errors(name, SERVICE):
            before, history = self._state(name)
            tomb = is_tombstone(history[-1].get("Value")) if history else None
            latest = int(history[-1]["Version"]) if history else 0
            del history  # values are never kept
        if not before["exists"]:
            if action == "credential.destroy":
                return [ctx.change(target, before, before, reversible=False, status=NOOP,
                                   note=f"{name} does not exist (already gone)")]
            raise NotFound(f"not found in {SERVICE}: {name}", where=self.backend)
        if action == "credential.destroy":
            return [ctx.change(target, before, {"exists": False}, reversible=False,
                               note=f"deletes {name} and all {latest} version(s): "
                               "irreversible")]
        if action == "credential.disable":
            if tomb is not None:
                return [ctx.change(target, before, before, status=NOOP,
                                   note=f"{name} already holds a Killswitch tombstone "
                                   f"(run {tomb.get('run')})")]
            v = before["value_version"]
            return [ctx.change(target, before,
                               {**before, "value_version": latest + 1, "tombstone": True},
                               undo={"restore_version": v, "run": ctx.run_id,
                                     "nonce": uuid.uuid4().hex[:12]},
                               note=(f"overwrites {name} with a tombstone (new version "
                                     f"{latest + 1}); undo puts the value of version {v} "
                                     "back"))]
        back = int((tomb or {}).get("previous_version") or 0)
        if tomb is None or not back:
            return [ctx.change(target, before, before, status=NOOP,
                               note=f"{name} holds no Killswitch tombstone; nothing to "
                               "restore")]
        return [ctx.change(target, before,
                           {**before, "value_version": back, "tombstone": False},
                           undo={"restore_version": back},
                           note=f"puts the value of version {back} of {name} back")]

    # -- apply ----------------------------------------------------------------------------

    def _put(self, name: str, value: str, last: Mapping[str, Any]) -> int:
        """Overwrite ``name`` keeping the type, KMS key and tier of the newest version."""
        kw: dict[str, Any] = {"Name": name, "Value": value, "Overwrite": True,
                              "Type": str(last.get("Type") or "SecureString")}
        if kw["Type"] == "SecureString" and last.get("KeyId"):
            kw["KeyId"] = last["KeyId"]
        if last.get("Tier"):  # the current tier: never downgrade Advanced to the default
            kw["Tier"] = str(last["Tier"])
        return int(self.ssm.put_parameter(**kw).get("Version") or 0)

    def _newest(self, name: str, current: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """What a tombstone put needs of the newest version (type, KMS key, tier, nonce):
        remembered from the read that produced ``current``, else read now; None when the
        parameter does not exist."""
        seen = self._seen.get(name)
        if current is not None and seen is not None and seen[0] == dict(current):
            return seen[1] if current.get("exists") else None
        state, history = self._state(name)
        del history  # values are never kept
        return self._seen[name][1] if state["exists"] else None

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Carry out ``change`` (idempotent); returns the version numbers involved.

        ``current`` is the state the engine read just before; a disable or destroy given it
        makes only its write. Putting a prior value back reads the history for that value.
        """
        if change.action == WRITE:
            return rotation.apply_write(self, change, current)
        name = self._name(change.ref)
        with self.aws.errors(name, SERVICE):
            if change.action == "credential.destroy":
                exists = current.get("exists") if current is not None else \
                    self._history(name) is not None
                if exists:
                    self.ssm.delete_parameter(Name=name)
                return {}
            back = int(change.undo["restore_version"])
            if change.action == "credential.disable" and "put_version" not in change.undo:
                last = self._newest(name, current)
                if last is None:
                    raise NotFound(f"not found in {SERVICE}: {name}", where=self.backend)
                if last.get("nonce") is None or last["nonce"] != change.undo.get("nonce"):
                    value = tombstone_value(str(change.undo.get("run") or ""), change.op_id,
                                            previous_version=str(back),
                                            nonce=str(change.undo.get("nonce") or ""))
                    self._put(name, value, last)
                return {"restore_version": back}
            history = self._history(name)  # the prior value, in memory only
            if history is None:
                raise NotFound(f"not found in {SERVICE}: {name}", where=self.backend)
            last = history[-1]
            back = int(change.undo.get("put_version") or back)
            prior = next((p for p in history if int(p["Version"]) == back), None)
            if prior is None:
                raise NotFound(f"version {back} of {name} is no longer in the parameter "
                               "history (Parameter Store keeps 100 versions)",
                               where=self.backend, hint="put a newly issued key")
            if digest(prior.get("Value")) != digest(last.get("Value")):
                self._put(name, str(prior["Value"]), last)
            del prior, history, last  # values are never kept
            return {"restore_version": back}

    # -- verify ---------------------------------------------------------------------------

    def verify(self, change: Change) -> Verdict:
        """One read of the parameter's history, decrypted: its newest version is what an
        application's ``GetParameter WithDecryption`` returns, judged against the value of
        the recorded version (fingerprints compared)."""
        if change.action == WRITE:
            return rotation.verify_write(self, change)
        name = self._name(change.ref)
        with self.aws.errors(name, SERVICE):
            history = self._history(name)
        if history is None:
            return Verdict(change.action != "credential.enable", "dead",
                           f"a read of {name} fails: ParameterNotFound")
        if change.action == "credential.destroy":
            del history
            return Verdict(False, "live", f"{name} still exists and is readable")
        value = history[-1].get("Value")
        current, tomb = digest(value), is_tombstone(value)
        back = int(change.undo.get("restore_version") or 0)
        old = next((digest(p.get("Value")) for p in history if int(p["Version"]) == back), "")
        del value, history  # only fingerprints are compared
        if change.action == "credential.enable":
            if tomb is None and current == old:
                return Verdict(True, "restored", f"a read of {name} returns the value of "
                               f"version {back} again")
            return Verdict(False, "dead", f"a read of {name} does not return the value of "
                           f"version {back}")
        if tomb is not None and current != old:
            return Verdict(True, "dead", f"a read of {name} returns the tombstone, not the "
                           f"value of version {back} (fingerprints compared)")
        return Verdict(False, "live", f"a read of {name} still returns a key")

    # -- undo -----------------------------------------------------------------------------

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """The change that puts the prior value back (or tombstones it again).

        Raises:
            UndoUnsupported: destroy, and changes that did nothing.
        """
        if change.action == WRITE:
            return rotation.inverse_write(self, change, applied)
        if not change.reversible or change.action == "credential.destroy":
            raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone: "
                                  "DeleteParameter removes every version",
                                  where=change.target, hint="put a newly issued key")
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in the "
                                  "wanted state before this run", where=change.target)
        back = "credential.enable" if change.action == "credential.disable" \
            else "credential.disable"
        undo: dict[str, Any] = {**change.undo, **dict(applied)}
        if back == "credential.disable":  # redo: put the very same tombstone value back
            undo = {"restore_version": change.after["value_version"],
                    "put_version": change.before["value_version"]}
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}", action=back, backend=change.backend,
            adapter=change.adapter, target=change.target, ref=dict(change.ref),
            before=dict(change.after), after=dict(change.before), reversible=True, undo=undo,
            note=(f"puts the value of version {undo.get('restore_version')} of "
                  f"{change.target} back" if back == "credential.enable"
                  else f"tombstones {change.target} again"),
            inverse_of=change.op_id)

    # -- reveal / scan --------------------------------------------------------------------

    def reveal(self, ref: Mapping[str, Any]) -> str | None:
        """The key the reference points at, decrypted in memory only; None if unreadable."""
        from botocore.exceptions import ClientError

        name = self._name(ref)
        with self.aws.errors(name, SERVICE):
            try:
                raw = self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
            except ClientError as exc:
                if (exc.response.get("Error") or {}).get("Code") == "ParameterNotFound":
                    return None
                raise
            return pick_value(raw.get("Value"), str(ref.get("field") or "") or None)

    def scan(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every SecureString value (each JSON string field), with a reference."""
        with self.aws.errors("describe_parameters", SERVICE):
            pages = self.ssm.get_paginator("describe_parameters").paginate(
                ParameterFilters=[{"Key": "Type", "Values": ["SecureString"]}])
            names = [p["Name"] for page in pages for p in page.get("Parameters") or []]
        for i in range(0, len(names), 10):
            with self.aws.errors(", ".join(names[i:i + 10]), SERVICE):
                got = self.ssm.get_parameters(Names=names[i:i + 10], WithDecryption=True)
            for p in got.get("Parameters") or []:
                raw = str(p.get("Value") or "")
                if is_tombstone(raw):
                    continue
                for field, value in string_fields(raw):
                    ref: dict[str, Any] = {"backend": self.backend, "name": p["Name"]}
                    if field is not None:
                        ref["field"] = field
                    yield ref, value

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: the parameter's version history without values
        (``WithDecryption=False``, ``Value`` dropped; :mod:`adapters.preserve_aws`)."""
        from adapters.preserve_aws import preserve_ssm

        preserve_ssm(self, ref, sink)
