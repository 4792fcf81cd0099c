"""Declarations of the ``vault`` adapter (Vault / OpenBao): options, references, policy paths.

Reference kinds: ``kv`` (default; a KV v2 secret: ``mount`` + ``path``), ``token`` (a token
``accessor``, never the token) and ``lease`` (a lease id ``prefix``)::

    {backend = "vault-sandbox", kind = "kv", mount = "secret", path = "ai/support-bot/openai"}
    {backend = "vault-sandbox", kind = "token", accessor = "hAbC..."}
    {backend = "vault-sandbox", kind = "lease", prefix = "auth/token/create/support-bot"}

:func:`grants` gives the exact Vault policy paths per reference: the KV v2 ``metadata`` and
``data`` paths (read: plan, verify and the proof-of-death read of the key) and exactly one of
``delete`` / ``undelete`` / ``destroy`` per action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, EnvName, FilePath, HttpUrl
from adapters.specs import AdapterSpec, Grant

__all__ = ["KINDS", "REFERENCE", "VAULT", "VaultOptions", "grants"]

KINDS = ("kv", "token", "lease")
"""Reference kinds; ``kv`` is the default."""


class VaultOptions(AdapterOptions):
    """Options of a ``vault`` backend."""

    url: HttpUrl
    """Vault / OpenBao address, e.g. http://127.0.0.1:8299."""
    token_env: EnvName = "VAULT_TOKEN"
    """Environment variable NAME holding the console's token (default VAULT_TOKEN)."""
    token_file: FilePath = ""
    """Fallback file holding the token, like ~/.vault-token (optional)."""
    namespace: str = ""
    """Vault Enterprise / OpenBao namespace (optional)."""
    verify_tls: bool = True
    """Verify the server's TLS certificate (default true)."""


REFERENCE: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "backend": {"type": "string"},
        "label": {"type": "string"},
        "kind": {"enum": list(KINDS), "default": "kv",
                 "description": "kv (KV v2 secret, default), token (by accessor) or lease "
                                "(by prefix)"},
        "mount": {"type": "string", "minLength": 1, "default": "secret",
                  "description": "KV v2 mount (default secret)"},
        "path": {"type": "string", "minLength": 1,
                 "description": "secret path inside the mount (kind kv)"},
        "field": {"type": "string", "minLength": 1,
                  "description": "JSON field of the secret holding the key (proof, scan)"},
        "accessor": {"type": "string", "minLength": 1,
                     "description": "token accessor, never the token (kind token)"},
        "prefix": {"type": "string", "minLength": 1,
                   "description": "lease id prefix (kind lease)"},
    },
    "allOf": [
        {"if": {"properties": {"kind": {"const": "token"}}, "required": ["kind"]},
         "then": {"required": ["accessor"]}},
        {"if": {"properties": {"kind": {"const": "lease"}}, "required": ["kind"]},
         "then": {"required": ["prefix"]}},
        {"if": {"properties": {"kind": {"const": "kv"}}},
         "then": {"required": ["path"]}},
    ],
}
"""JSON Schema of a vault reference (``kind`` picks the required field)."""

_KV_READ = ("{mount}/metadata/{path}: read", "{mount}/data/{path}: read (verify, proof)")
_REVOKE = ("auth/token/lookup-accessor: update", "auth/token/revoke-accessor: update",
           "sys/leases/lookup/{prefix}: list, sudo",
           "sys/leases/revoke-prefix/{prefix}: update, sudo")
_KV_VERB = {"credential.disable": "delete", "credential.enable": "undelete",
            "credential.destroy": "destroy"}


def grants(action: str, ref: Mapping[str, Any], options: Any,
           step: Mapping[str, Any]) -> list[Grant]:
    """The Vault policy paths and capabilities ``action`` on ``ref`` needs.

    Args:
        action: The action kind.
        ref: The reference.
        options: The backend's options (unused: Vault paths do not depend on them).
        step: The runbook step's options (unused).

    Returns:
        One grant per capability and path (``permission`` = capability, ``resource`` =
        path); none for ``credential.enable`` on a token or lease (it cannot be done).
    """
    kind = str(ref.get("kind") or "kv")
    if kind == "kv":
        mount = str(ref.get("mount") or "secret").strip("/")
        path = str(ref.get("path") or "").strip("/")
        verb = _KV_VERB.get(action)
        out = [Grant("read", f"{mount}/metadata/{path}", note="plan: versions"),
               Grant("read", f"{mount}/data/{path}", note="verify and proof of death")]
        if action == "credential.write":
            return out + [Grant("update", f"{mount}/data/{path}",
                                note="rotation: the new key as a new version (check-and-set)")]
        return out + ([Grant("update", f"{mount}/{verb}/{path}")] if verb else [])
    if action in ("credential.enable", "credential.write"):
        return []
    if kind == "token":
        return [Grant("update", "auth/token/lookup-accessor", note="plan: the token's state"),
                Grant("update", "auth/token/revoke-accessor")]
    prefix = str(ref.get("prefix") or "").strip("/")
    return [Grant("list", f"sys/leases/lookup/{prefix}"),
            Grant("sudo", f"sys/leases/lookup/{prefix}"),
            Grant("list", f"sys/leases/lookup/{prefix}/*", note="leases under sub-prefixes"),
            Grant("sudo", f"sys/leases/lookup/{prefix}/*"),
            Grant("update", f"sys/leases/revoke-prefix/{prefix}"),
            Grant("sudo", f"sys/leases/revoke-prefix/{prefix}")]


VAULT = AdapterSpec(
    name="vault",
    options=VaultOptions,
    actions={
        "credential.disable": ActionSpec(
            "credential.disable", "credentials", True, "credential.enable",
            (*_KV_READ, "{mount}/delete/{path}: update", *_REVOKE), REFERENCE),
        "credential.enable": ActionSpec(
            "credential.enable", "credentials", True, "credential.disable",
            (*_KV_READ, "{mount}/undelete/{path}: update"), REFERENCE),
        "credential.destroy": ActionSpec(
            "credential.destroy", "credentials", False, "",
            (*_KV_READ, "{mount}/destroy/{path}: update", *_REVOKE), REFERENCE),
        # rotation: the new key as a new KV v2 version (undo: the previous data, again)
        "credential.write": ActionSpec(
            "credential.write", "credentials", True, "credential.write",
            (*_KV_READ, "{mount}/data/{path}: update"), REFERENCE),
    },
    iam="vault",
    grants=grants,
)
"""The vault adapter's declarations."""
