"""Deterministic fake provider key values shared by every sandbox seeder.

The OpenAI and Anthropic stand-ins issue a fake key per inventory key id; the secret-store
seeders (Vault, AWS, GCP) store copies of the SAME value, so proof of death works end to
end: the console reveals a stored copy, probes the provider with it, and sees 401 once the
provider key is killed. Values derive from a per-sandbox secret::

    value = PREFIX + sha256(f"{secret}:{key_id}").hexdigest()[:32]

with ``PREFIX`` ``sk-sandbox-`` (OpenAI) or ``sk-ant-sandbox-`` (Anthropic) and ``secret``
read from ``<sandbox dir>/seed.secret`` (created with mode 0600 when missing). The values are
sandbox-only and worthless anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "PREFIXES",
    "credential_refs",
    "integration_key_value",
    "store_value",
    "sandbox_admin_key",
    "sandbox_backends",
    "sandbox_dir",
    "sandbox_key_value",
    "seed_secret",
]

PREFIXES = {"openai": "sk-sandbox-", "anthropic": "sk-ant-sandbox-"}
"""Fake key prefix per provider."""

SECRET_FILE = "seed.secret"


def sandbox_dir(config: Any) -> Path:
    """The sandbox state folder: ``[sandbox] dir`` (default ``.sandbox``) next to the config."""
    sb = getattr(config, "sandbox", None)
    return Path(config.resolve(getattr(sb, "dir", None) or ".sandbox"))


def seed_secret(directory: Path) -> str:
    """The sandbox's seed secret, created (0600, exclusively) on first use."""
    path = directory / SECRET_FILE
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)  # empty: a crashed writer
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)
    return value


def sandbox_key_value(config: Any, provider: str, key_id: str) -> str:
    """The fake key value the sandbox uses for ``key_id`` of ``provider``.

    Args:
        config: The loaded config (locates the sandbox folder).
        provider: ``openai`` or ``anthropic`` (any other name gets the OpenAI prefix).
        key_id: The provider's key id (``key_...``, ``apikey_...``) or service account id.

    Returns:
        The same value on every call for the same sandbox folder and key id.
    """
    secret = seed_secret(sandbox_dir(config))
    digest = hashlib.sha256(f"{secret}:{key_id}".encode()).hexdigest()[:32]
    return PREFIXES.get(provider, PREFIXES["openai"]) + digest


def sandbox_admin_key(config: Any, provider: str) -> str:
    """The sandbox's fixed admin key for ``provider``, in ``<dir>/<provider>-admin.key``.

    Created (0600) on first use; the stand-in accepts it, and a backend points its
    ``admin_key_file`` at it.
    """
    directory = sandbox_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{provider}-admin.key"
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    prefix = "sk-ant-admin-sandbox-" if provider == "anthropic" else "sk-admin-sandbox-"
    key = prefix + secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def sandbox_backends(config: Any, adapter_type: str) -> list[str]:
    """Backends of ``adapter_type`` whose ``base_url`` points at this machine (the sandbox)."""
    return [name for name, b in config.backends.items()
            if b.type == adapter_type and _loopback(str(b.options.get("base_url") or ""))]


def credential_refs(config: Any, adapter_type: str) -> list[tuple[str, dict[str, Any]]]:
    """``(integration id, ref fields)`` of every credential on a sandbox backend of the type."""
    backends = set(sandbox_backends(config, adapter_type))
    return [(integ.id, dict(ref.fields())) for integ in config.integrations
            for ref in integ.credentials if ref.backend in backends]


def integration_key_value(config: Any, integration: str) -> str | None:
    """The sandbox provider key of ``integration``, if it has one on a sandbox provider.

    Store seeders (Vault, AWS, GCP) write this value into their copies so that proof of
    death works end to end; None means the integration has no sandbox provider key.
    """
    for provider in PREFIXES:
        for integ, ref in credential_refs(config, provider):
            kid = ref.get("api_key_id") or ref.get("service_account_id")
            if integ == integration and kid:
                return sandbox_key_value(config, provider, str(kid))
    return None


def store_value(config: Any, integration: str) -> str:
    """The value a sandbox store copy of ``integration``'s key holds (JSON ``api_key``)."""
    import json

    value = integration_key_value(config, integration) or "sk-sandbox-" + secrets.token_hex(16)
    return json.dumps({"api_key": value})
