"""Rotation on the gcp-keys adapter: a new key of the same service account (``credential.issue``),
the old key(s) disabled (``credential.retire``).

Issue: ``POST https://iam.googleapis.com/v1/projects/{p}/serviceAccounts/{sa}/keys`` with
``{"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE", "keyAlgorithm": "KEY_ALG_RSA_2048"}``
answers a ``ServiceAccountKey`` whose ``privateKeyData`` is the base64 of the JSON key file
(the only time Google hands it out; it keeps the public key only)
(https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts.keys/create,
``ServiceAccountKey`` in the same reference). The decoded key file is the new key's value, as a
store copy holds it (applications load it with ``GOOGLE_APPLICATION_CREDENTIALS``); it goes
into :data:`~adapters.rotation.KEYRING` only, the change records the key id and fingerprint.

What proves the new key works, honestly: the adapter cannot probe a GCP key the way an
application uses it without asking Google for a token (``CAN_PROBE`` stays False). Verify
instead checks that the key file loads with google-auth as an application's would
(``service_account.Credentials.from_service_account_info``), names this account and key, that
IAM lists the key enabled and inside its validity window, and that a signature made with the
file's private key verifies against the public key IAM publishes for that key id (``keys.get``
with ``publicKeyType=TYPE_X509_PEM_FILE``), which is what Google's token endpoint checks. No
token is requested.

States (``before`` / ``after`` / :func:`read_issue`): ``{"issued": bool, "held": bool}``: the
key this process holds for the run and integration is listed (held) and enabled (issued). A
key whose create answer was lost cannot be recognised (keys have no name): it is left listed,
unusable by anyone since nobody saw its private key; the retry issues another.

Retire disables the old key(s) as ``credential.disable`` does, never the rotation's new key
(a reference without ``key`` means every user-managed key: the new one is left out).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from adapters.base import NOOP, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.rotation import ISSUE, KEYRING, NewKey
from adapters.rotation_help import ISSUED, held_key, new_key_in_place, retire_changes
from console.errors import AdapterError, UndoUnsupported

if TYPE_CHECKING:
    from adapters.gcp_keys import GcpServiceAccountKeyAdapter

__all__ = ["CREATE_BODY", "apply_issue", "guard_retire", "inverse_issue", "plan_issue",
           "plan_retire", "read_issue", "verify_issue"]

CREATE_BODY: Mapping[str, str] = {"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
                                  "keyAlgorithm": "KEY_ALG_RSA_2048"}
"""The body of ``keys.create``: a Google credentials (JSON key) file, RSA 2048."""


def _held(run: str, integration: str) -> NewKey | None:
    key = held_key(run, integration)
    return key if key is not None and key.source == "issued" and key.key_id else None


def _run(a: GcpServiceAccountKeyAdapter, change: Change) -> str:
    return a.run_id or str(change.undo.get("run") or "")


def _state(a: GcpServiceAccountKeyAdapter, ref: Mapping[str, Any], run: str,
           integration: str) -> dict[str, bool]:
    project, sa, _, target = a._ref(ref)
    keys = a._keys(project, sa, "", target)
    key = _held(run, integration)
    listed = keys.get(key.key_id) if key is not None else None
    return {"issued": listed is not None and not listed.get("disabled"),
            "held": listed is not None}


def plan_issue(a: GcpServiceAccountKeyAdapter, ref: Mapping[str, Any],
               ctx: PlanContext) -> list[Change]:
    """List the account's keys (read-only) and plan a new key for it."""
    project, sa, key, target = a._ref(ref)
    ctx = plan_context(a, ISSUE, ref, ctx)
    run = ctx.run_id or a.run_id
    before = _state(a, ref, run, ctx.integration)
    where = f"{a.backend}:{sa} (new key)"
    undo = {"run": run}
    if before == dict(ISSUED):
        return [ctx.change(where, before, ISSUED, undo=undo, status=NOOP,
                           note=f"a new key of {sa} was issued earlier in this run")]
    return [ctx.change(where, before, ISSUED, undo=undo, note=(
        f"creates a new key of {sa} (POST projects/{project}/serviceAccounts/{sa}/keys, a JSON "
        "key file); the file stays in memory for the write steps, the trail gets its key id "
        f"and fingerprint; {target} keeps working until the retire step"))]


