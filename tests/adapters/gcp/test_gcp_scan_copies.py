"""Copy scan on the Google Secret Manager stand-in: a listed copy is found as listed.

The inventory may name a secret by its bare id (the project comes from the reference or the
backend) or by the ``secret`` alias; the scan reports ``projects/P/secrets/S``. Both denote
the same stored secret, so the copy is listed; only the copy nobody listed is UNLISTED.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.config import load_config
from console.engine.scan import scan_copies
from console.sandbox.api_gcp import new_secret
from tests.adapters.gcp.conftest import CANARY, PROJECT, SECRET, Gcp

CONFIG = """
[settings]
audit_db = "audit.db"
max_attempts = 1

[backends.gcp-sandbox-sm]
type = "gcp-secrets"
project = "{project}"
endpoint = "{endpoint}"
anonymous = true

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "gcp-sandbox-sm"
label = "bare secret id; the project is the backend's"
name = "support-bot-openai"

[[integrations.credentials]]
backend = "gcp-sandbox-sm"
label = "the `secret` alias with its own project"
secret = "support-bot-mirror"
project = "{project}"
"""


def test_listed_copies_match_whatever_form_the_inventory_names_them_in(
        tmp_path: Path, gcp: Gcp) -> None:
    mirror = f"projects/{PROJECT}/secrets/support-bot-mirror"
    pasted = f"projects/{PROJECT}/secrets/pasted-in-chat"
    gcp.app.state["secrets"][mirror] = new_secret([("ENABLED", CANARY)])
    gcp.app.state["secrets"][pasted] = new_secret([("ENABLED", '{"token": "' + CANARY + '"}')])
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(project=PROJECT, endpoint=gcp.endpoint))
    config = load_config(path)

    report = asyncio.run(scan_copies(config, config.integrations))

    assert report.problems == []
    assert {c.ref["name"]: c.listed for c in report.copies} == {
        SECRET: True, mirror: True, pasted: False}
    assert report.unlisted("support-bot") == [{"backend": "gcp-sandbox-sm", "name": pasted}]
