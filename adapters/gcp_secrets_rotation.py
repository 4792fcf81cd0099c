"""Rotation on the gcp-secrets adapter: ``credential.write`` adds a version holding the new key.

``POST /v1/{parent=projects/*/secrets/*}:addVersion`` (regional names on their regional
endpoint, as every call of the adapter) with ``payload.data`` and ``payload.dataCrc32c``: the
service verifies the checksum of what it received
(https://cloud.google.com/secret-manager/docs/reference/rest/v1/SecretPayload). The payload is
the run's new key from :data:`~adapters.rotation.KEYRING`, shaped like the copy it replaces
as every store shapes it (:func:`adapters.rotation_stores.compose`: a JSON object keeps its
other fields; a GCP key file replaces the whole text). Its value never leaves memory except to
Google.

States (``before`` / ``after`` / :func:`read_write`)::

    {"latest_enabled": "2", "new_key": false}         -> {"latest_enabled": "new version",
                                                          "new_key": true}

``latest_enabled`` is the newest ENABLED version, reported as ``new version`` once it is newer
than the one the plan observed (Google numbers versions itself); ``new_key`` says whether its
value is the new key (fingerprints compared in memory). A version that someone disabled since
the plan shows as drift.

Verify reads ``versions/latest`` the way an application does and compares fingerprints.

Undo adds a version holding the previous version's value back (the OLD key, so restore asks
for consent), so that ``versions/latest`` reads it again. Disabling the rotation's version
would not do that: ``latest`` is the most recently *created* version, and Google does not skip
a disabled one, so every read of ``latest`` would fail (Secret Manager versions reference,
"latest"). The rotation's version stays, readable by its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.base import NOOP, Change, PlanContext, Verdict
from adapters.common import plan_context
from adapters.rotation import WRITE
from adapters.rotation_help import held_key, holds_key, missing_key
from adapters.rotation_stores import compose
from console.errors import AdapterError, UndoUnsupported

if TYPE_CHECKING:
    from adapters.gcp_secrets import GcpSecretManagerAdapter

__all__ = ["NEW_VERSION", "WRITE", "apply_write", "crc32c", "inverse_write", "plan_write",
           "read_write", "verify_write"]

NEW_VERSION = "new version"
"""``latest_enabled`` of a version newer than the one the plan observed."""


def _table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 appendix B.4) of ``data``, as ``dataCrc32c`` wants it."""
    c = 0xFFFFFFFF
    for byte in data:
        c = _CRC[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _field(ref: Mapping[str, Any]) -> str | None:
    return str(ref.get("field") or "") or None


def _latest_enabled(a: GcpSecretManagerAdapter, name: str) -> str:
    enabled = [k for k, v in a._versions(name).items() if v["state"] == "ENABLED"]
    return max(enabled, key=int) if enabled else ""


def _text(a: GcpSecretManagerAdapter, version: str) -> bytes:
    """The payload of one version (in memory only)."""
    resp = a._client_for(version).access_secret_version(name=version, **a._kw())
    return bytes(resp.payload.data)


def _shown(latest: str, planned: str) -> str:
    if latest and (not planned or int(latest) > int(planned)):
        return NEW_VERSION
    return latest


def _fingerprint(a: GcpSecretManagerAdapter, change: Change) -> str:
    """What ``new_key`` compares with: the run's new key, else the one an undo recorded."""
    if not change.undo.get("restore_from"):
        key = held_key(a.run_id or str(change.undo.get("run") or ""), change.integration)
        if key is not None:
            return key.fingerprint
    return str(change.undo.get("fingerprint") or "")


def _state(a: GcpSecretManagerAdapter, name: str, planned: str, fingerprint: str,
           field: str | None) -> dict[str, Any]:
    latest = _latest_enabled(a, name)
    holds = bool(latest) and bool(fingerprint) and holds_key(
        _text(a, f"{name}/versions/{latest}").decode("utf-8", "replace"), fingerprint, field)
    return {"latest_enabled": _shown(latest, planned), "new_key": holds}


def plan_write(a: GcpSecretManagerAdapter, ref: Mapping[str, Any],
               ctx: PlanContext) -> list[Change]:
    """Observe the newest ENABLED version (read-only) and plan a version with the new key."""
    name = a._name(ref)
    ctx = plan_context(a, WRITE, ref, ctx)
    run = ctx.run_id or a.run_id
    key = held_key(run, ctx.integration)
    with a._errors(name):
        latest = _latest_enabled(a, name)
        before = _state(a, name, latest, key.fingerprint if key else "", _field(ref))
    after = {"latest_enabled": NEW_VERSION, "new_key": True}
    undo = {"run": run, "previous_version": latest}
    target = f"{a.backend}:{name}"
    if before["new_key"]:
        return [ctx.change(target, before, before, undo=undo, status=NOOP,
                           note=f"version {latest} of {name} already holds the new key")]
    was = f"version {latest}" if latest else "no enabled version"
    return [ctx.change(target, before, after, undo=undo, note=(
        f"adds a version to {name} holding the rotation's new key (from memory; a JSON copy "
        f"keeps its other fields); applications reading versions/latest get it instead of "
        f"{was}; undo adds the previous value back as a newer version"))]


def read_write(a: GcpSecretManagerAdapter, change: Change) -> dict[str, Any]:
    """``{"latest_enabled", "new_key"}`` relative to the version the plan observed."""
    name = a._name(change.ref)
    with a._errors(name):
        return _state(a, name, str(change.before.get("latest_enabled") or ""),
                      _fingerprint(a, change), _field(change.ref))


def _add(a: GcpSecretManagerAdapter, name: str, data: bytes) -> str:
    """addVersion with the payload's CRC-32C; the new version's id."""
    with a._errors(name):
        made = a._client_for(name).add_secret_version(
            request={"parent": name, "payload": {"data": data, "data_crc32c": crc32c(data)}},
            **a._kw())
    return str(made.name).rsplit("/", 1)[-1]


def apply_write(a: GcpSecretManagerAdapter, change: Change) -> dict[str, Any]:
    """Add a version holding the new key (or, for an undo, the previous value back).

    Returns:
        ``{"versions": [id], "fingerprint", "previous_version"}`` (an undo:
        ``{"versions": [id], "restored_from"}``).

    Raises:
        AdapterError: This process holds no new key for the run and integration (nothing is
            written), or Google refused.
    """
    if change.undo.get("restore_from"):
        return _apply_restore(a, change)
    name, field = a._name(change.ref), _field(change.ref)
    run = a.run_id or str(change.undo.get("run") or "")
    key = held_key(run, change.integration)
    if key is None:
        raise missing_key(change.integration, run, name, a.backend)
    with a._errors(name):
        latest = _latest_enabled(a, name)
        old = _text(a, f"{name}/versions/{latest}").decode("utf-8", "replace") if latest \
            else None
    previous = str(change.undo.get("previous_version") or "")
    if old is not None and holds_key(old, key.fingerprint, field):
        return {"versions": [latest], "fingerprint": key.fingerprint,
                "previous_version": previous}
    new_id = _add(a, name, compose(old, change.ref, key).encode())
    return {"versions": [new_id], "fingerprint": key.fingerprint,
            "previous_version": previous or latest}


def _apply_restore(a: GcpSecretManagerAdapter, change: Change) -> dict[str, Any]:
    name = a._name(change.ref)
    source = str(change.undo["restore_from"])
    with a._errors(name):
        states = a._versions(name)
        if states.get(source, {}).get("state") != "ENABLED":
            raise AdapterError(f"version {source} of {name} is "
                               f"{states.get(source, {}).get('state', 'gone')}: its value "
                               "cannot be read back", where=a.backend,
                               hint=f"enable version {source} first, or write the key by hand")
        data = _text(a, f"{name}/versions/{source}")
    return {"versions": [_add(a, name, data)], "restored_from": source}


def verify_write(a: GcpSecretManagerAdapter, change: Change) -> Verdict:
    """Read ``versions/latest`` as an application does: it holds the new key (or, for an
    undo, the previous value)."""
    name = a._name(change.ref)
    source = str(change.undo.get("restore_from") or "")
    want = "" if source else _fingerprint(a, change)
    what = f"version {source}'s value" if source else f"the new key ({want})"
    if not source and not want:
        return Verdict(False, "unknown", f"the new key of {change.integration} is not in this "
                       f"process's memory: {name} cannot be compared")
    with a._errors(name):
        readable, why = a._access(f"{name}/versions/latest")
        data = _text(a, f"{name}/versions/latest") if readable else b""
        same = bool(source) and readable and data == _text(a, f"{name}/versions/{source}")
    if not readable:
        return Verdict(False, "dead", f"an application read of {name} (versions/latest) fails: "
                       f"{why}")
    if same or (want and holds_key(data.decode("utf-8", "replace"), want, _field(change.ref))):
        return Verdict(True, "restored" if source else "written",
                       f"an application read of {name} (versions/latest) returns {what}")
    return Verdict(False, "stale", f"an application read of {name} (versions/latest) does not "
                   f"return {what}")


def inverse_write(a: GcpSecretManagerAdapter, change: Change,
                  applied: Mapping[str, Any]) -> Change:
    """Add the previous version's value back as a newer version (see the module doc).

    Raises:
        UndoUnsupported: Nothing was written, or the copy had no value before.
    """
    if change.undo.get("restore_from"):
        raise UndoUnsupported(f"{change.target}: the undo of a rotation's write is not undone "
                              "in turn; rotate again", where=change.target)
    written = [str(v) for v in applied.get("versions") or []]
    previous = str(applied.get("previous_version") or change.undo.get("previous_version") or "")
    if change.status == NOOP or not written:
        raise UndoUnsupported(f"nothing to undo on {change.target}: this step wrote nothing",
                              where=change.target)
    if not previous or previous == written[0]:
        raise UndoUnsupported(f"nothing to put back on {change.target}: the copy had no "
                              "other enabled version before the rotation", where=change.target,
                              hint=f"disable version {written[0]} if it must go")
    return Change(
        op_id=f"{change.op_id}:undo", integration=change.integration,
        step=f"undo-{change.step}", action=WRITE, backend=change.backend,
        adapter=change.adapter, target=change.target, ref=dict(change.ref),
        before={"latest_enabled": written[0], "new_key": True},
        after={"latest_enabled": NEW_VERSION, "new_key": False}, reversible=False,
        undo={"restore_from": previous, "fingerprint": applied.get("fingerprint") or ""},
        note=f"adds a version holding version {previous}'s value (the OLD key) back, so "
        f"versions/latest reads it again; version {written[0]} with the rotation's key stays, "
        "readable by its id", inverse_of=change.op_id)
