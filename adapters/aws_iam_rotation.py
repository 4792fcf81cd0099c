"""Rotation on the aws-iam adapter: a new access key, the old one(s) Inactive, proof at STS.

``credential.issue`` is ``CreateAccessKey`` for the reference's user. The secret access key
goes into :data:`~adapters.rotation.KEYRING` (``NewKey(value=secret, key_id=id, fields=
{"aws_access_key_id", "aws_secret_access_key"})``), never into the change, its undo data or
the trail: those get the key's handle (``AKIA…`` + last 8) and fingerprint. IAM allows two
access keys per user (CreateAccessKey answers ``LimitExceeded``; botocore ``iam`` service
model, errors of ``CreateAccessKey``; quotas:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html), so a user who
already has two is refused in the plan, before anything changes.

States (``before`` / ``after`` / :func:`read_issue`)::

    {"user": "claims-summariser-bedrock", "keys": {"AKIA…Q2ZTFTT1": "Active"},
     "new_key": "none yet"}                          # after: "issued by this run"

``keys`` are the keys the plan saw. A key that appeared since, without this process holding
its secret (an apply whose answer was lost, a crash, someone else), reads as drift: the
engine refuses it (exit 3) and the state names the key and what to do, and no second key is
ever created.

``credential.retire`` sets the keys the plan saw Inactive (the ones the inventory names, or
every key the user had before the rotation), never the new one; it refuses to act while the
user has no other Active key, and, where the backend tests keys, while the new key does not
work at STS yet (IAM is eventually consistent: it waits up to :data:`PROPAGATION` seconds).
Undo of an issue deactivates the new key; undo of a retire re-enables the OLD key (restore
asks for consent: it may be the leaked one).

:func:`probe` tests a secret the way an application would: STS ``GetCallerIdentity`` signed
with it ("No permissions are required to perform this operation": botocore ``sts`` service
model). A store copy holds the secret (what ``reveal`` returns); the access key id it pairs
with is found by signing with each access key id of the users this backend listed for the
run (at most :data:`MAX_CANDIDATES`): any success means live; ``InvalidClientTokenId`` (an
Inactive or unknown key) or ``SignatureDoesNotMatch`` (not this key's secret) from every one
means revoked. A JSON value holding ``aws_access_key_id`` and ``aws_secret_access_key`` is
tested as that pair.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from adapters.aws_common import finish
from adapters.base import ERROR, NOOP, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.rotation import ISSUE, KEYRING, RETIRE, NewKey
from console.errors import AdapterError, Conflict, UndoUnsupported

if TYPE_CHECKING:
    from adapters.aws_iam import IamAccessKeyAdapter

__all__ = ["ISSUED_HERE", "KEY_LIMIT", "MAX_CANDIDATES", "NONE_YET", "PROPAGATION", "RECHECK",
           "UNISSUE", "UNRETIRE", "apply_issue", "apply_retire", "guard_unissue",
           "inverse_issue", "inverse_retire", "plan_issue", "plan_retire", "probe", "probing",
           "read_issue", "read_retire", "verify_issue", "verify_retire", "works"]

SERVICE = "IAM"
KEY_LIMIT = 2
"""Access keys IAM allows per user (active or not)."""
NONE_YET = "none yet"
ISSUED_HERE = "issued by this run"
PROPAGATION = 20.0
"""Seconds the retire step waits for a new key to work at STS (IAM is eventually
consistent); within the default 30 s per operation."""
RECHECK = 10.0
"""Seconds verify of an issue waits (the retire step already waited for it)."""
MAX_CANDIDATES = 20
"""Most access key ids one probe of a bare secret signs with."""
UNRETIRE = "unretire"
"""``undo["rotation"]`` of the change that re-enables retired keys."""
UNISSUE = "unissue"
"""``undo["rotation"]`` of the change that deactivates the rotation's new key."""
_REJECTED = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch",
                       "UnrecognizedClientException", "InvalidAccessKeyId",
                       "AuthFailure", "IncompleteSignature"})


def _handle(key_id: str) -> str:
    from adapters.aws_iam import handle

    return handle(key_id)


def _held(run: str, integration: str) -> NewKey | None:
    key = KEYRING.get(run, integration)
    return key if key is not None and key.source == "issued" else None


