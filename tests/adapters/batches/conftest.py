"""Fixtures: the four batch stand-ins in-process, seeded from a tmp config with five backends.

Integrations (one batch reference each): support-bot (OpenAI, metadata), contract-drafter
(Azure OpenAI, metadata), code-review-agent (Anthropic, workspace), claims-summariser
(Bedrock, name prefix), search-embeddings (Vertex, labels). Each stand-in is seeded exactly
as ``killswitch sandbox start`` seeds it, served on a free loopback port, and the config is
rewritten with those ports so the engine reaches them too.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.anthropic_batch import AnthropicBatchAdapter
from adapters.batch_common import BatchAdapter
from adapters.bedrock_batch import BedrockBatchAdapter
from adapters.openai_batch import AzureOpenAIBatchAdapter, OpenAIBatchAdapter
from adapters.vertex_batch import VertexBatchAdapter
from console.config import Config, load_config
from console.sandbox import api_anthropic_batches, api_bedrock, api_openai_batches, api_vertex
from console.sandbox.batchjobs import JobsStandIn
from console.sandbox.standin import Faults, serve

REPO = Path(__file__).resolve().parents[3]
MODULES = {"openai": api_openai_batches, "anthropic": api_anthropic_batches,
           "bedrock": api_bedrock, "vertex": api_vertex}
NO_VAR = "KS_TEST_BATCH_NO_SUCH_VAR"

# provider -> (integration, backend, stand-in, adapter class)
PROVIDERS: dict[str, tuple[str, str, str, type[BatchAdapter]]] = {
    "openai": ("support-bot", "openai-batch-sandbox", "openai", OpenAIBatchAdapter),
    "azure": ("contract-drafter", "azure-openai-batch-sandbox", "openai",
              AzureOpenAIBatchAdapter),
    "anthropic": ("code-review-agent", "anthropic-batch-sandbox", "anthropic",
                  AnthropicBatchAdapter),
    "bedrock": ("claims-summariser", "bedrock-sandbox", "bedrock", BedrockBatchAdapter),
    "vertex": ("search-embeddings", "vertex-sandbox", "vertex", VertexBatchAdapter),
}


def config_text(ports: dict[str, int], max_attempts: int = 4, timeout: float = 2.0,
                wait: float = 5.0) -> str:
    """The test config, pointing the five backends at the stand-ins' ports."""
    common = f"request_timeout = {timeout}\nwait = {wait}\n"
    return f"""
[settings]
audit_db = "audit.db"
runbook_dirs = ["{REPO / 'runbooks'}"]
max_targets = 10
max_attempts = {max_attempts}
default_timeout = 20.0

[sandbox]
dir = ".sandbox"

[backends.openai-batch-sandbox]
type = "openai-batch"
base_url = "http://127.0.0.1:{ports['openai']}/v1"
key_env = "{NO_VAR}"
key_file = ".sandbox/openai-batch.key"
{common}
[backends.azure-openai-batch-sandbox]
type = "azure-openai-batch"
endpoint = "http://127.0.0.1:{ports['openai']}"
key_env = "{NO_VAR}"
key_file = ".sandbox/openai-batch.key"
{common}
[backends.anthropic-batch-sandbox]
type = "anthropic-batch"
base_url = "http://127.0.0.1:{ports['anthropic']}"
key_env = "{NO_VAR}"
key_file = ".sandbox/anthropic-batch.key"
{common}
[backends.bedrock-sandbox]
type = "bedrock-batch"
endpoint_url = "http://127.0.0.1:{ports['bedrock']}"
region = "us-east-1"
credentials_file = ".sandbox/bedrock-credentials"
profile = "killswitch-sandbox"
{common}
[backends.vertex-sandbox]
type = "vertex-batch"
base_url = "http://127.0.0.1:{ports['vertex']}"
anonymous = true
{common}
[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "team"
environment = "prod"
provider = "openai"
[[integrations.batches]]
backend = "openai-batch-sandbox"
project = "proj_support"
metadata = {{integration = "support-bot"}}

[[integrations]]
id = "contract-drafter"
name = "Contract drafter"
owner = "team"
environment = "staging"
provider = "openai"
[[integrations.batches]]
backend = "azure-openai-batch-sandbox"
metadata = {{integration = "contract-drafter"}}

[[integrations]]
id = "code-review-agent"
name = "Code review agent"
owner = "team"
environment = "staging"
provider = "anthropic"
[[integrations.batches]]
backend = "anthropic-batch-sandbox"
workspace = "wrkspc_codereview"

[[integrations]]
id = "claims-summariser"
name = "Claims summariser"
owner = "team"
environment = "prod"
provider = "bedrock"
[[integrations.batches]]
backend = "bedrock-sandbox"
name_prefix = "claims-summariser-"

[[integrations]]
id = "search-embeddings"
name = "Search embeddings"
owner = "team"
environment = "dev"
provider = "vertex"
[[integrations.batches]]
backend = "vertex-sandbox"
project = "search-prod"
location = "europe-west4"
labels = {{integration = "search-embeddings"}}
"""