def read_issue(a: GcpServiceAccountKeyAdapter, change: Change) -> dict[str, bool]:
    """``{"issued", "held"}`` of the key this process holds (see the module doc)."""
    return _state(a, change.ref, _run(a, change), change.integration)


def _key_file(body: Mapping[str, Any], sa: str, kid: str) -> str:
    """The decoded key file of a create answer, checked to be this account's key file.

    Raises:
        AdapterError: No key data, or not a service-account key file of ``sa`` / ``kid``
            (the message never quotes the data).
    """
    try:
        text = base64.b64decode(str(body.get("privateKeyData") or ""), validate=True).decode()
        info = json.loads(text)
    except (binascii.Error, ValueError) as exc:
        raise AdapterError(f"GCP IAM answered the new key {kid or '?'} of {sa} without a "
                           "readable JSON key file", where=sa) from exc
    if not isinstance(info, dict) or info.get("type") != "service_account" or \
            info.get("client_email") != sa or info.get("private_key_id") != kid:
        raise AdapterError(f"GCP IAM answered the new key {kid or '?'} of {sa} with a file "
                           "that is not this account's key file", where=sa)
    return text


def apply_issue(a: GcpServiceAccountKeyAdapter, change: Change) -> dict[str, Any]:
    """Create the key and put its key file in KEYRING (a held, listed key is kept).

    Returns:
        ``{"new_key_id", "fingerprint", "service_account", "valid_before"}``.

    Raises:
        AdapterError: IAM refused (key creation disabled by policy, the account's key limit)
            or answered without a key file of this account.
    """
    project, sa, _, target = a._ref(change.ref)
    run = _run(a, change)
    key = _held(run, change.integration)
    if key is not None and key.key_id in a._keys(project, sa, "", target):
        return {"new_key_id": key.key_id, "fingerprint": key.fingerprint,
                "service_account": sa, "valid_before": ""}
    body = a.api.request("POST", f"/v1/projects/{project}/serviceAccounts/{sa}/keys",
                         f"{sa} (new key)", body=dict(CREATE_BODY)) or {}
    kid = str(body.get("name") or "").rsplit("/", 1)[-1]
    try:
        text = _key_file(body, sa, kid)
    except AdapterError as exc:
        exc.where = a.backend
        raise
    key = NewKey(value=text, key_id=kid, source="issued")
    KEYRING.put(run, change.integration, key)
    return {"new_key_id": kid, "fingerprint": key.fingerprint, "service_account": sa,
            "valid_before": str(body.get("validBeforeTime") or "")}


