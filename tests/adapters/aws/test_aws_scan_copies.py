"""`killswitch credentials scan` against a real moto server (Secrets Manager).

The inventory lists the key's copies the way config.example.toml's support-bot does
(``secret_id = "ai/support-bot/openai"``, no ``field``) while the store holds the sandbox's
shape, ``{"api_key": ...}``; other listed copies are named by full and partial ARN. Only the
copy nobody listed may be reported UNLISTED, and a store that cannot be reached makes the
scan exit 1 and names it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.errors import EXIT_FAILED
from tests.adapters.aws.conftest import client

KEY = "sk-proj-" + "scan" * 8 + "9d1e"
"""The integration's key: every copy below holds it."""

CONFIG = """
[settings]
audit_db = "audit.db"
max_attempts = 1

[backends.aws-sandbox-sm]
type = "aws-secrets"
endpoint_url = "{moto}"
region = "us-east-1"
access_key_env = "KS_TEST_AWS_KEY"
secret_key_env = "KS_TEST_AWS_SECRET"
{extra}
[[integrations]]
id = "support-bot"
name = "Customer support assistant"
owner = "team-support-platform"
environment = "prod"
status = "approved"
provider = "openai"

[[integrations.credentials]]
backend = "aws-sandbox-sm"
label = "OpenAI project key (copy in AWS Secrets Manager)"
secret_id = "ai/support-bot/openai"

[[integrations.credentials]]
backend = "aws-sandbox-sm"
label = "backup copy, listed by full ARN"
secret_id = "{full_arn}"
method = "tombstone"

[[integrations.credentials]]
backend = "aws-sandbox-sm"
label = "DR copy, listed by partial ARN"
secret_id = "{partial_arn}"
"""

DOWN = """
[backends.aws-offsite-sm]
type = "aws-secrets"
endpoint_url = "http://127.0.0.1:{port}"
region = "us-east-1"
access_key_env = "KS_TEST_AWS_KEY"
secret_key_env = "KS_TEST_AWS_SECRET"
"""


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held bound but not listening: connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def planted(moto: str) -> dict[str, str]:
    """The store as the sandbox seeds it, plus an unlisted copy and an unrelated secret."""
    sm = client(moto, "secretsmanager")
    sm.create_secret(Name="ai/support-bot/openai", SecretString=json.dumps({"api_key": KEY}))
    full = sm.create_secret(Name="ai/support-bot/backup", SecretString=KEY)["ARN"]
    partial = sm.create_secret(Name="ai/support-bot/dr-copy",
                               SecretString=json.dumps({"key": KEY}))["ARN"][:-7]
    sm.create_secret(Name="scratch/old-bot",
                     SecretString=json.dumps({"note": "pasted from chat", "token": KEY}))
    sm.create_secret(Name="ai/unrelated", SecretString="sk-other-" + "x" * 30)
    assert full.endswith(":secret:ai/support-bot/backup" + full[-7:])  # "-" + 6 random chars
    assert partial.endswith(":secret:ai/support-bot/dr-copy")
    return {"moto": moto, "full_arn": full, "partial_arn": partial}


def _scan(tmp_path: Path, planted: dict[str, str], *args: str,
          extra: str = "") -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(extra=extra, **planted))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILLSWITCH_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "console", "--config", str(config),
                           "credentials", "scan", "support-bot", *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def _found(copies: list[dict[str, Any]]) -> dict[tuple[str, str, str], bool]:
    return {(c["backend"], c["ref"]["secret_id"], c["ref"].get("field", "")): c["listed"]
            for c in copies}


EXPECTED = {
    ("aws-sandbox-sm", "ai/support-bot/openai", "api_key"): True,
    ("aws-sandbox-sm", "ai/support-bot/backup", ""): True,
    ("aws-sandbox-sm", "ai/support-bot/dr-copy", "key"): True,
    ("aws-sandbox-sm", "scratch/old-bot", "token"): False,
}


