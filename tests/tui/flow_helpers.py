"""Shared pieces of the flow and snapshot tests: configs on real parts, and Pilot helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from adapters.fake import FakeAdapter

DESTROY = """
name = "destroy-keys"
description = "Flags off, then destroy every credential: this cannot be undone."
[[steps]]
id = "flags-off"
action = "flag.disable"
[[steps]]
id = "destroy"
action = "credential.destroy"
needs = ["flags-off"]
"""

VAULT_CONFIG = """
[settings]
audit_db = "audit.db"
max_targets = 5

[backends.vault]
type = "vault"
url = "{url}"
token_env = "KS_TEST_VAULT_TOKEN"

[backends.flags]
type = "flagfile"
path = "flags.json"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx-platform"
environment = "prod"
status = "approved"
provider = "openai"
data_classes = ["customer", "personal"]
kill_switch_owner = {{ name = "On-call CX", how = "pagerduty:cx" }}

[[integrations.credentials]]
backend = "vault"
mount = "{mount}"
path = "ai/support-bot/openai"

[[integrations.flags]]
backend = "flags"
flag = "support-bot-enabled"

[[integrations]]
id = "code-helper"
name = "Code helper"
owner = "dev-platform"
environment = "dev"
status = "approved"
provider = "anthropic"
data_classes = ["source-code"]

[[integrations.flags]]
backend = "flags"
flag = "code-helper-enabled"
"""


def write_fake_config(root: Path, n: int = 2, *, backend: str = "",
                      max_targets: int = 10) -> Path:
    """A config on the in-process fake backend (switches start ``on``), in ``root``.

    ``n`` integrations ``app-0``..; each has one flag and one key on backend ``sim``
    (``max_concurrency = 1`` so operations run one after another, in plan order).
    A ``destroy-keys`` runbook (irreversible) sits in ``root/runbooks``.
    """
    FakeAdapter.reset()
    rb = root / "runbooks"
    rb.mkdir(exist_ok=True)
    (rb / "destroy-keys.toml").write_text(DESTROY)
    lines = ["[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
             f"max_targets = {max_targets}", 'operator = "ic-on-call"', 'incident = "INC-7"',
             "", "[backends.sim]", 'type = "fake"', "max_concurrency = 1", backend, ""]
    for i in range(n):
        lines += ["[[integrations]]", f'id = "app-{i}"', f'name = "App {i}"',
                  'owner = "team-ai"', 'environment = "prod"', 'status = "approved"',
                  'provider = "openai"', 'data_classes = ["customer"]',
                  "[[integrations.flags]]", 'backend = "sim"', f'key = "app-{i}-flag"',
                  "[[integrations.credentials]]", 'backend = "sim"', f'key = "app-{i}-key"', ""]
    path = root / "config.toml"
    path.write_text("\n".join(lines))
    return path


def switches(backend: str = "sim") -> dict[str, str]:
    """The fake backend's switches."""
    return dict(FakeAdapter._memory.get(backend, {}).get("switches", {}))


def cells(app: Any, selector: str) -> list[list[str]]:
    """Every row of a DataTable on the active screen, as plain strings."""
    table = app.screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text(app: Any, selector: str) -> str:
    """The plain text a Static on the active screen shows."""
    return str(app.screen.query_one(selector, Static).render())


async def wait_for(pilot: Pilot[Any], check: Callable[[], bool], timeout: float = 30.0,
                   what: str = "condition") -> None:
    """Let the app run until ``check()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def wait_screen(pilot: Pilot[Any], name: str, timeout: float = 30.0) -> None:
    """Wait until the active screen is of class ``name``."""
    await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == name
                   and pilot.app.screen.is_mounted, timeout,
                   f"screen {name} (now {type(pilot.app.screen).__name__})")


async def pick_runbook(pilot: Pilot[Any], name: str) -> None:
    """On the runbook picker, highlight ``name`` by keys and press enter."""
    await wait_screen(pilot, "RunbookScreen")
    screen: Any = pilot.app.screen
    await wait_for(pilot, lambda: bool(screen.runbooks) and screen.ready,
                   what="runbooks listed")
    names = [rb.name for rb in screen.runbooks]
    assert name in names, names
    await pilot.press("home", *["down"] * names.index(name))
    assert screen.selected.name == name
    await pilot.press("enter")


async def open_plan(pilot: Pilot[Any], runbook: str, ids: list[str]) -> None:
    """From the inventory: the runbook picker on ``ids``, ``runbook`` picked, its plan shown."""
    pilot.app.open_runbooks(ids)
    await pick_runbook(pilot, runbook)
    await wait_screen(pilot, "PlanScreen")


async def type_text(pilot: Pilot[Any], value: str) -> None:
    """Type ``value`` key by key into the focused widget."""
    for ch in value:
        await pilot.press("space" if ch == " " else ch)
