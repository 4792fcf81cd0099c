"""Reading what a terminal of a given size really shows, for the 80x24 tests.

``screen_text`` renders the active screen exactly as a snapshot does (the compositor's full
update), as plain text, one line per terminal row: a word in it is on screen, within the
terminal's width. ``fits`` checks that a table needs no sideways scroll.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.widgets import DataTable

from adapters.fake import FakeAdapter
from tests.tui.flow_helpers import DESTROY

LONG_FLAG = "support-assistant-prod-rollout-flag-for-the-eu-customer-tenants"
LONG_KEY = "support-assistant-prod-openai-key-for-the-eu-customer-tenants"


def screen_text(app: Any) -> str:
    """The active screen as plain text: ``app.size.height`` lines of ``app.size.width``."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True))
    return console.export_text()


def line_with(text: str, *words: str) -> str:
    """The first screen line holding every one of ``words`` (``""`` when none does)."""
    return next((line for line in text.splitlines() if all(w in line for w in words)), "")


def fits(app: Any, table: DataTable[Any]) -> bool:
    """True when every column of ``table`` is inside the terminal, without a sideways scroll."""
    columns = sum(c.get_render_width(table) for c in table.ordered_columns)
    return (table.max_scroll_x == 0 and table.region.right <= app.size.width
            and columns <= table.scrollable_content_region.width)


def write_incident_config(root: Path, probe: str = "live") -> Path:
    """Three integrations whose ``destroy-keys`` run goes wrong in every way at once.

    * ``support-assistant-prod``: long flag and key names on the fake backend ``sim``; both
      are turned off, the key destroyed (IRREVERSIBLE).
    * ``claims-bot``: its key is on backend ``down`` (every call answers 503): the change
      cannot be planned and the run reports it FAILED.
    * ``leaky-bot``: its key is destroyed at backend ``provider`` and in the store copy, but
      the provider still accepts it (``probe = "live"``): proof of death says STILL LIVE.
      With ``probe = "unknown"`` the provider cannot be asked: the key is not checked.
    """
    FakeAdapter.reset()
    rb = root / "runbooks"
    rb.mkdir(exist_ok=True)
    (rb / "destroy-keys.toml").write_text(DESTROY)
    lines = [
        "[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]', "max_targets = 10",
        'operator = "ic-on-call"', 'incident = "INC-7"', "max_attempts = 1", "proof_window = 0",
        "proof_interval = 0.01", "",
        "[backends.sim]", 'type = "fake"', "max_concurrency = 1", "",
        "[backends.down]", 'type = "fake"', "fail_rate = 1.0", "",
        "[backends.provider]", 'type = "fake"', f'probe = "{probe}"', "",
        "[backends.store]", 'type = "fake"', "reveal = true", "",
    ]
    for iid, points in (
            ("support-assistant-prod", [("flags", "sim", LONG_FLAG),
                                        ("credentials", "sim", LONG_KEY)]),
            ("claims-bot", [("credentials", "down", "claims-bot-key")]),
            ("leaky-bot", [("credentials", "provider", "leaky-key"),
                           ("credentials", "store", "leaky-key-copy")])):
        lines += ["[[integrations]]", f'id = "{iid}"', f'name = "{iid}"', 'owner = "team-ai"',
                  'environment = "prod"', 'status = "approved"', 'provider = "openai"',
                  'data_classes = ["customer"]']
        for kind, backend, key in points:
            lines += [f"[[integrations.{kind}]]", f'backend = "{backend}"', f'key = "{key}"']
        lines.append("")
    path = root / "config.toml"
    path.write_text("\n".join(lines))
    return path
