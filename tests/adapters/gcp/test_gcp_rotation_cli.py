"""`killswitch run rotate` on a GCP integration (a service-account key and its Secret Manager
copy), the real CLI in a subprocess against the GCP stand-in."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.adapters.gcp.conftest import PROJECT, SA, SECRET, Gcp


def config(root: Path, endpoint: str) -> Path:
    path = root / "config.toml"
    path.write_text(f"""
[settings]
audit_db = "audit.db"
max_attempts = 3

[backends.gcp-sm]
type = "gcp-secrets"
endpoint = "{endpoint}"
anonymous = true
project = "{PROJECT}"

[backends.gcp-keys]
type = "gcp-keys"
endpoint = "{endpoint}"
anonymous = true

[[integrations]]
id = "search-embeddings"
name = "Search embeddings"
owner = "team-search"
environment = "dev"
status = "approved"
provider = "vertex"

[[integrations.credentials]]
backend = "gcp-keys"
service_account = "{SA}"
key = "k1aaaa"

[[integrations.credentials]]
backend = "gcp-sm"
name = "{SECRET}"
""")
    return path


def test_rotate_leaves_a_new_working_key_in_the_copy_and_the_old_one_disabled(
        gcp: Gcp, tmp_path: Path) -> None:
    cfg = config(tmp_path, gcp.endpoint)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")}
    env["KILLSWITCH_OPERATOR"] = "tester"
    run = subprocess.run(
        [sys.executable, "-m", "console", "--config", str(cfg), "run", "rotate",
         "search-embeddings", "--yes", "--reason", "scheduled rotation", "--json"],
        capture_output=True, text=True, input="", cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    verdicts = {o["op_id"].split("/")[1]: (o["outcome"], o["verdict"])
                for o in out["operations"]}
    assert verdicts == {"issue-key": ("applied", "works"), "write-copies": ("applied", "written"),
                        "retire-old": ("applied", "dead")}, verdicts

    keys = gcp.keys()
    new = [k for k in keys if k not in ("k1aaaa", "k2bbbb", "k3cccc", "sysdddd")]
    assert len(new) == 1 and keys[new[0]]["disabled"] is False
    assert keys["k1aaaa"]["disabled"] is True, "the old key is disabled"
    assert keys["k3cccc"]["disabled"] is False, "a key the inventory does not name stays"
    versions = gcp.app.state["secrets"][SECRET]["versions"]
    latest = versions[max(versions, key=int)]
    assert latest["state"] == "ENABLED"
    key_file = json.loads(base64.b64decode(latest["data"]))
    assert key_file["private_key_id"] == new[0] and key_file["client_email"] == SA

    pem_line = key_file["private_key"].splitlines()[1]
    assert pem_line not in run.stdout and pem_line not in run.stderr
    assert pem_line.encode() not in (tmp_path / "audit.db").read_bytes(), \
        "the new key never enters the trail"
