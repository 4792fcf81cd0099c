"""TUI fixtures: a config on the fake backend with a deterministic state file, in tmp_path.

Every test builds the app through the production factory ``make_app(config_path)``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from adapters.fake import FakeAdapter

OPERATOR = "ic-tester"
INCIDENT = "INC-7"


def dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _integration(iid: str, name: str, env: str, provider: str, data: list[str],
                 owner: str, status: str = "approved", **points: list[str]) -> list[str]:
    lines = ["[[integrations]]", f'id = "{iid}"', f'name = "{name}"', f'owner = "{owner}"',
             f'environment = "{env}"', f'status = "{status}"', f'provider = "{provider}"',
             f"data_classes = {json.dumps(data)}",
             'approval_record = "https://grc.example.com/ai-reviews/AIR-1"',
             "review_due = 2031-03-31",
             f'kill_switch_owner = {{ name = "On-call {owner}", role = "lead", '
             f'how = "slack:#{iid}" }}']
    for kind, keys in points.items():
        for key in keys:
            backend, _, ref = key.partition(":")
            field = "path" if backend == "down" else "key"
            lines += [f"[[integrations.{kind}]]", f'backend = "{backend}"', f'{field} = "{ref}"']
    return lines + [""]


def write_tui_config(root: Path, dead: int | None = None) -> Path:
    """Six integrations on fake backend ``sim`` (state in ``fake-state.json``).

    States: support-bot all ok; claims-summariser all disabled; code-review-agent keys ok,
    flags disabled; contract-drafter keys partial; search-embeddings batches + egress ok;
    legacy-chat keys on backend ``down`` (a vault at a dead port) when ``dead`` is given.
    """
    state = root / "fake-state.json"
    off = ["claims-key", "claims-flag", "code-review-flag", "drafter-key-2"]
    state.write_text(json.dumps({"switches": {k: "off" for k in off}, "applied": []}))
    lines = ["[settings]", 'audit_db = "audit.db"', f'operator = "{OPERATOR}"',
             f'incident = "{INCIDENT}"', "max_attempts = 1", "",
             "[backends.sim]", 'type = "fake"', f'state_file = "{state}"', ""]
    if dead is not None:
        lines += ["[backends.down]", 'type = "vault"', f'url = "http://127.0.0.1:{dead}"',
                  'token_env = "KS_TUI_TEST_NO_SUCH_TOKEN"', "timeout = 2", ""]
    lines += _integration("support-bot", "Customer support assistant", "prod", "openai",
                          ["customer", "personal"], "team-support",
                          credentials=["sim:support-key"], flags=["sim:support-flag"])
    lines += _integration("claims-summariser", "Insurance claims summariser", "prod",
                          "bedrock", ["customer", "regulated"], "team-claims",
                          credentials=["sim:claims-key"], flags=["sim:claims-flag"])
    lines += _integration("code-review-agent", "Pull-request review agent", "staging",
                          "anthropic", ["internal", "source-code"], "team-devex",
                          credentials=["sim:code-review-key"], flags=["sim:code-review-flag"])
    lines += _integration("contract-drafter", "Contract drafting prototype", "staging",
                          "openai", ["internal"], "team-legal", status="suspended",
                          credentials=["sim:drafter-key-1", "sim:drafter-key-2"])
    lines += _integration("search-embeddings", "Internal search embeddings", "dev", "vertex",
                          ["public"], "team-search", batches=["sim:search-batch"],
                          egress=["sim:search-egress"])
    if dead is not None:
        lines += _integration("legacy-chat", "Legacy chat widget", "dev", "openai",
                              ["public"], "team-web", status="prototype",
                              credentials=["down:ai/legacy-chat/key"])
    path = root / "config.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def tui_config(tmp_path: Path) -> Path:
    """The six-integration config (no dead backend: fully deterministic)."""
    FakeAdapter.reset()
    return write_tui_config(tmp_path)


@pytest.fixture
def tui_config_down(tmp_path: Path) -> Path:
    """The config plus ``legacy-chat`` on a vault backend at a dead port."""
    FakeAdapter.reset()
    return write_tui_config(tmp_path, dead=dead_port())
from tests.adapters.llm.conftest import llm  # noqa: E402,F401 - the stand-ins fixture (paste key test)
