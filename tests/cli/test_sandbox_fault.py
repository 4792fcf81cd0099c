"""`killswitch sandbox fault` on a real sandbox (OpenBao and moto behind their fault proxies,
the OpenAI stand-in), on free loopback ports: adapters see the faults, `--down` refuses
connections until `--clear`, a planted unlisted copy is found by the scan, and a backend
that is not a sandbox backend is refused with exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import PlanContext
from console.config import load_config
from console.engine.runtime import Runtime
from console.errors import AdapterError
from console.sandbox import faults
from tests.servers import bao_binary, free_port_pair


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """
[settings]
audit_db = "audit.db"

[sandbox]
dir = "sb"
openbao_port = {bao}
moto_port = {moto}
ports = {{ openai = {openai} }}

[backends.vault]
type = "vault"
sandbox = true
url = "http://127.0.0.1:{bao}"
token_env = "KS_FAULT_UNSET"
token_file = "sb/openbao.token"

[backends.aws-sm]
type = "aws-secrets"
sandbox = true
endpoint_url = "http://127.0.0.1:{moto}"
region = "us-east-1"
profile = "killswitch-sandbox"
credentials_file = "sb/aws-credentials"

[backends.openai]
type = "openai"
sandbox = true
base_url = "http://127.0.0.1:{openai}/v1"
admin_key_env = "KS_FAULT_UNSET"
admin_key_file = "sb/openai-admin.key"

[backends.flags]
type = "flagfile"
sandbox = true
path = "sb/flags.json"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "openai"
project = "proj_support_bot"
api_key_id = "key_support_bot"

[[integrations.credentials]]
backend = "vault"
path = "ai/support-bot/key"

[[integrations.credentials]]
backend = "aws-sm"
secret_id = "ai/support-bot/key"

[[integrations.flags]]
backend = "flags"
flag = "support-bot-enabled"
"""


def _ks(config: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "console", "--config", str(config), *args],
                       capture_output=True, text=True, cwd=config.parent, timeout=120)
    assert r.returncode == code, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    bao_binary()  # fail loudly under CI when missing
    root = tmp_path_factory.mktemp("fault")
    config = root / "config.toml"
    config.write_text(CONFIG.format(bao=free_port_pair(), moto=_free_port(),
                                    openai=_free_port()))
    try:
        _ks(config, "sandbox", "start")
        yield config
    finally:
        _ks(config, "sandbox", "stop")


@pytest.fixture
def rt(world: Path) -> Iterator[Runtime]:
    runtime = Runtime(load_config(world))
    try:
        yield runtime
    finally:
        for name in ("openai", "aws-sm"):  # used directly, not through the runtime's calls
            runtime.adapter(name).close()
        runtime.close()
        _ks(world, "sandbox", "fault", "--clear")


def _openai_plan(rt: Runtime) -> Any:
    adapter: Any = rt.adapter("openai")
    return adapter.plan("credential.disable", {"backend": "openai", "project": "proj_support_bot",
                                               "api_key_id": "key_support_bot"},
                        PlanContext("support-bot", "revoke"))


def _reveal(rt: Runtime) -> str | None:
    adapter: Any = rt.adapter("aws-sm")
    return adapter.reveal({"secret_id": "ai/support-bot/key"})  # type: ignore[no-any-return]


def test_standin_faults_reach_the_adapter(world: Path, rt: Runtime) -> None:
    out = _ks(world, "sandbox", "fault", "openai", "--rate", "1", "--status", "429",
              "--retry-after", "2").stdout
    assert "openai: 100% answered 429 (Retry-After 2 s)" in out
    with pytest.raises(AdapterError) as err:
        _openai_plan(rt)
    assert err.value.status == 429 and err.value.retry_after == 2

    _ks(world, "sandbox", "fault", "openai", "--rate", "1", "--status", "503")
    with pytest.raises(AdapterError) as err:
        _openai_plan(rt)
    assert err.value.status == 503

    _ks(world, "sandbox", "fault", "openai", "--latency", "0.5")
    t0 = time.monotonic()
    assert _openai_plan(rt)
    assert time.monotonic() - t0 >= 0.5
    assert faults.current_faults(load_config(world)) == {"openai": {"latency": 0.5}}


def test_moto_behind_the_proxy_gets_latency_503_and_down(world: Path, rt: Runtime) -> None:
    config = load_config(world)
    assert _reveal(rt)
    _ks(world, "sandbox", "fault", "aws-sm", "--latency", "0.5")
    t0 = time.monotonic()
    assert _reveal(rt)
    assert time.monotonic() - t0 >= 0.5

    _ks(world, "sandbox", "fault", "aws-sm", "--rate", "1", "--status", "503")
    with pytest.raises(AdapterError) as err:
        _reveal(rt)
    assert err.value.status == 503

    out = _ks(world, "sandbox", "fault", "aws-sm", "--down").stdout
    assert "aws-sm: down (connection refused)" in out
    port = int(str(config.backends["aws-sm"].options["endpoint_url"]).rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    status = _ks(world, "sandbox", "status", "--json").stdout
    [moto] = [s for s in json.loads(status) if s["name"] == "moto"]
    assert moto["running"] and "down (connection refused)" in moto["detail"]  # the truth

    out = _ks(world, "sandbox", "fault", "aws-sm", "--clear").stdout
    assert "faults in effect: none" in out
    assert _reveal(rt)


def test_vault_down_then_clear(world: Path, rt: Runtime) -> None:
    _ks(world, "sandbox", "fault", "vault", "--down")
    port = int(str(load_config(world).backends["vault"].options["url"]).rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    _ks(world, "sandbox", "fault", "--clear")
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_planted_copy_is_found_by_the_scan(world: Path, rt: Runtime) -> None:
    config = load_config(world)
    where = faults.plant_copy(config, "support-bot", "vault", "ci/leaked-openai")
    assert "secret/ci/leaked-openai" in where and "sk-" not in where
    faults.plant_copy(config, "support-bot", "aws-sm", "ci/leaked-openai")
    scan = json.loads(_ks(world, "credentials", "scan", "support-bot", "--json").stdout)
    unlisted = {(c["backend"], c["target"]) for c in scan["copies"] if not c["listed"]}
    assert ("vault", "vault:secret/ci/leaked-openai") in unlisted
    assert any(b == "aws-sm" and "ci/leaked-openai" in t for b, t in unlisted), scan


def test_cli_refuses_what_is_not_a_sandbox_backend(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[backends.prod-vault]\ntype = "vault"\nurl = "http://127.0.0.1:1"\n'
                      '[backends.flags]\ntype = "flagfile"\nsandbox = true\npath = "f.json"\n')
    r = _ks(config, "sandbox", "fault", "prod-vault", "--latency", "2", code=2)
    assert "prod-vault is not a sandbox backend" in r.stderr and "Traceback" not in r.stderr
    r = _ks(config, "sandbox", "fault", "flags", "--down", code=2)
    assert "no server to inject faults into" in r.stderr
    r = _ks(config, "sandbox", "fault", "prod-vault", "--rate", "0.5", "--status", "404",
            code=2)
    assert "--status 404 cannot be injected" in r.stderr