def probing(a: IamAccessKeyAdapter) -> bool:
    """Whether this backend tests keys at STS (option ``probe_keys``)."""
    mode = str(a.options.get("probe_keys") or "auto")
    return mode == "on" or (mode == "auto" and not a.aws.endpoint_url)


# -- issue ---------------------------------------------------------------------------------


def plan_issue(a: IamAccessKeyAdapter, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
    """Observe the user's keys; plan one new key, or refuse when IAM's limit is reached."""
    user, _, _ = a._ids(ref)
    ctx = plan_context(a, ISSUE, ref, ctx)
    a.remember(ctx.run_id, user)
    with a.aws.errors(user, SERVICE):
        keys = a._keys(user, None)
    before = {"user": user, "keys": keys, "new_key": NONE_YET}
    after = {**before, "new_key": ISSUED_HERE}
    where = f"{a.backend}:{user} (new access key)"
    if len(keys) >= KEY_LIMIT:
        listed = ", ".join(f"{h} {s}" for h, s in keys.items())
        why = (f"{user} already has {len(keys)} access keys ({listed}) and IAM allows "
               f"{KEY_LIMIT} per user: no new key can be issued; nothing will change")
        return [replace(ctx.change(where, before, after, status=ERROR, note=why), error=why,
                        precondition="")]
    probe_word = "tested at STS before the old key is retired" if probing(a) else \
        "not tested at STS (probe_keys off for this backend)"
    return [ctx.change(where, before, after, undo={"user": user}, note=(
        f"new key: issued by AWS IAM at apply (CreateAccessKey for {user}); its secret stays "
        f"in memory for the write steps, the trail gets its id and fingerprint; {probe_word}; "
        f"the current key(s) {', '.join(keys) or '(none)'} keep working until the retire "
        "step; undo deactivates the new key"))]


def _new_keys(a: IamAccessKeyAdapter, user: str,
              seen: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """``(old keys' statuses, {handle: (id, status)} of keys the plan did not see)``."""
    listed = a._list(user, None)
    old = {h: st for h, (_, st) in listed.items() if h in seen}
    return old, {h: v for h, v in listed.items() if h not in seen}


def read_issue(a: IamAccessKeyAdapter, change: Change) -> dict[str, Any]:
    """The keys the plan saw, and whether a new key is the one this run holds."""
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    a.remember(a.run_id, user)
    with a.aws.errors(user, SERVICE):
        old, new = _new_keys(a, user, change.before.get("keys") or {})
    key = _held(a.run_id, change.integration)
    if not new:
        word = NONE_YET
    elif key is not None and list(new) == [_handle(key.key_id)]:
        word = ISSUED_HERE
    else:
        names = ", ".join(new)
        word = (f"{names} appeared since the plan and this run does not hold its secret (a "
                f"lost answer or a crash?): delete it (aws iam delete-access-key --user-name "
                f"{user} --access-key-id ...) and rotate again")
    return {"user": user, "keys": old, "new_key": word}


def apply_issue(a: IamAccessKeyAdapter, change: Change,
                current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """CreateAccessKey (never retried here); the secret goes to KEYRING only.

    Returns:
        ``{"user", "new_key_id" (handle), "fingerprint"}``.

    Raises:
        Conflict: This run already holds a key for the integration from another provider,
            or IAM refused (``LimitExceeded``: two keys already).
    """
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    run, integ = a.run_id, change.integration
    held = KEYRING.get(run, integ)
    with a.aws.errors(user, SERVICE):
        if held is not None:
            if held.source == "issued" and _handle(held.key_id) in a._list(user, None):
                return _issued(user, held)
            raise Conflict(f"{integ} already has a new key in run {run} that is not an "
                           f"access key of {user} ({held.source}, {held.fingerprint}): rotate "
                           "handles one provider key per integration", where=a.backend)
        made = a.iam.create_access_key(UserName=user)["AccessKey"]
    kid, secret = str(made["AccessKeyId"]), str(made["SecretAccessKey"])
    key = NewKey(value=secret, key_id=kid, source="issued",
                 fields={"aws_access_key_id": kid, "aws_secret_access_key": secret})
    KEYRING.put(run, integ, key)
    a._key_ids[(user, _handle(kid))] = kid
    del made, secret
    return _issued(user, key)


def _issued(user: str, key: NewKey) -> dict[str, Any]:
    return {"user": user, "new_key_id": _handle(key.key_id), "fingerprint": key.fingerprint}


def works(a: IamAccessKeyAdapter, key: NewKey, wait: float) -> Verdict:
    """STS accepts ``key`` (``live``), polled for up to ``wait`` seconds while it refuses it
    (a new key propagates) or does not answer."""
    deadline = time.monotonic() + wait
    while True:
        verdict = _sts(a, key.key_id, key.value)
        if verdict.state == "live" or time.monotonic() >= deadline:
            return verdict
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def verify_issue(a: IamAccessKeyAdapter, change: Change) -> Verdict:
    """The new key is listed Active and, where this backend tests keys, works at STS."""
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    key = _held(a.run_id, change.integration)
    if key is None:
        return Verdict(False, "unknown", f"the new key of {change.integration} is not in this "
                       "process's memory (only the run that issued it held it): it cannot be "
                       "tested; rotate again")
    h = _handle(key.key_id)
    with a.aws.errors(user, SERVICE):
        status = a._keys(user, None).get(h)
    if status != "Active":
        return Verdict(False, "dead", f"ListAccessKeys shows the new key {h} of {user} "
                       f"{status or 'missing'}")
    if not probing(a):
        return Verdict(True, "issued", f"ListAccessKeys shows the new key {h} of {user} "
                       f"Active ({key.fingerprint}); not tested at STS (probe_keys is off for "
                       "this backend)")
    verdict = works(a, key, RECHECK)
    if verdict.state == "live":
        return Verdict(True, "works", f"STS GetCallerIdentity signed with the new key {h} "
                       f"({key.fingerprint}) succeeds, as an application's call would")
    return Verdict(False, "dead" if verdict.ok else "unknown",
                   f"the new key {h} ({key.fingerprint}) does not work at STS: {verdict.detail}")


def inverse_issue(a: IamAccessKeyAdapter, change: Change, applied: Mapping[str, Any]) -> Change:
    """Deactivate the new key (a ``credential.disable`` of exactly that key).

    Raises:
        UndoUnsupported: This change issued no key.
    """
    h = str(applied.get("new_key_id") or "")
    if change.status == NOOP or not h:
        raise UndoUnsupported(f"nothing to undo on {change.target}: this step issued no key",
                              where=change.target)
    user = str(applied.get("user") or change.before.get("user") or "")
    ref = {k: v for k, v in change.ref.items() if k != "access_key_id"}
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action="credential.disable", backend=change.backend,
        adapter=change.adapter, target=f"{change.backend}:{user}/{h}",
        ref={**ref, "access_key_id": h}, before={"user": user, "keys": {h: "Active"}},
        after={"user": user, "keys": {h: "Inactive"}}, reversible=True,
        undo={"keys": {h: "Active"}, "rotation": UNISSUE},
        note=f"deactivates the new key {h} ({applied.get('fingerprint') or '?'}) that the "
        "rotation issued, once another key of the user is Active again: every copy written "
        "with it stops working", inverse_of=change.op_id)


def guard_unissue(a: IamAccessKeyAdapter, change: Change) -> None:
    """Refuse to deactivate the rotation's new key while no other key of the user is Active
    (the old key's restore was held back or failed): that would leave no working key.

    Raises:
        Conflict: No other Active key; nothing was changed.
    """
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    new = set(change.before.get("keys") or {})
    with a.aws.errors(user, SERVICE):
        others = [h for h, st in a._keys(user, None).items() if h not in new and st == "Active"]
    if not others:
        raise Conflict(f"deactivating the new key {', '.join(new)} would leave {user} without "
                       "an Active access key (the old key was not re-enabled); nothing was "
                       "changed", where=a.backend,
                       hint="restore with --reenable-old-key, or deactivate it by hand once "
                            "another key works")


# -- retire --------------------------------------------------------------------------------


def plan_retire(a: IamAccessKeyAdapter, ref: Mapping[str, Any],
                ctx: PlanContext) -> list[Change]:
    """Plan the OLD key(s) (named, else every key the user has now) Inactive."""
    user, key, target = a._ids(ref)
    ctx = plan_context(a, RETIRE, ref, ctx)
    a.remember(ctx.run_id, user)
    with a.aws.errors(target, SERVICE):
        keys = a._keys(user, key)
    before = {"user": user, "keys": keys}
    after = {"user": user, "keys": dict.fromkeys(keys, "Inactive")}
    where = f"{a.backend}:{user}/{key} (old)" if key else f"{a.backend}:{user} (old keys)"
    if after == before:
        word = "no access key to retire" if not keys else "every old key is already Inactive"
        return [ctx.change(where, before, after, status=NOOP, note=f"{target}: {word}")]
    todo = [k for k, s in keys.items() if s != "Inactive"]
    first = "once the new key works at STS" if probing(a) else \
        "once the new key is in every copy"
    return [ctx.change(where, before, after, undo={"keys": dict(keys)}, note=(
        f"retires the OLD key(s) {', '.join(todo)} of {user} (Inactive) {first}; never the "
        "new key; undo re-enables the old key (restore asks for consent)"))]


def read_retire(a: IamAccessKeyAdapter, change: Change) -> dict[str, Any]:
    """Statuses of the keys the plan saw (keys issued since are not this change's)."""
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    a.remember(a.run_id, user)
    with a.aws.errors(user, SERVICE):
        old, _ = _new_keys(a, user, change.before.get("keys") or {})
    return {"user": user, "keys": old}


def _set(a: IamAccessKeyAdapter, user: str, listed: Mapping[str, tuple[str, str]],
         want: Mapping[str, str]) -> None:
    wrote = False
    for h, status in want.items():
        if h not in listed:
            raise Conflict(f"access key {h} of {user} no longer exists", where=a.backend)
        kid, now = listed[h]
        if now == status:
            continue
        update = partial(a.iam.update_access_key, UserName=user, AccessKeyId=kid, Status=status)
        # after the first write, finish here: a half-done set reads as drift
        finish(update, user, SERVICE) if wrote else update()
        wrote = True


def apply_retire(a: IamAccessKeyAdapter, change: Change,
                 current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Set the old keys Inactive, once a new key is in place (and works, where tested).

    Re-enabling retired keys (the undo) sets them Active again.

    Raises:
        Conflict: No other Active key of the user (retiring would leave none), or the new key
            does not work at STS: nothing was changed.
    """
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    want = {str(h): str(s) for h, s in (change.after.get("keys") or {}).items()}
    with a.aws.errors(user, SERVICE):
        listed = a._list(user, None)
        if change.undo.get("rotation") != UNRETIRE:
            _new_key_in_place(a, change, user, listed)
        _set(a, user, listed, want)
    return {"keys": dict(change.undo.get("keys") or change.before.get("keys") or {})}


def _new_key_in_place(a: IamAccessKeyAdapter, change: Change, user: str,
                      listed: Mapping[str, tuple[str, str]]) -> None:
    old = change.before.get("keys") or {}
    fresh = [h for h, (_, st) in listed.items() if h not in old and st == "Active"]
    key = _held(a.run_id, change.integration)
    hint = f"rotate again: killswitch run rotate {change.integration}"
    if not fresh or (key is not None and _handle(key.key_id) not in fresh):
        raise Conflict(f"no new Active access key of {user} from this rotation is in place: "
                       f"retiring {', '.join(old)} would leave {change.integration} without a "
                       "working key; nothing was changed", where=a.backend, hint=hint)
    if key is not None and probing(a):
        verdict = works(a, key, PROPAGATION)
        if verdict.state != "live":
            raise AdapterError(f"the new key {_handle(key.key_id)} ({key.fingerprint}) does "
                               f"not work at STS ({verdict.detail}): the old key(s) of {user} "
                               "stay Active; nothing was changed", where=a.backend, hint=hint)


def verify_retire(a: IamAccessKeyAdapter, change: Change) -> Verdict:
    """List again: every planned key has its planned status."""
    user = str(change.before.get("user") or a._ids(change.ref)[0])
    with a.aws.errors(user, SERVICE):
        old, new = _new_keys(a, user, change.before.get("keys") or {})
    want = dict(change.after.get("keys") or {})
    wrong = [f"{h} is {old.get(h, 'missing')}" for h, s in want.items() if old.get(h) != s]
    if change.undo.get("rotation") == UNRETIRE:
        if wrong:
            return Verdict(False, "dead", "ListAccessKeys: " + ", ".join(wrong))
        return Verdict(True, "restored", f"ListAccessKeys shows the old key(s) of {user} "
                       "Active again")
    if wrong:
        return Verdict(False, "live", "ListAccessKeys: " + ", ".join(wrong))
    live = [h for h, (_, st) in new.items() if st == "Active"]
    return Verdict(True, "dead", f"ListAccessKeys shows the old key(s) {', '.join(want)} of "
                   f"{user} Inactive; the new key {', '.join(live) or '(none)'} stays Active "
                   "(IAM propagation takes seconds)")


def inverse_retire(a: IamAccessKeyAdapter, change: Change,
                   applied: Mapping[str, Any]) -> Change:
    """Re-enable the OLD key(s) the retire deactivated (restore asks for consent).

    Raises:
        UndoUnsupported: The retire changed nothing.
    """
    if change.status == NOOP:
        raise UndoUnsupported(f"nothing to undo on {change.target}: the old key was already "
                              "Inactive before this run", where=change.target)
    keys = dict(applied.get("keys") or change.before.get("keys") or {})
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action="credential.enable", backend=change.backend,
        adapter=change.adapter, target=change.target, ref=dict(change.ref),
        before=dict(change.after), after={**change.before, "keys": keys}, reversible=True,
        undo={"rotation": UNRETIRE, "keys": dict(change.after.get("keys") or {})},
        note="re-enables the OLD key(s) the rotation retired (it may be the leaked one): "
        + ", ".join(f"{h} {s}" for h, s in keys.items()), inverse_of=change.op_id)


# -- probe ---------------------------------------------------------------------------------


def _sts(a: IamAccessKeyAdapter, key_id: str, secret: str) -> Verdict:
    """One STS GetCallerIdentity signed with ``key_id`` / ``secret``."""
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from adapters.aws_common import _shared_loader

    h = _handle(key_id)
    core = botocore.session.Session()
    core.register_component("data_loader", _shared_loader())
    try:
        sts = core.create_client(
            "sts", region_name=a.aws.region or "us-east-1", endpoint_url=a.aws.endpoint_url,
            aws_access_key_id=key_id, aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=a.aws.timeout,
                          read_timeout=a.aws.timeout))
        sts.meta.events.register("before-send", a.aws._name_the_run)
        try:
            sts.get_caller_identity()
        finally:
            sts.close()
    except ClientError as exc:
        code = str((exc.response.get("Error") or {}).get("Code") or "")
        if code in _REJECTED:
            return Verdict(True, "revoked", f"STS refuses it with {h}: {code}")
        return Verdict(False, "unknown", f"STS answered {code or 'an error'} for {h}")
    except BotoCoreError as exc:
        return Verdict(False, "unknown", f"STS did not answer: {type(exc).__name__}")
    return Verdict(False, "live", f"STS GetCallerIdentity accepts it as {h}")


def _pair(value: str) -> tuple[str, str] | None:
    if not value.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kid, secret = data.get("aws_access_key_id"), data.get("aws_secret_access_key")
    if isinstance(kid, str) and isinstance(secret, str) and kid and secret:
        return kid, secret
    return None


def probe(a: IamAccessKeyAdapter, value: str) -> Verdict:
    """Test ``value`` at STS as an application would (see the module docstring)."""
    pair = _pair(value)
    if pair is not None:
        return _sts(a, *pair)
    ids = a.candidates()
    if not ids:
        return Verdict(False, "unknown", "no access key id to test the secret with: this "
                       "backend listed no IAM user's keys in this run")
    if len(ids) > MAX_CANDIDATES:
        return Verdict(False, "unknown", f"{len(ids)} access key ids could pair with the "
                       f"secret (at most {MAX_CANDIDATES} are tried): store the key as JSON "
                       "with aws_access_key_id to test it")
    answers = []
    for kid in ids:
        verdict = _sts(a, kid, value)
        if verdict.state == "live":
            return verdict
        answers.append((kid, verdict))
    if all(v.ok for _, v in answers):
        return Verdict(True, "revoked", "STS GetCallerIdentity refuses it with each access key "
                       "id of the run's IAM users: " + ", ".join(
                           f"{_handle(k)} {v.detail.rsplit(': ', 1)[-1]}" for k, v in answers))
    unsure = next(v for _, v in answers if not v.ok)
    return Verdict(False, "unknown", unsure.detail)
