"""HashiCorp Vault / OpenBao adapter (hvac): KV v2 soft delete, destroy, token and lease revoke.

Backend options::

    [backends.vault-sandbox]
    type = "vault"
    url = "http://127.0.0.1:8299"
    token_env = "VAULT_TOKEN"              # env var holding the console's token (default)
    token_file = ".sandbox/openbao.token"  # fallback file, like ~/.vault-token (optional)
    namespace = ""                         # X-Vault-Namespace (optional)
    verify_tls = true

Inventory references (``kind`` defaults to ``kv``)::

    {backend = "vault-sandbox", kind = "kv", mount = "secret", path = "ai/support-bot/openai"}
    {backend = "vault-sandbox", kind = "token", accessor = "hAbC..."}
    {backend = "vault-sandbox", kind = "lease", prefix = "auth/token/create/support-bot"}

State shapes (``before`` / ``after`` / :meth:`VaultAdapter.read`)::

    kv     {"version": 3, "deleted": false, "destroyed": false}
    token  {"active": true, "policies": 2}        after revoke: {"active": false}
    lease  {"active": true}                       after revoke: {"active": false}

Token and lease states hold no TTL or lease count, which change on their own and would make
every plan look stale; the count and TTL are in the change's ``note``.

Rotation (:mod:`adapters.vault_rotation`): ``credential.write`` writes the run's new key as a
new KV v2 version (check-and-set); undo writes the old data back as a new version.

Example runbook step::

    [[steps]]
    id = "revoke-vault"
    action = "credential.disable"
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import hvac
import hvac.adapters
import hvac.exceptions

from adapters import vault_rotation as rotation
from adapters.base import (
    NOOP,
    ActionSpec,
    Adapter,
    Change,
    PlanContext,
    Verdict,
    map_errors,
)
from adapters.common import path_option, plan_context
from adapters.evidence import EvidenceSink
from adapters.rotation import WRITE
from adapters.secretvalue import pick_value
from adapters.specs.vault import VAULT, VaultOptions
from adapters.vault_errors import RetryAfterAdapter, translate_error
from console.errors import (
    AdapterError,
    AuthError,
    UndoUnsupported,
)

__all__ = ["VaultAdapter", "translate_error"]

_KINDS = ("kv", "token", "lease")
_REVOKE_NOTE = (
    "irreversible: Vault cannot suspend a token; revoke is permanent; "
    "restore means issuing new credentials"
)


class VaultAdapter(Adapter):
    """Kill credentials stored in Vault / OpenBao.

    ``credential.disable`` soft-deletes the current KV v2 version (undo: ``credential.enable``
    undeletes exactly that version); ``credential.destroy`` destroys it for good. On token and
    lease references both revoke (by accessor / by prefix), which cannot be undone.
    """

    name: ClassVar[str] = "vault"
    Options: ClassVar[type[VaultOptions]] = VaultOptions
    OPTIONS: ClassVar[Mapping[str, str]] = VaultOptions.lazy_help()
    ACTIONS: ClassVar[Mapping[str, ActionSpec]] = VAULT.actions  # adapters/specs/vault.py
    SUPPORTS_UNDO: ClassVar[bool] = True
    CAN_REVEAL: ClassVar[bool] = True
    CAN_PRESERVE: ClassVar[bool] = True

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        super().__init__(backend, options)
        url = str(self.options.get("url") or "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise AdapterError(f"backend {backend!r}: option url must be an http(s) URL, "
                               f"got {url!r}", where=backend, hint='e.g. url = "http://127.0.0.1:8299"')
        self.url = url
        self.token_env = str(self.options.get("token_env") or "VAULT_TOKEN")
        self.token_file = path_option(self.options, "token_file")
        self.namespace = str(self.options.get("namespace") or "") or None
        self.verify_tls = bool(self.options.get("verify_tls", True))
        self._client: hvac.Client | None = None

    # -- clients --------------------------------------------------------------------------

    def _token(self) -> str:
        token = os.environ.get(self.token_env, "").strip()
        if token:
            return token
        if self.token_file is not None and self.token_file.is_file():
            try:
                token = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise AuthError(f"cannot read Vault token file {self.token_file}: "
                                f"{exc.strerror}", where=self.backend) from exc
            if token:
                return token
        where_file = f" and token file {self.token_file} does not exist or is empty" \
            if self.token_file else " and no token_file is configured"
        raise AuthError(
            f"no Vault token for backend {self.backend!r}: environment variable "
            f"{self.token_env} is not set{where_file}",
            where=self.backend,
            hint=f"export {self.token_env}=<token> (e.g. from `bao login`), or set token_file "
            "in the backend config; for the sandbox run `killswitch sandbox start`",
        )

    def open(self) -> None:
        """Build the hvac client (reads the token; no request is sent)."""
        if self._client is not None:
            return
        self._client = hvac.Client(url=self.url, token=self._token(), namespace=self.namespace,
                                   verify=self.verify_tls, adapter=RetryAfterAdapter)

    def close(self) -> None:
        """Drop the client and its HTTP session."""
        if self._client is not None:
            self._client.adapter.close()
            self._client = None

    @property
    def client(self) -> hvac.Client:
        """The hvac client, opened on first use."""
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    def _errors(self, target: str) -> AbstractContextManager[None]:
        return map_errors(self.backend, lambda exc: translate_error(exc, target, self.url))

    # -- references -----------------------------------------------------------------------

    def _ref(self, ref: Mapping[str, Any]) -> tuple[str, dict[str, str], str]:
        kind = str(ref.get("kind") or "kv")
        if kind not in _KINDS:
            raise AdapterError(f"unknown vault reference kind {kind!r}", where=self.backend,
                               hint="kind is one of kv, token, lease")
        if kind == "kv":
            path = str(ref.get("path") or "").strip("/")
            mount = str(ref.get("mount") or "secret").strip("/")
            if not path:
                raise AdapterError("vault kv reference needs `path`", where=self.backend)
            return kind, {"mount": mount, "path": path}, f"{mount}/{path}"
        key = "accessor" if kind == "token" else "prefix"
        value = str(ref.get(key) or "").strip("/" if kind == "lease" else "")
        if not value:
            raise AdapterError(f"vault {kind} reference needs `{key}`", where=self.backend)
        label = "token accessor" if kind == "token" else "leases under"
        return kind, {key: value}, f"{label} {value}"

    # -- key values (in memory only) -----------------------------------------------------

    def reveal(self, ref: Mapping[str, Any]) -> str | None:
        """The current KV value a kv reference points at (None when deleted or not kv)."""
        kind, ids, target = self._ref(ref)
        if kind != "kv":
            return None
        with self._errors(target):
            try:
                data = self.client.secrets.kv.v2.read_secret_version(
                    path=ids["path"], mount_point=ids["mount"], raise_on_deleted_version=True)
            except hvac.exceptions.InvalidPath:
                return None
        return pick_value((data.get("data") or {}).get("data"), ref.get("field"))

    def scan(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every readable value in every KV v2 mount, with the reference that finds it."""
        with self._errors(self.url):
            mounts = self.client.sys.list_mounted_secrets_engines()["data"]
        for mount, info in mounts.items():
            if (info or {}).get("type") != "kv" or \
                    str((info.get("options") or {}).get("version")) != "2":
                continue
            yield from self._scan_kv(mount.strip("/"), "")

    def _scan_kv(self, mount: str, prefix: str) -> Iterator[tuple[dict[str, Any], str]]:
        with self._errors(f"{mount}/{prefix}"):
            try:
                keys = self.client.secrets.kv.v2.list_secrets(
                    path=prefix, mount_point=mount)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                return
        for key in keys:
            path = f"{prefix}{key}"
            if key.endswith("/"):
                yield from self._scan_kv(mount, path)
                continue
            ref = {"backend": self.backend, "kind": "kv", "mount": mount, "path": path}
            value = self.reveal(ref)
            if value:
                yield ref, value

    # -- reads ----------------------------------------------------------------------------

    def _kv_versions(self, mount: str, path: str) -> tuple[int, dict[str, Any]]:
        meta = self.client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
        data = meta["data"]
        return int(data["current_version"]), data.get("versions") or {}

    def _kv_state(self, mount: str, path: str, version: int | None = None) -> dict[str, Any]:
        current, versions = self._kv_versions(mount, path)
        v = version if version is not None else current
        info = versions.get(str(v)) or {}
        return {"version": v, "deleted": bool(info.get("deletion_time")),
                "destroyed": bool(info.get("destroyed"))}

    def _token_state(self, accessor: str) -> tuple[dict[str, Any], str]:
        try:
            data = self.client.auth.token.lookup_accessor(accessor)["data"]
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath):
            return {"active": False}, "no token has this accessor (revoked or expired)"
        policies = len(data.get("policies") or [])
        name = data.get("display_name", "")
        return {"active": True, "policies": policies}, \
            f"token ({name}) with {policies} policies, ttl {data.get('ttl')}s"

    def _lease_count(self, prefix: str, limit: int = 10000) -> int:
        count, todo = 0, [prefix]
        while todo and count < limit:
            p = todo.pop()
            try:
                keys = self.client.sys.list_leases(prefix=p)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                continue
            for k in keys:
                if k.endswith("/"):
                    todo.append(f"{p}/{k.rstrip('/')}")
                else:
                    count += 1
        return count

    def read(self, change: Change) -> dict[str, Any]:
        """Current state of the target, in the shape of ``change.before``."""
        if change.action == WRITE:
            return rotation.read_write(self, change)
        kind, ids, target = self._ref(change.ref)
        with self._errors(target):
            if kind == "kv":
                return self._kv_state(ids["mount"], ids["path"])
            if kind == "token":
                return self._token_state(ids["accessor"])[0]
            return {"active": self._lease_count(ids["prefix"]) > 0}

    # -- plan -----------------------------------------------------------------------------

    def plan(self, action: str, ref: Mapping[str, Any], ctx: PlanContext) -> list[Change]:
        """Observe one reference and return the change ``action`` would make (read-only)."""
        if action not in self.ACTIONS:
            raise AdapterError(f"the vault adapter does not offer {action}", where=self.backend)
        if action == WRITE:
            return rotation.plan_write(self, ref, ctx)
        kind, ids, target = self._ref(ref)
        ctx = plan_context(self, action, ref, ctx)
        where = f"{self.backend}:{target}"
        if kind != "kv" and action == "credential.enable":
            raise AdapterError(f"{target} cannot be re-enabled: {_REVOKE_NOTE}",
                               where=self.backend, hint="issue new credentials instead")
        with self._errors(target):
            if kind == "kv":
                return [self._plan_kv(ctx, action, ids, target)]
            if kind == "token":
                before, info = self._token_state(ids["accessor"])
                verb = "revoke the token by accessor"
            else:
                n = self._lease_count(ids["prefix"])
                before = {"active": n > 0}
                info = f"{n} lease(s) under prefix {ids['prefix']}"
                verb = "revoke every lease under the prefix (sync)"
        if not before["active"]:
            return [ctx.change(where, before, before, reversible=False, status=NOOP,
                               note=f"nothing to revoke: {info}")]
        return [ctx.change(where, before, {"active": False}, reversible=False,
                           note=f"{verb}: {info}; {_REVOKE_NOTE}")]

    def _plan_kv(self, ctx: PlanContext, action: str, ids: dict[str, str],
                 target: str) -> Change:
        mount, path = ids["mount"], ids["path"]
        where = f"{self.backend}:{target}"
        before = self._kv_state(mount, path)
        v = before["version"]
        undo = {"mount": mount, "path": path, "versions": [v]}
        if action == "credential.destroy":
            after = {**before, "destroyed": True}
            note = (f"destroys version {v} of {target} permanently: irreversible, the value "
                    "cannot be recovered by anyone")
            if before["destroyed"]:
                return ctx.change(where, before, before, reversible=False, status=NOOP,
                                  note=f"version {v} is already destroyed")
            return ctx.change(where, before, after, reversible=False, note=note)
        if before["destroyed"]:
            return ctx.change(where, before, before, reversible=False, status=NOOP,
                              note=f"version {v} is destroyed; nothing can be "
                              f"{'deleted' if action == 'credential.disable' else 'restored'}")
        deleted = action == "credential.disable"
        after = {**before, "deleted": deleted}
        if before == after:
            word = "deleted" if deleted else "live"
            return ctx.change(where, before, after, undo=undo, status=NOOP,
                              note=f"version {v} of {target} is already {word}")
        note = (f"soft-deletes version {v} of {target}; undo undeletes exactly that version"
                if deleted else f"undeletes version {v} of {target}")
        return ctx.change(where, before, after, undo=undo, note=note)

    # -- apply ----------------------------------------------------------------------------

    def apply(self, change: Change,
              current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Carry out ``change`` (idempotent); returns ``{"versions": [...]}`` for KV changes.

        ``current`` is the state the engine read just before: a soft delete of the version
        it describes does not read the metadata again.
        """
        if change.action == WRITE:
            return rotation.apply_write(self, change, current)
        kind, ids, target = self._ref(change.ref)
        with self._errors(target):
            if kind == "token":
                self.client.auth.token.revoke_accessor(ids["accessor"])  # 200 when gone too
                return {}
            if kind == "lease":
                self.client.adapter.put(f"/v1/sys/leases/revoke-prefix/{ids['prefix']}",
                                        json={"sync": True})
                return {}
            mount, path = ids["mount"], ids["path"]
            versions = [int(v) for v in change.undo.get("versions") or
                        [change.before["version"]]]
            kv = self.client.secrets.kv.v2
            if change.action == "credential.destroy":
                kv.destroy_secret_versions(path=path, versions=versions, mount_point=mount)
            elif change.action == "credential.disable":
                todo = self._undeleted(mount, path, versions, current)
                if todo:
                    kv.delete_secret_versions(path=path, versions=todo, mount_point=mount)
            else:
                kv.undelete_secret_versions(path=path, versions=versions, mount_point=mount)
            return {"versions": versions}

    def _undeleted(self, mount: str, path: str, versions: list[int],
                   current: Mapping[str, Any] | None) -> list[int]:
        """The ``versions`` not soft-deleted yet: from ``current`` when it describes exactly
        them, else from the secret's metadata."""
        if current is not None and [int(current.get("version") or 0)] == versions:
            return [] if current.get("deleted") else versions
        _, meta = self._kv_versions(mount, path)
        return [v for v in versions if not (meta.get(str(v)) or {}).get("deletion_time")]

    # -- verify ---------------------------------------------------------------------------

    def verify(self, change: Change) -> Verdict:
        """Read as an application would: the secret / token must now fail (or, for enable, work)."""
        if change.action == WRITE:
            return rotation.verify_write(self, change)
        kind, ids, target = self._ref(change.ref)
        with self._errors(target):
            if kind == "token":
                if self._token_state(ids["accessor"])[0]["active"]:
                    return Verdict(False, "live", "lookup by accessor still finds the token")
                return Verdict(True, "dead", "lookup by accessor fails: no such token")
            if kind == "lease":
                n = self._lease_count(ids["prefix"])
                if n:
                    return Verdict(False, "live", f"{n} lease(s) still listed under the prefix")
                return Verdict(True, "dead", "no lease is listed under the prefix")
            return self._verify_kv(change, ids["mount"], ids["path"], target)

    def _verify_kv(self, change: Change, mount: str, path: str, target: str) -> Verdict:
        version = int(change.before.get("version") or change.after.get("version") or 0)
        try:
            resp = self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=True)
            got = int(((resp.get("data") or {}).get("metadata") or {}).get("version") or 0)
            readable = bool((resp.get("data") or {}).get("data"))
            del resp  # the value is never kept
        except hvac.exceptions.InvalidPath:
            got, readable = 0, False
        if change.action == "credential.enable":
            if readable and got == version:
                return Verdict(True, "restored",
                               f"an application read of {target} returns version {version}")
            return Verdict(False, "dead", f"an application read of {target} does not return "
                           f"version {version} (got {got or 'nothing'})")
        if not readable:
            return Verdict(True, "dead", f"an application read of {target} fails "
                           f"(version {version} deleted or destroyed)")
        if got != version:
            return Verdict(False, "live", f"a newer version {got} of {target} is readable "
                           "(written after the plan)")
        return Verdict(False, "live", f"version {version} of {target} is still readable")

    # -- undo -----------------------------------------------------------------------------

    def inverse(self, change: Change, applied: Mapping[str, Any]) -> Change:
        """Undo change for a KV soft delete (undelete the same versions), or vice versa.

        Raises:
            UndoUnsupported: destroy, token and lease revokes, and changes that did nothing.
        """
        if change.action == WRITE:
            return rotation.inverse_write(self, change, applied)
        kind = str(change.ref.get("kind") or "kv")
        if not change.reversible or kind != "kv" or change.action == "credential.destroy":
            raise UndoUnsupported(f"{change.action} on {change.target} cannot be undone: "
                                  f"{_REVOKE_NOTE if kind != 'kv' else 'destroy is permanent'}",
                                  where=change.target, hint="issue new credentials")
        if change.status == NOOP:
            raise UndoUnsupported(f"nothing to undo on {change.target}: it was already in the "
                                  "wanted state before this run", where=change.target)
        versions = list(applied.get("versions") or change.undo.get("versions") or
                        [change.before["version"]])
        back = "credential.enable" if change.action == "credential.disable" \
            else "credential.disable"
        return Change(
            op_id=f"{change.op_id}:undo", integration=change.integration,
            step=f"undo-{change.step}",
            action=back, backend=change.backend, adapter=change.adapter, target=change.target,
            ref=dict(change.ref), before=dict(change.after), after=dict(change.before),
            reversible=True, undo={**change.undo, "versions": versions},
            note=f"{'undeletes' if back == 'credential.enable' else 'soft-deletes'} "
            f"version(s) {', '.join(map(str, versions))} of {change.target}",
            inverse_of=change.op_id,
        )

    # -- evidence -------------------------------------------------------------------------

    def preserve(self, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
        """Evidence: KV v2 version metadata (never data), a token's lookup by accessor, or
        the lease ids under a prefix (:mod:`adapters.preserve_stores`)."""
        from adapters.preserve_stores import preserve_vault

        preserve_vault(self, ref, sink)
