"""A key that is still live, or that could not be checked, is never reported as success,
and never hides behind "some operations failed" (exit 4 wins)."""

from __future__ import annotations

from pathlib import Path

from adapters.fake import FakeAdapter
from console.config import load_config
from console.engine.service import Session
from console.errors import EXIT_FAILED, EXIT_OK, EXIT_VERIFY

RUNBOOK = """
name = "revoke"
description = "the key at the provider and its store copy"
[[steps]]
id = "revoke"
action = "credential.disable"
"""


def _config(tmp_path: Path, probe: str, broken_copy: bool = False) -> Session:
    FakeAdapter.reset()
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "revoke.toml").write_text(RUNBOOK)
    extra = ['[[integrations.credentials]]', 'backend = "down"', 'key = "copy-in-down"']
    (tmp_path / "config.toml").write_text("\n".join([
        "[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
        "max_attempts = 1", "proof_window = 0", "proof_interval = 0.01", "",
        "[backends.provider]", 'type = "fake"', f'probe = "{probe}"', "",
        "[backends.store]", 'type = "fake"', "reveal = true", "",
        "[backends.down]", 'type = "fake"', "fail_rate = 1.0", "",
        "[[integrations]]", 'id = "bot"', 'name = "Bot"', 'owner = "t"',
        'environment = "prod"', 'provider = "openai"',
        "[[integrations.credentials]]", 'backend = "provider"', 'key = "bot-key"',
        "[[integrations.credentials]]", 'backend = "store"', 'key = "bot-key-copy"',
        *(extra if broken_copy else []), ""]))
    return Session(load_config(tmp_path / "config.toml"), operator="t")


async def test_a_key_the_provider_refuses_is_proven_dead(tmp_path: Path) -> None:
    s = _config(tmp_path, "switch")
    result = await s.apply(await s.plan("revoke", ["bot"]), reason="x")
    assert [p.state for p in result.proofs.values()] == ["revoked"]
    assert result.exit_code() == EXIT_OK


async def test_a_proof_that_could_not_be_made_is_not_success(tmp_path: Path) -> None:
    s = _config(tmp_path, "unknown")
    result = await s.apply(await s.plan("revoke", ["bot"]), reason="x")
    assert all(r.outcome == "applied" and r.verified for r in result.results.values())
    (proof,) = result.proofs.values()
    assert proof.state == "unknown" and "answered 500" in proof.detail
    assert result.exit_code() == EXIT_VERIFY


async def test_still_live_wins_over_a_failed_operation(tmp_path: Path) -> None:
    s = _config(tmp_path, "live", broken_copy=True)
    result = await s.apply(await s.plan("revoke", ["bot"]), reason="x")
    assert result.count("failed") == 1  # the copy in the backend that is down
    assert [p.state for p in result.proofs.values()] == ["STILL LIVE"]
    assert result.exit_code() == EXIT_VERIFY != EXIT_FAILED
