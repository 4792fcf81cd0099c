"""The sandbox's IAM access keys in the store copies of the integrations that use them.

When the moto seeder creates an IAM user's access key (AWS picks its id and secret, and shows
the secret once), every sandbox store copy of the integrations that name that user holds the
key the way an application reads it::

    {"api_key": "<secret access key>", "aws_access_key_id": "AKIA...",
     "aws_secret_access_key": "<secret access key>"}

``api_key`` is the field the example inventory names (``reveal`` picks it, and it is the
AWS key's secret half), so the proof of death and ``rotate`` see the real key: the copy's
fingerprint is the IAM key's, STS tests it, a rotation writes the new pair into it. Secrets
Manager and SSM copies are created with it; Vault copies (seeded earlier, OpenBao starts
first) get it as a new version. The values exist only in the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["pair_text", "users_by_integration", "write_vault_copies"]


def pair_text(key_id: str, secret: str) -> str:
    """The JSON a store copy of an AWS access key holds."""
    return json.dumps({"api_key": secret, "aws_access_key_id": key_id,
                       "aws_secret_access_key": secret})


def users_by_integration(refs: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """``{integration: IAM user}`` from the seeder's ``(type, ref)`` list."""
    return {str(ref["_integration"]): str(ref["user"]) for kind, ref in refs
            if kind == "aws-iam" and ref.get("user")}


def write_vault_copies(config: Any, values: Mapping[str, str]) -> list[str]:
    """Write ``values`` (integration -> copy text) into the sandbox OpenBao's KV copies of
    those integrations, as new versions; returns what was written. Nothing when OpenBao is
    not part of this sandbox or not running."""
    from console.sandbox import openbao

    if not values:
        return []
    state_dir, port = openbao._settings(config)
    token_file = state_dir / f"{openbao.NAME}.token"
    url = openbao._url(port)
    refs = [r for r in openbao.vault_refs(config, url)
            if str(r.get("_integration")) in values and str(r.get("kind") or "kv") == "kv"]
    if not refs or not token_file.exists():
        return []
    import hvac

    client = hvac.Client(url=url, token=token_file.read_text().strip())
    written = []
    try:
        for ref in refs:
            mount = str(ref.get("mount") or "secret").strip("/")
            path = str(ref["path"]).strip("/")
            client.secrets.kv.v2.create_or_update_secret(
                path=path, mount_point=mount,
                secret=json.loads(values[str(ref["_integration"])]))
            written.append(f"{mount}/{path} (AWS key)")
    finally:
        client.adapter.close()
    return written