@dataclass
class BatchSandbox:
    """The stand-ins, the config that reaches them, and helpers."""

    root: Path
    config: Config
    apps: dict[str, JobsStandIn]
    ports: dict[str, int]
    servers: list[Any] = field(default_factory=list)
    adapters: list[BatchAdapter] = field(default_factory=list)

    def app(self, provider: str) -> JobsStandIn:
        """The stand-in serving ``provider``."""
        return self.apps[PROVIDERS[provider][2]]

    def adapter(self, provider: str, **options: Any) -> BatchAdapter:
        """An adapter on the provider's backend (file options resolved)."""
        _, backend, _, cls = PROVIDERS[provider]
        opts = {**self.config.backends[backend].options, **options}
        for k in ("key_file", "credentials_file"):
            if k in opts:
                opts[k] = str(self.config.resolve(opts[k]))
        adapter = cls(backend, opts)
        self.adapters.append(adapter)
        return adapter

    def ref(self, provider: str) -> dict[str, Any]:
        """The inventory reference of the provider's integration."""
        integ = self.config.integration(PROVIDERS[provider][0])
        assert integ is not None
        return integ.batches[0].fields()

    def statuses(self, provider: str) -> dict[str, str]:
        """Every job's status in the stand-in, by id (no read counted)."""
        app = self.app(provider)
        return {k: str(v[app.STATUS]) for k, v in app.jobs().items()}

    def reload(self, **kw: Any) -> Config:
        """Rewrite the config (attempts, timeouts) and load it again."""
        (self.root / "config.toml").write_text(config_text(self.ports, **kw))
        self.config = load_config(self.root / "config.toml")
        return self.config


@pytest.fixture(scope="session")
def batch_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchSandbox]:
    """Seeded stand-ins on free ports for the whole session (reset per test)."""
    root = tmp_path_factory.mktemp("batches")
    path = root / "config.toml"
    path.write_text(config_text(dict.fromkeys(MODULES, 9)))
    draft = load_config(path)
    apps: dict[str, JobsStandIn] = {}
    servers, ports = [], {}
    for name, module in MODULES.items():
        assert module.wanted(draft), name
        apps[name] = module.STANDIN(module.seed(draft))
        srv = serve(apps[name], port=0)
        servers.append(srv)
        ports[name] = srv.server_address[1]
    path.write_text(config_text(ports))
    yield BatchSandbox(root, load_config(path), apps, ports, servers)
    threads = [threading.Thread(target=srv.shutdown) for srv in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for srv in servers:
        srv.server_close()


@pytest.fixture
def batches(batch_servers: BatchSandbox,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchSandbox]:
    """The stand-ins back at their seed, faults off, and the default config."""
    monkeypatch.delenv(NO_VAR, raising=False)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for app in batch_servers.apps.values():
        with app.lock:
            app.state = copy.deepcopy(app.seed)
            app.faults = Faults()
            app.requests.clear()
    batch_servers.reload()
    yield batch_servers
    for adapter in batch_servers.adapters:
        adapter.close()
    batch_servers.adapters.clear()
