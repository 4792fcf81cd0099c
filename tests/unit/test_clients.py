"""One runtime's clients: sized to the backend's cap, and never imported when not needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from console.config import load_config
from console.engine.runtime import Runtime

CONFIG = """\
[settings]
audit_db = "audit.db"

[backends.sm]
type = "aws-secrets"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9"
max_concurrency = 32

[backends.iam]
type = "aws-iam"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9"

[[integrations]]
id = "bot"
name = "Bot"
owner = "team"
environment = "prod"
provider = "openai"
"""


def test_aws_clients_pool_as_many_connections_as_the_backend_allows(tmp_path: Path) -> None:
    """With max_concurrency = 32, 32 calls in flight must not queue for botocore's default
    10 pooled connections; a backend without a cap keeps botocore's 10."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    rt = Runtime(load_config(path))
    try:
        sm = rt.adapter("sm").aws.client("secretsmanager")  # type: ignore[attr-defined]
        iam = rt.adapter("iam").aws.client("iam")  # type: ignore[attr-defined]
        assert sm.meta.config.max_pool_connections == 32
        assert iam.meta.config.max_pool_connections == 10
    finally:
        rt.close()


def test_help_and_inventory_list_import_no_sdk(tmp_path: Path) -> None:
    """`killswitch --help` and `inventory list` answer without loading any provider SDK or
    HTTP client (they cost start-up time and are not needed to read a file)."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    probe = textwrap.dedent(f"""
        import sys
        from console.cli import main
        for argv in (["--help"], ["--config", {str(path)!r}, "inventory", "list"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert not exc.code, exc.code
        sdks = sorted({{m.split(".")[0] for m in sys.modules}} & {{"boto3", "botocore",
                      "httpx", "hvac", "google", "grpc", "requests", "textual"}})
        print("SDKS", ",".join(sdks))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "SDKS \n" in out.stdout or out.stdout.rstrip().endswith("SDKS"), out.stdout