def _when(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def verify_issue(a: GcpServiceAccountKeyAdapter, change: Change) -> Verdict:
    """The new key file loads, is IAM's enabled, valid key, and signs as IAM expects."""
    project, sa, _, _ = a._ref(change.ref)
    key = _held(_run(a, change), change.integration)
    if key is None:
        return Verdict(False, "unknown", f"the new key of {change.integration} is not in this "
                       "process's memory: it cannot be checked (rotate again)")
    return _check(a, project, sa, key)


def guard_retire(a: GcpServiceAccountKeyAdapter, change: Change) -> None:
    """Before the old key(s) are disabled: this rotation's new key checks out.

    Raises:
        Conflict: No new key in memory, or it does not check out: nothing was changed.
    """
    project, sa, _, _ = a._ref(change.ref)
    new_key_in_place(change, _held(a.run_id, change.integration),
                     lambda k: _check(a, project, sa, k), a.backend)


def _check(a: GcpServiceAccountKeyAdapter, project: str, sa: str, key: NewKey) -> Verdict:
    from google.auth.crypt import RSAVerifier
    from google.oauth2 import service_account

    what = f"the new key {key.key_id} ({key.fingerprint})"
    try:
        creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            json.loads(key.value))
    except ValueError as exc:
        return Verdict(False, "dead", f"{what} does not load with google-auth: "
                       f"{type(exc).__name__}")
    got = a.api.request("GET", f"/v1/projects/{project}/serviceAccounts/{sa}/keys/{key.key_id}",
                        f"{sa} key {key.key_id}", missing_ok=True,
                        params={"publicKeyType": "TYPE_X509_PEM_FILE"})
    if got is None:
        return Verdict(False, "dead", f"{what} is not listed by GCP IAM")
    now = dt.datetime.now(dt.UTC)
    after, before = _when(got.get("validAfterTime")), _when(got.get("validBeforeTime"))
    if got.get("disabled") or (after and now < after) or (before and now >= before):
        return Verdict(False, "dead", f"{what} is listed disabled or outside its validity "
                       f"({got.get('validAfterTime')} .. {got.get('validBeforeTime')})")
    message = b"killswitch rotation check " + os.urandom(16)
    try:
        cert = base64.b64decode(str(got.get("publicKeyData") or ""), validate=True)
        verifier = RSAVerifier.from_string(cert)  # type: ignore[no-untyped-call]
        signed = verifier.verify(message, creds.signer.sign(message))
    except (binascii.Error, ValueError) as exc:
        return Verdict(False, "unknown", f"{what}: GCP IAM published no usable public key "
                       f"({type(exc).__name__})")
    if not signed:
        return Verdict(False, "dead", f"{what}: its private key does not match the public key "
                       "GCP IAM publishes for it")
    return Verdict(True, "works", f"{what} loads with google-auth as an application's would, "
                   "its signature verifies against the public key GCP IAM publishes for it, "
                   f"and IAM lists it enabled until {got.get('validBeforeTime') or '?'} (no "
                   "token was requested from Google)")


def inverse_issue(a: GcpServiceAccountKeyAdapter, change: Change,
                  applied: Mapping[str, Any]) -> Change:
    """Disable the new key (reversible; delete it later if it is not wanted).

    Raises:
        UndoUnsupported: This change issued no key.
    """
    kid = str(applied.get("new_key_id") or "")
    if change.status == NOOP or not kid:
        raise UndoUnsupported(f"nothing to undo on {change.target}: this step issued no key",
                              where=change.target)
    _, sa, _, _ = a._ref(change.ref)
    ref = {k: v for k, v in change.ref.items() if k in ("backend", "project")}
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action="credential.disable", backend=change.backend,
        adapter=change.adapter, target=f"{change.backend}:{sa} key {kid}",
        ref={**ref, "service_account": sa, "key": kid},
        before={"keys": {kid: {"disabled": False}}}, after={"keys": {kid: {"disabled": True}}},
        reversible=True, undo={"keys": [kid]},
        note=f"disables the NEW key {kid} ({applied.get('fingerprint') or ''}) the rotation "
        "created: copies written with it stop working; undo enables it", inverse_of=change.op_id)


def plan_retire(a: GcpServiceAccountKeyAdapter, ref: Mapping[str, Any],
                ctx: PlanContext) -> list[Change]:
    """The disable of the old key(s), relabelled retire, leaving the rotation's key out."""
    changes = a.plan("credential.disable", ref, ctx)
    new = _held(ctx.run_id or a.run_id, ctx.integration)
    out = []
    for c in changes:
        ids = [k for k in c.undo.get("keys") or [] if new is None or k != new.key_id]
        if new is not None and new.key_id in (c.undo.get("keys") or []):
            after = {"keys": {**c.after["keys"], new.key_id: c.before["keys"][new.key_id]}}
            c = replace(c, after=after, undo={**c.undo, "keys": ids},
                        status=c.status if ids else NOOP)
        out.append(c)
    return retire_changes(out)
