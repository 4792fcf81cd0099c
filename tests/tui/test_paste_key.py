"""Rotation in the console (issue 13 §3): a provider that cannot issue keys by API (Anthropic)
makes the console ask for the new key in a password field before the run; the accepted one
is shown by fingerprint only, and the run rotates with it (pasting the old key again is
refused at the provider check: tests/adapters/llm/test_anthropic_rotation.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from console.tui.app import make_app
from console.tui.messages import RunConfirmed
from tests.adapters.llm.conftest import ANTHROPIC_KEY, LLMSandbox
from tests.tui.flow_helpers import type_text, wait_for, wait_screen
from tests.tui.screen_helpers import screen_text

INTEG = "code-review-agent"


def notices(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_the_console_asks_for_the_pasted_key_then_rotates(llm: LLMSandbox) -> None:
    made = httpx.post(f"{llm.anthropic_url}/_sandbox/console/api_keys", json={"name": "new"})
    new_id, value = made.json()["id"], made.json()["value"]
    old = llm.value("anthropic", ANTHROPIC_KEY)
    app = make_app(llm.root / "config.toml", mode="live", incident="INC-13")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        plan = await app.session().plan("rotate", [INTEG])
        app.post_message(RunConfirmed(plan, "a person left", False))
        await wait_screen(pilot, "PasteKeyModal")
        await pilot.press("enter")  # nothing pasted: asked again
        await wait_for(pilot, lambda: "Paste the new key" in screen_text(app), what="ask")
        await type_text(pilot, value)
        assert value not in screen_text(app)  # a password field
        await pilot.press("enter")
        await wait_screen(pilot, "RunScreen")
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
        assert app.screen.result.exit_code() == 0
        assert any("sha256:" in n for n in notices(app)), notices(app)
        assert not any(value in n or old in n for n in notices(app))
    keys = llm.anthropic.state["api_keys"]
    assert keys[ANTHROPIC_KEY]["status"] == "inactive" and keys[new_id]["status"] == "active"
    trail = (llm.root / "audit.db").read_bytes()
    assert value.encode() not in trail and old.encode() not in trail
    assert json.dumps(plan.body()).find(value) < 0