def test_listed_copies_are_not_reported_unlisted(tmp_path: Path,
                                                 planted: dict[str, str]) -> None:
    r = _scan(tmp_path, planted, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["problems"] == []
    assert _found(report["copies"]) == EXPECTED

    text = _scan(tmp_path, planted)
    assert text.returncode == 0, text.stdout + text.stderr
    rows = {line.split()[1]: line.split()[-1] for line in text.stdout.splitlines()
            if line.startswith("support-bot")}
    assert rows == {"aws-sandbox-sm:ai/support-bot/openai#api_key": "listed",
                    "aws-sandbox-sm:ai/support-bot/backup": "listed",
                    "aws-sandbox-sm:ai/support-bot/dr-copy#key": "listed",
                    "aws-sandbox-sm:scratch/old-bot#token": "UNLISTED"}, text.stdout
    assert "1 unlisted copy;" in text.stdout
    assert not text.stderr.strip()
    assert KEY not in r.stdout + r.stderr + text.stdout + text.stderr


def test_a_store_that_cannot_be_scanned_fails_the_scan(tmp_path: Path, planted: dict[str, str],
                                                       closed_port: int) -> None:
    down = DOWN.format(port=closed_port)
    r = _scan(tmp_path, planted, extra=down)
    assert r.returncode == EXIT_FAILED, r.stdout + r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and \
        warnings[0].startswith("warning: could not scan aws-offsite-sm: "), r.stderr
    assert f"127.0.0.1:{closed_port}" in warnings[0]
    # what could be scanned is still shown, and still right
    assert "aws-sandbox-sm:scratch/old-bot#token" in r.stdout and "1 unlisted copy" in r.stdout

    j = _scan(tmp_path, planted, "--json", extra=down)
    assert j.returncode == EXIT_FAILED, j.stdout + j.stderr
    report = json.loads(j.stdout)
    assert _found(report["copies"]) == EXPECTED
    assert len(report["problems"]) == 1
    assert report["problems"][0].startswith("could not scan aws-offsite-sm: ")
    assert "warning: could not scan aws-offsite-sm" in j.stderr
    assert KEY not in r.stdout + r.stderr + j.stdout + j.stderr


CLAIMS = """
[settings]
audit_db = "audit.db"
max_attempts = 1

[backends.aws-sandbox-sm]
type = "aws-secrets"
endpoint_url = "{moto}"
region = "us-east-1"
access_key_env = "KS_TEST_AWS_KEY"
secret_key_env = "KS_TEST_AWS_SECRET"

[backends.aws-sandbox-ssm]
type = "aws-ssm"
endpoint_url = "{moto}"
region = "us-east-1"
access_key_env = "KS_TEST_AWS_KEY"
secret_key_env = "KS_TEST_AWS_SECRET"

[[integrations]]
id = "claims-summariser"
name = "Insurance claims summariser"
owner = "team-claims-automation"
environment = "prod"
provider = "bedrock"

[[integrations.credentials]]
backend = "aws-sandbox-sm"
label = "Bedrock access key (copy in Secrets Manager)"
secret_id = "ai/claims-summariser/bedrock"
method = "tombstone"
field = "api_key"

[[integrations.credentials]]
backend = "aws-sandbox-ssm"
label = "Bedrock access key (copy in SSM Parameter Store)"
name = "/ai/claims-summariser/bedrock"
"""


def test_ssm_and_field_refs_shaped_like_the_example_are_listed(moto: str,
                                                              tmp_path: Path) -> None:
    value = json.dumps({"api_key": KEY})  # what the sandbox seeds in both stores
    client(moto, "secretsmanager").create_secret(Name="ai/claims-summariser/bedrock",
                                                 SecretString=value)
    ssm = client(moto, "ssm")
    ssm.put_parameter(Name="/ai/claims-summariser/bedrock", Value=value, Type="SecureString")
    ssm.put_parameter(Name="/scratch/bedrock", Value=KEY, Type="SecureString")
    config = tmp_path / "config.toml"
    config.write_text(CLAIMS.format(moto=moto))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILLSWITCH_", "AWS_"))}
    r = subprocess.run([sys.executable, "-m", "console", "--config", str(config), "credentials",
                        "scan", "claims-summariser", "--json"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    copies = json.loads(r.stdout)["copies"]
    assert {(c["target"], c["listed"]) for c in copies} == {
        ("aws-sandbox-sm:ai/claims-summariser/bedrock#api_key", True),
        ("aws-sandbox-ssm:/ai/claims-summariser/bedrock#api_key", True),
        ("aws-sandbox-ssm:/scratch/bedrock", False)}
    assert KEY not in r.stdout + r.stderr
