"""Evidence from secret stores and GCP keys: version histories and key metadata, never data.

``vault`` (:class:`~adapters.vault.VaultAdapter`), per reference kind:

* ``kv``: ``versions``: ``GET /v1/{mount}/metadata/{path}`` (hvac
  ``read_secret_metadata``): current_version, oldest_version, created_time, updated_time,
  max_versions, cas_required, delete_version_after, custom_metadata, and every version's
  created_time, deletion_time, destroyed. The data endpoint is never called.
* ``token``: ``token``: ``auth/token/lookup-accessor`` (accessor, display_name, policies,
  creation_time, expire_time, issue_time, ttl, meta, path, entity_id, type, orphan, ...);
  the token's ``id`` is never kept.
* ``lease``: ``leases``: the lease ids under the prefix (``sys/leases/lookup/<prefix>``,
  hvac ``list_leases``).

``gcp-secrets`` (:class:`~adapters.gcp_secrets.GcpSecretManagerAdapter`): ``secret``
(``GetSecret``: create_time, labels, replication, rotation, expire_time, version_aliases,
annotations, etag) and ``versions`` (``ListSecretVersions``: name, state, create_time,
destroy_time, etag) — never ``AccessSecretVersion``.

``gcp-keys`` (:class:`~adapters.gcp_keys.GcpServiceAccountKeyAdapter`): ``keys``: every key
of the service account (``GET .../serviceAccounts/{sa}/keys``, all key types): name,
keyType, keyOrigin, keyAlgorithm, validAfterTime, validBeforeTime, disabled,
disableReason; ``referenced`` marks the keys the reference covers. Never
``privateKeyData`` (nor ``publicKeyData``).

Permissions: Vault ``read`` on ``{mount}/metadata/{path}``, ``update`` on
``auth/token/lookup-accessor``, ``list`` on ``sys/leases/lookup/{prefix}``; GCP
``secretmanager.secrets.get``, ``secretmanager.versions.list``,
``iam.serviceAccountKeys.list``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.evidence import EvidenceSink
from adapters.preserve_common import pick, write_json

if TYPE_CHECKING:
    from adapters.gcp_keys import GcpServiceAccountKeyAdapter
    from adapters.gcp_secrets import GcpSecretManagerAdapter
    from adapters.vault import VaultAdapter

__all__ = ["preserve_gcp_keys", "preserve_gcp_secret", "preserve_vault"]

KV_FIELDS = ("current_version", "oldest_version", "created_time", "updated_time",
             "max_versions", "cas_required", "delete_version_after", "custom_metadata")
KV_VERSION_FIELDS = ("created_time", "deletion_time", "destroyed")
TOKEN_FIELDS = ("accessor", "display_name", "policies", "identity_policies", "creation_time",
                "creation_ttl", "expire_time", "issue_time", "ttl", "explicit_max_ttl",
                "num_uses", "renewable", "orphan", "path", "meta", "entity_id", "type")
GCP_SECRET_FIELDS = ("name", "create_time", "labels", "replication", "rotation", "expire_time",
                     "version_aliases", "annotations", "etag", "topics")
GCP_VERSION_FIELDS = ("name", "state", "create_time", "destroy_time", "etag",
                      "scheduled_destroy_time")
GCP_KEY_FIELDS = ("name", "keyType", "keyOrigin", "keyAlgorithm", "validAfterTime",
                  "validBeforeTime", "disabled", "disableReason", "extendedStatus")


# -- Vault / OpenBao --------------------------------------------------------------------------


def preserve_vault(adapter: VaultAdapter, ref: Mapping[str, Any], sink: EvidenceSink) -> None:
    """KV v2 metadata, a token's lookup by accessor, or the leases under a prefix."""
    import hvac.exceptions

    kind, ids, target = adapter._ref(ref)
    kv = adapter.client.secrets.kv.v2

    def versions() -> dict[str, Any]:
        with adapter._errors(target):
            try:
                data = kv.read_secret_metadata(path=ids["path"],
                                               mount_point=ids["mount"])["data"]
            except hvac.exceptions.InvalidPath:
                return {"mount": ids["mount"], "path": ids["path"], "found": False}
        out = {"mount": ids["mount"], "path": ids["path"], "found": True,
               **pick(data, KV_FIELDS)}
        out["versions"] = {str(n): pick(v, KV_VERSION_FIELDS)
                           for n, v in (data.get("versions") or {}).items()}
        return out

    def token() -> dict[str, Any]:
        with adapter._errors(target):
            try:
                data = adapter.client.auth.token.lookup_accessor(ids["accessor"])["data"]
            except (hvac.exceptions.InvalidRequest, hvac.exceptions.InvalidPath):
                return {"accessor": ids["accessor"], "found": False}
        return {"found": True, **pick(data, TOKEN_FIELDS)}

    def leases() -> dict[str, Any]:
        with adapter._errors(target):
            try:
                keys = adapter.client.sys.list_leases(prefix=ids["prefix"])["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                keys = []
        return {"prefix": ids["prefix"], "leases": [f"{ids['prefix']}/{k}" for k in keys]}

    if kind == "kv":
        write_json(sink, "versions", "versions", versions)
    elif kind == "token":
        write_json(sink, "token", "token", token)
    else:
        write_json(sink, "leases", "leases", leases)


# -- Google Secret Manager --------------------------------------------------------------------


def preserve_gcp_secret(adapter: GcpSecretManagerAdapter, ref: Mapping[str, Any],
                        sink: EvidenceSink) -> None:
    """The secret's metadata and its versions' states and dates (no payload)."""
    from google.cloud import secretmanager_v1 as sm

    name = adapter._name(ref)

    def secret() -> dict[str, Any]:
        with adapter._errors(name):
            got = adapter._client_for(name).get_secret(request={"name": name}, **adapter._kw())
        return pick(sm.Secret.to_dict(got, use_integers_for_enums=False), GCP_SECRET_FIELDS)

    def versions() -> dict[str, Any]:
        with adapter._errors(name):
            listed = list(adapter._client_for(name).list_secret_versions(
                request={"parent": name}, **adapter._kw()))
        out = [pick(sm.SecretVersion.to_dict(v, use_integers_for_enums=False),
                    GCP_VERSION_FIELDS) for v in listed]
        out.sort(key=lambda v: int(str(v.get("name", "0")).rsplit("/", 1)[-1] or 0))
        return {"name": name, "versions": out}

    write_json(sink, "secret", "secret", secret)
    write_json(sink, "versions", "versions", versions)


# -- GCP service-account keys -----------------------------------------------------------------


def preserve_gcp_keys(adapter: GcpServiceAccountKeyAdapter, ref: Mapping[str, Any],
                      sink: EvidenceSink) -> None:
    """Every key of the service account (metadata only), the referenced ones marked."""
    project, sa, key, target = adapter._ref(ref)

    def keys() -> dict[str, Any]:
        body = adapter._call("GET", f"projects/{project}/serviceAccounts/{sa}/keys", target)
        out = []
        for k in body.get("keys") or []:
            if not isinstance(k, Mapping):
                continue
            kid = str(k.get("name") or "").rsplit("/", 1)[-1]
            item = pick(k, GCP_KEY_FIELDS)
            item["referenced"] = (kid == key) if key else \
                k.get("keyType", "USER_MANAGED") == "USER_MANAGED"
            out.append(item)
        return {"service_account": sa, "key": key or None, "keys": out,
                "found": not key or any(i["referenced"] for i in out)}

    write_json(sink, "keys", "keys", keys)
