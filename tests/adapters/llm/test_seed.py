"""The sandbox seed: deterministic key values shared with the store seeders, admin key files."""

from __future__ import annotations

import stat

from console.sandbox import api_anthropic, api_openai, standins
from console.sandbox.seedkeys import sandbox_key_value
from tests.adapters.llm.conftest import ANTHROPIC_KEY, OPENAI_KEY, PROJECT, LLMSandbox


def test_seed_values_are_deterministic_and_private(llm: LLMSandbox) -> None:
    value = sandbox_key_value(llm.config, "openai", OPENAI_KEY)
    assert value.startswith("sk-sandbox-") and len(value) == len("sk-sandbox-") + 32
    assert value == sandbox_key_value(llm.config, "openai", OPENAI_KEY)
    assert value != sandbox_key_value(llm.config, "openai", "key_other")
    assert sandbox_key_value(llm.config, "anthropic", ANTHROPIC_KEY).startswith(
        "sk-ant-sandbox-")
    # the stand-ins hold the same value the store seeders will write
    seeded = api_openai.seed(llm.config)["projects"][PROJECT]["api_keys"][OPENAI_KEY]
    assert seeded["value"] == value
    assert api_anthropic.seed(llm.config)["api_keys"][ANTHROPIC_KEY]["value"] == \
        sandbox_key_value(llm.config, "anthropic", ANTHROPIC_KEY)
    for name in ("seed.secret", "openai-admin.key", "anthropic-admin.key"):
        mode = stat.S_IMODE((llm.root / ".sandbox" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_standins_are_discovered_and_wanted(llm: LLMSandbox) -> None:
    names = {m.STANDIN.name: m for m in standins.modules()}
    assert names["openai"].DEFAULT_PORT == 8381 and names["anthropic"].DEFAULT_PORT == 8382
    assert names["openai"].wanted(llm.config) and names["anthropic"].wanted(llm.config)
