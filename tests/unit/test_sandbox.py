"""The embedded sandbox: a real OpenBao dev server started in the background, then stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from console import sandbox
from console.config import Config, load_config
from console.errors import ConfigError
from tests.servers import bao_binary, free_port_pair

CONFIG = """
[sandbox]
dir = "state"
openbao_port = {port}

[backends.vault-sandbox]
type = "vault"
url = "http://127.0.0.1:{port}"
token_file = "state/openbao.token"

[backends.elsewhere]
type = "vault"
url = "http://127.0.0.1:1"

[backends.flags]
type = "flagfile"
path = "state/flags.json"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "vault-sandbox"
path = "ai/support-bot/openai"

[[integrations.credentials]]
backend = "vault-sandbox"
mount = "ir-kv"
path = "ai/support-bot/copy"

[[integrations.credentials]]
backend = "elsewhere"
path = "not/seeded"

[[integrations.flags]]
backend = "flags"
flag = "support-bot-enabled"

[[integrations]]
id = "coder"
name = "Coder"
owner = "eng"
environment = "dev"
provider = "anthropic"

[[integrations.flags]]
backend = "flags"
flag = "coder-enabled"
"""


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    bao_binary()  # fail loudly under CI when missing
    port = free_port_pair()
    path = tmp_path / "killswitch.toml"
    path.write_text(CONFIG.format(port=port))
    cfg = load_config(path)
    yield cfg
    sandbox.stop(cfg)


def by_name(services: list[sandbox.ServiceStatus]) -> dict[str, sandbox.ServiceStatus]:
    """Sandbox services by name."""
    return {s.name: s for s in services}


def _client(cfg: Config) -> hvac.Client:
    token = (cfg.resolve("state") / "openbao.token").read_text().strip()
    return hvac.Client(url=f"http://127.0.0.1:{cfg.sandbox.openbao_port}", token=token)


def test_start_seed_status_stop(config: Config) -> None:
    state = config.resolve("state")
    services = sandbox.start(config)
    bao = by_name(services)['openbao']
    assert bao.name == "openbao" and bao.running and bao.pid
    assert "secret/ai/support-bot/openai" in bao.detail
    token_file = state / "openbao.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    # the token is not on the command line
    assert token not in (Path(f"/proc/{bao.pid}/cmdline").read_bytes().decode())

    c = _client(config)
    kv = c.secrets.kv.v2
    seeded = kv.read_secret_version(path="ai/support-bot/openai",
                                    raise_on_deleted_version=True)["data"]["data"]["api_key"]
    assert seeded.startswith("sk-sandbox-")
    assert kv.read_secret_version(path="ai/support-bot/copy", mount_point="ir-kv",
                                  raise_on_deleted_version=True)["data"]["data"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata(path="not/seeded")

    flags = json.loads((state / "flags.json").read_text())["flags"]
    assert set(flags) == {"support-bot-enabled", "coder-enabled"}
    assert flags["coder-enabled"] == {"state": "ENABLED", "variants": {"on": True, "off": False},
                                      "defaultVariant": "on", "targeting": {}}

    # idempotent: same process, same token, nothing reseeded over existing values
    again = sandbox.start(config)
    again_bao = by_name(again)["openbao"]
    assert again_bao.pid == bao.pid and "already running" in again_bao.detail
    assert token_file.read_text().strip() == token
    assert kv.read_secret_version(path="ai/support-bot/openai",
                                  raise_on_deleted_version=True)["data"]["data"]["api_key"] \
        == seeded
    # a deleted secret is reseeded only when missing entirely
    kv.delete_metadata_and_all_versions(path="ai/support-bot/openai")
    assert "secret/ai/support-bot/openai" in by_name(sandbox.start(config))['openbao'].detail
    c.adapter.close()

    st = sandbox.status(config)
    assert by_name(st)['openbao'].running and by_name(st)['openbao'].pid == bao.pid
    assert all(s.running for s in st if s.name != 'standins')

    stopped = sandbox.stop(config)
    stopped_bao = by_name(stopped)["openbao"]
    assert not stopped_bao.running and f"stopped pid {bao.pid}" in stopped_bao.detail
    assert not Path(f"/proc/{bao.pid}").exists() or \
        Path(f"/proc/{bao.pid}/cmdline").read_bytes() == b""
    assert not token_file.exists() and not (state / "openbao.pid").exists()
    assert not by_name(sandbox.status(config))['openbao'].running
    assert (state / "flags.json").exists()  # flag files stay


def test_stop_leaves_foreign_process_alone(config: Config) -> None:
    state = config.resolve("state")
    state.mkdir(parents=True)
    victim = subprocess.Popen(["sleep", "30"])
    try:
        # a pid file naming a process that does not run what the sandbox started
        (state / "openbao.pid").write_text(json.dumps(
            {"pid": victim.pid, "argv": [bao_binary(), "server", "-dev"]}))
        result = sandbox.stop(config)
        assert "left it alone" in by_name(result)['openbao'].detail
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_port_taken_is_a_clear_error(config: Config) -> None:
    port = config.sandbox.openbao_port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port + 1))
        s.listen()
        with pytest.raises(ConfigError) as err:
            sandbox.start(config)
    assert str(port + 1) in str(err.value) and "openbao_port" in str(err.value)
    assert not (config.resolve("state") / "openbao.pid").exists()


def test_vault_adapter_works_on_the_sandbox(config: Config,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.base import PlanContext
    from adapters.vault import VaultAdapter

    sandbox.start(config)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    opts = dict(config.backends["vault-sandbox"].options)
    opts["token_file"] = str(config.resolve(opts["token_file"]))
    a = VaultAdapter("vault-sandbox", opts)
    (ch,) = a.plan("credential.disable", {"path": "ai/support-bot/openai"},
                   PlanContext("support-bot", "revoke"))
    a.apply(ch)
    assert a.verify(ch).ok
    a.close()
    assert os.environ.get("VAULT_TOKEN") is None


def test_reset_refuses_a_config_with_real_backends(config: Config) -> None:
    """This config's `elsewhere` and the others are not marked sandbox: reset would drop
    real flags. Refused (exit 2 through the CLI), nothing touched, nothing started."""
    from console.errors import UsageError

    flags = config.resolve("state") / "flags.json"
    flags.parent.mkdir(parents=True)
    flags.write_text('{"flags": {"coder-enabled": {"state": "DISABLED"}}}')
    with pytest.raises(UsageError) as err:
        sandbox.reset(config)
    assert err.value.exit_code == 2
    assert "elsewhere" in str(err.value) and "nothing was changed" in str(err.value)
    assert "DISABLED" in flags.read_text()
    assert not by_name(sandbox.status(config))["openbao"].running


def test_reset_brings_back_what_a_run_turned_off(tmp_path: Path) -> None:
    """A run deleted a seeded secret and turned a flag off; reset reseeds both."""
    bao_binary()
    port = free_port_pair()
    text = CONFIG.format(port=port).replace('[backends.elsewhere]\ntype = "vault"\n'
                                            'url = "http://127.0.0.1:1"\n', "")
    text = text.replace('[[integrations.credentials]]\nbackend = "elsewhere"\n'
                        'path = "not/seeded"\n', "")
    text = text.replace('type = "vault"\n', 'type = "vault"\nsandbox = true\n')
    text = text.replace('type = "flagfile"\n', 'type = "flagfile"\nsandbox = true\n')
    path = tmp_path / "killswitch.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.real_backends == []
    try:
        sandbox.start(cfg)
        c = _client(cfg)
        c.secrets.kv.v2.delete_metadata_and_all_versions(path="ai/support-bot/openai")
        c.adapter.close()
        flags = cfg.resolve("state") / "flags.json"
        data = json.loads(flags.read_text())
        data["flags"]["coder-enabled"]["state"] = "DISABLED"
        flags.write_text(json.dumps(data))

        services = by_name(sandbox.reset(cfg))
        assert services["openbao"].running
        c = _client(cfg)
        assert c.secrets.kv.v2.read_secret_version(
            path="ai/support-bot/openai", raise_on_deleted_version=True)["data"]["data"]
        c.adapter.close()
        assert json.loads(flags.read_text())["flags"]["coder-enabled"]["state"] == "ENABLED"
    finally:
        sandbox.stop(cfg)


def test_seeding_waits_for_a_kv_mount_that_is_still_upgrading(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KV v2 mount answers every request with a 400 "Upgrading from non-versioned to
    versioned data" for a moment after it is enabled (the `ir-kv` mount above is enabled by
    the seeding itself; a CI run lost that race once). Seeding tries again until the mount
    answers; any other refusal is said at once, naming the server."""
    import hvac.exceptions

    from console.errors import ConsoleError
    from console.sandbox import openbao

    answers: list[Exception | list[str]] = [
        hvac.exceptions.InvalidRequest(errors=[openbao.UPGRADING + ". This backend will be "
                                               "unavailable for a brief period."]),
        hvac.exceptions.InvalidRequest(errors=[openbao.UPGRADING + "."]),
        ["ir-kv/ai/support-bot/copy"],
    ]

    def seed_once(*_args: object) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(openbao, "_seed_once", seed_once)
    assert openbao.seed(config, "http://127.0.0.1:1", "t") == ["ir-kv/ai/support-bot/copy"]
    assert answers == []

    answers[:] = [hvac.exceptions.Forbidden(errors=["permission denied"])]
    with pytest.raises(ConsoleError) as err:
        openbao.seed(config, "http://127.0.0.1:1", "t")
    assert "permission denied" in err.value.msg and answers == []
