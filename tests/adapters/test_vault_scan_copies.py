"""Copy scan on a real OpenBao dev server: a listed KV copy is found as listed.

The inventory may leave out what the adapter defaults (``mount = "secret"``, ``kind = "kv"``)
and write the path with slashes around it; the scan reports the copy with every part
spelled out. Both denote the same stored secret, so the copy is listed; only the copy
nobody listed is UNLISTED.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from console.config import load_config
from console.engine.scan import scan_copies
from tests.servers import BaoServer

CONFIG = """
[settings]
audit_db = "audit.db"
max_attempts = 1

[backends.vault-sandbox]
type = "vault"
url = "{url}"
token_env = "KS_TEST_VAULT_TOKEN"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "vault-sandbox"
label = "stored copy, mount and kind left to their defaults"
path = "/{prefix}/support-bot/openai/"

[[integrations]]
id = "coder"
name = "Coder"
owner = "eng"
environment = "dev"
provider = "anthropic"

[[integrations.credentials]]
backend = "vault-sandbox"
kind = "kv"
mount = "secret"
path = "{prefix}/coder/anthropic"
field = "secondary"
"""


@pytest.fixture
def prefix(root: hvac.Client) -> Iterator[str]:
    """A fresh folder in the dev server's default ``secret`` mount, removed afterwards."""
    prefix = f"scan-{uuid.uuid4().hex[:10]}"
    yield prefix
    kv = root.secrets.kv.v2
    for path in ("support-bot/openai", "coder/anthropic", "scratch/pasted"):
        try:
            kv.delete_metadata_and_all_versions(path=f"{prefix}/{path}", mount_point="secret")
        except hvac.exceptions.InvalidPath:
            pass


def test_listed_kv_copies_match_whatever_the_inventory_leaves_to_defaults(
        tmp_path: Path, root: hvac.Client, vault_env: BaoServer, prefix: str) -> None:
    key = "sk-proj-" + uuid.uuid4().hex * 2
    other = "sk-ant-" + uuid.uuid4().hex * 2
    kv = root.secrets.kv.v2
    kv.create_or_update_secret(path=f"{prefix}/support-bot/openai", secret={"api_key": key},
                               mount_point="secret")
    kv.create_or_update_secret(path=f"{prefix}/scratch/pasted", secret={"value": key},
                               mount_point="secret")
    # the listed field is read to fingerprint; the scan finds the secret by its usual field
    kv.create_or_update_secret(path=f"{prefix}/coder/anthropic",
                               secret={"api_key": other, "secondary": other},
                               mount_point="secret")
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url=vault_env.url, prefix=prefix))
    config = load_config(path)

    report = asyncio.run(scan_copies(config, config.integrations))

    assert report.problems == []
    found = {(c.integration, c.ref["mount"], c.ref["path"]): c.listed for c in report.copies}
    assert found == {
        ("support-bot", "secret", f"{prefix}/support-bot/openai"): True,
        ("support-bot", "secret", f"{prefix}/scratch/pasted"): False,
        ("coder", "secret", f"{prefix}/coder/anthropic"): True,
    }
    assert report.unlisted("support-bot") == [
        {"backend": "vault-sandbox", "kind": "kv", "mount": "secret",
         "path": f"{prefix}/scratch/pasted"}]
