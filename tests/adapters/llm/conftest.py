"""Fixtures: the OpenAI and Anthropic stand-ins in-process, seeded from a tmp config.

The config names two integrations (an OpenAI project key and service account, an Anthropic
key) on ``openai-sandbox`` / ``anthropic-sandbox`` backends. The stand-ins are seeded from it
exactly as ``killswitch sandbox start`` seeds them, served on free loopback ports, and the
config is rewritten with those ports so the engine reaches them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.anthropic_admin import AnthropicAdminAdapter
from adapters.openai_admin import OpenAIAdminAdapter
from console.config import Config, load_config
from console.sandbox import api_anthropic, api_openai
from console.sandbox.seedkeys import sandbox_key_value
from console.sandbox.standin import serve

PROJECT = "proj_sandbox"
OPENAI_KEY = "key_supportbot"
SERVICE_ACCOUNT = "svc_acct_batch"
ANTHROPIC_KEY = "apikey_codereview"
EXTRA_KEYS = ("key_extra1", "key_extra2", "key_extra3", "key_extra4")

RUNBOOKS = {
    "revoke": 'name = "revoke"\ndescription = "disable keys"\n'
              '[[steps]]\nid = "revoke"\naction = "credential.disable"\n',
    "reenable": 'name = "reenable"\ndescription = "enable keys"\n'
                '[[steps]]\nid = "reenable"\naction = "credential.enable"\n',
    "destroy": 'name = "destroy"\ndescription = "destroy keys"\n'
               '[[steps]]\nid = "destroy"\naction = "credential.destroy"\n',
}


def config_text(openai_port: int, anthropic_port: int, max_attempts: int = 4,
                request_timeout: float = 1.0) -> str:
    """The test config, pointing the two backends at the given ports."""
    extra = "".join(
        f'[[integrations.credentials]]\nbackend = "openai-sandbox"\nproject = "{PROJECT}"\n'
        f'api_key_id = "{k}"\n' for k in EXTRA_KEYS)
    return f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["runbooks"]
max_targets = 10
max_attempts = {max_attempts}
default_timeout = 5.0

[sandbox]
dir = ".sandbox"

[backends.openai-sandbox]
type = "openai"
base_url = "http://127.0.0.1:{openai_port}/v1"
admin_key_env = "KS_TEST_LLM_NO_SUCH_VAR"
admin_key_file = ".sandbox/openai-admin.key"
request_timeout = {request_timeout}

[backends.anthropic-sandbox]
type = "anthropic"
base_url = "http://127.0.0.1:{anthropic_port}"
admin_key_env = "KS_TEST_LLM_NO_SUCH_VAR"
admin_key_file = ".sandbox/anthropic-admin.key"
request_timeout = {request_timeout}

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "team"
environment = "prod"
status = "approved"
provider = "openai"
[[integrations.credentials]]
backend = "openai-sandbox"
label = "OpenAI project key"
project = "{PROJECT}"
api_key_id = "{OPENAI_KEY}"

[[integrations]]
id = "batch-worker"
name = "Batch worker"
owner = "team"
environment = "prod"
status = "approved"
provider = "openai"
[[integrations.credentials]]
backend = "openai-sandbox"
project = "{PROJECT}"
service_account_id = "{SERVICE_ACCOUNT}"

[[integrations]]
id = "code-review-agent"
name = "Code review agent"
owner = "team"
environment = "staging"
status = "approved"
provider = "anthropic"
[[integrations.credentials]]
backend = "anthropic-sandbox"
label = "Anthropic key"
api_key_id = "{ANTHROPIC_KEY}"

[[integrations]]
id = "spare-keys"
name = "Spare keys (pagination)"
owner = "team"
environment = "dev"
status = "approved"
provider = "openai"
{extra}"""


@dataclass
class LLMSandbox:
    """Both stand-ins, the config that reaches them, and helpers."""

    root: Path
    config: Config
    openai: api_openai.OpenAIStandIn
    anthropic: api_anthropic.AnthropicStandIn
    openai_url: str
    anthropic_url: str

    def openai_adapter(self, **options: Any) -> OpenAIAdminAdapter:
        """An adapter on the OpenAI stand-in, keyed by the sandbox admin key file."""
        opts = {**self.config.backends["openai-sandbox"].options, **options}
        opts["admin_key_file"] = str(self.root / ".sandbox" / "openai-admin.key")
        return OpenAIAdminAdapter("openai-sandbox", opts)

    def anthropic_adapter(self, **options: Any) -> AnthropicAdminAdapter:
        """An adapter on the Anthropic stand-in, keyed by the sandbox admin key file."""
        opts = {**self.config.backends["anthropic-sandbox"].options, **options}
        opts["admin_key_file"] = str(self.root / ".sandbox" / "anthropic-admin.key")
        return AnthropicAdminAdapter("anthropic-sandbox", opts)

    def value(self, provider: str, key_id: str) -> str:
        """The fake key value the seed gave ``key_id`` (the same one the stores hold)."""
        return sandbox_key_value(self.config, provider, key_id)

    def admin_key(self, provider: str) -> str:
        """The sandbox admin key the seed wrote."""
        return (self.root / ".sandbox" / f"{provider}-admin.key").read_text().strip()

    def reload(self, max_attempts: int = 4, request_timeout: float = 1.0) -> Config:
        """Rewrite the config (e.g. more attempts) and load it again."""
        o, a = (int(u.rsplit(":", 1)[1].split("/")[0]) for u in
                (self.openai_url, self.anthropic_url))
        (self.root / "config.toml").write_text(config_text(o, a, max_attempts, request_timeout))
        self.config = load_config(self.root / "config.toml")
        return self.config


@pytest.fixture
def llm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMSandbox]:
    """Seeded stand-ins on free ports and a config pointing at them."""
    for var in (api_openai.ADMIN_KEY_ENV, api_anthropic.ADMIN_KEY_ENV,
                "KS_TEST_LLM_NO_SUCH_VAR"):
        monkeypatch.delenv(var, raising=False)
    rb = tmp_path / "runbooks"
    rb.mkdir()
    for name, text in RUNBOOKS.items():
        (rb / f"{name}.toml").write_text(text)
    path = tmp_path / "config.toml"
    path.write_text(config_text(1, 2))
    draft = load_config(path)
    assert api_openai.wanted(draft) and api_anthropic.wanted(draft)
    oapp = api_openai.STANDIN(api_openai.seed(draft))
    aapp = api_anthropic.STANDIN(api_anthropic.seed(draft))
    osrv, asrv = serve(oapp, port=0), serve(aapp, port=0)
    oport, aport = osrv.server_address[1], asrv.server_address[1]
    path.write_text(config_text(oport, aport))
    box = LLMSandbox(tmp_path, load_config(path), oapp, aapp,
                     f"http://127.0.0.1:{oport}/v1", f"http://127.0.0.1:{aport}")
    yield box
    for srv in (osrv, asrv):
        srv.shutdown()
        srv.server_close()
