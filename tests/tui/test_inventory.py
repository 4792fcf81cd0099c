"""Pilot tests of the inventory, detail, mode switch, help and palette.

Every app comes from the production factory ``make_app(config_path)`` on real parts: the fake
backend with a state file, and (for live states) the OpenBao dev server.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import hvac
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Static

from console.tui.app import KillswitchApp, make_app
from console.tui.screens.detail import DetailScreen
from console.tui.screens.inventory import MARK, InventoryScreen
from console.tui.widgets.banner import ModeBanner
from tests.servers import BaoServer
from tests.tui.conftest import dead_port

ALL = ["support-bot", "claims-summariser", "code-review-agent", "contract-drafter",
       "search-embeddings"]


async def settle(pilot: Pilot[int]) -> None:
    """Let the background workers (state refresh, audit read) finish and the screen redraw."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def inventory(app: KillswitchApp) -> InventoryScreen:
    screen = app.screen
    assert isinstance(screen, InventoryScreen), type(screen).__name__
    return screen


def rows(app: KillswitchApp) -> list[str]:
    table = inventory(app).table
    return [str(table.coordinate_to_cell_key((r, 0)).row_key.value)
            for r in range(table.row_count)]


def cell(app: KillswitchApp, row: str, column: str) -> str:
    return str(inventory(app).table.get_cell(row, column))


async def type_filter(pilot: Pilot[int], text: str) -> None:
    await pilot.press("slash")
    box = pilot.app.screen.query_one("#inventory-filter", Input)
    assert box.has_focus
    box.value = ""
    await pilot.press(*["space" if c == " " else c for c in text])
    await pilot.pause()


async def test_states_are_observed_in_the_background(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert rows(app) == ALL
        assert [cell(app, r, "keys") for r in ALL] == ["ok", "disabled", "ok", "partial", "-"]
        assert [cell(app, r, "flags") for r in ALL] == ["ok", "disabled", "disabled", "-", "-"]
        assert cell(app, "search-embeddings", "batches") == "ok"
        assert cell(app, "search-embeddings", "egress") == "ok"
        status = str(app.screen.query_one("#inventory-status", Label).content)
        assert "5 of 5" in status and "states: observed" in status


async def test_filter_as_you_type_selectors_and_free_text(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_filter(pilot, "env=prod")
        assert rows(app) == ["support-bot", "claims-summariser"]
        await type_filter(pilot, "claims")
        assert rows(app) == ["claims-summariser"]
        await type_filter(pilot, "env=staging provider=openai draft")
        assert rows(app) == ["contract-drafter"]
        # typing goes through incomplete selectors without crashing
        await type_filter(pilot, "status=susp")
        message = app.screen.query_one("#inventory-message", Label)
        assert message.has_class("-shown") and "status cannot be susp" in str(message.content)
        await pilot.press("e", "n", "d", "e", "d")
        assert rows(app) == ["contract-drafter"]
        assert not message.has_class("-shown")
        await type_filter(pilot, "colour=red team")
        assert "unknown selector key 'colour'" in str(message.content)
        assert rows(app) == ALL  # the other tokens still filter ("team" matches every owner)
        await pilot.press("escape")
        assert inventory(app).table.has_focus
        await pilot.press("escape")  # on the table: clears the filter
        assert app.screen.query_one("#inventory-filter", Input).value == ""
        assert rows(app) == ALL


async def test_mark_mark_all_and_banner(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        banner = app.screen.query_one(ModeBanner)
        assert "nothing marked" in banner.text
        await pilot.press("space")
        assert app.marked == {"support-bot"}
        assert cell(app, "support-bot", "mark") == MARK
        assert "PROD 1" in banner.text
        await pilot.press("space")
        assert app.marked == frozenset() and cell(app, "support-bot", "mark") == ""
        await type_filter(pilot, "env=staging")
        await pilot.press("enter")  # leaves the filter for the table
        await pilot.press("a")
        assert app.marked == {"code-review-agent", "contract-drafter"}
        assert "2 marked: staging 2" in banner.text and "PROD" not in banner.text
        await pilot.press("a")  # all visible were marked: unmark them
        assert app.marked == frozenset()
        await pilot.press("a", "c")
        assert app.marked == frozenset()


async def test_sort_cycles_and_reverses(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        assert rows(app) == sorted(ALL)
        await pilot.press("S")
        assert rows(app) == sorted(ALL, reverse=True)
        await pilot.press("s")  # next column: env (dev, prod, staging)
        assert rows(app)[0] == "search-embeddings"
        inventory(app).sort_by("keys")
        assert rows(app)[:2] == ["code-review-agent", "support-bot"]  # ok before partial
        assert rows(app)[-1] == "search-embeddings"  # none listed last


async def test_enter_opens_detail_with_observed_states(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.integration_id == "contract-drafter"
        points = str(app.screen.query_one("#detail-points", Static).content)
        assert "partial" in points and "1/2 disabled" in points
        assert "key=drafter-key-1" in points and "key=drafter-key-2" in points
        about = str(app.screen.query_one("#detail-about", Static).content)
        assert "On-call team-legal" in about and "slack:#contract-drafter" in about
        audit = str(app.screen.query_one("#detail-audit", Static).content)
        assert "no events" in audit
        await pilot.press("m")
        assert app.marked == {"contract-drafter"}
        await pilot.press("escape")
        assert isinstance(app.screen, InventoryScreen)
        assert cell(app, "contract-drafter", "mark") == MARK


async def test_r_opens_the_runbook_picker_for_marked_rows(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "space", "down", "space", "r")
        await pilot.pause()
        assert type(app.screen).__name__ == "RunbookScreen"
        assert app.screen.integration_ids == ["claims-summariser", "code-review-agent"]


async def test_r_is_greyed_out_with_nothing_to_act_on(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = inventory(app)
        assert screen.check_action("runbooks", ()) is True
        await type_filter(pilot, "no-such-thing")
        assert rows(app) == []
        assert screen.check_action("runbooks", ()) is None
        assert screen.check_action("mark", ()) is None
        await pilot.press("escape", "r")
        assert app.screen is screen


async def test_switching_to_live_needs_the_typed_word(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        banner = app.screen.query_one(ModeBanner)
        assert banner.has_class("-dry-run") and "DRY-RUN" in banner.text
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmModeModal"
        await pilot.press("l", "i", "v", "e", "enter")  # wrong case: refused
        await pilot.pause()
        assert app.mode == "dry-run"
        error = app.screen.query_one("#confirm-mode-error", Label)
        assert "still DRY-RUN" in str(error.content)
        await pilot.press("escape")
        assert app.mode == "dry-run" and isinstance(app.screen, InventoryScreen)
        await pilot.press("ctrl+l")
        await pilot.press("L", "I", "V", "E", "enter")
        await pilot.pause()
        assert app.mode == "live"
        banner = app.screen.query_one(ModeBanner)
        assert banner.has_class("-live") and "LIVE" in banner.text
        assert app.has_class("-live")
        await pilot.press("ctrl+l")  # leaving LIVE needs the typed word too
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmModeModal" and app.mode == "live"
        await pilot.press(*"DRY-RUN", "enter")
        await pilot.pause()
        assert app.mode == "dry-run"


async def test_help_lists_every_key_of_every_screen(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        table = app.screen.query_one("#help-table", DataTable)
        listed = {(str(table.get_row_at(r)[1]), str(table.get_row_at(r)[2]))
                  for r in range(table.row_count)}
        for screen_cls in (InventoryScreen, DetailScreen):
            for binding in screen_cls.BINDINGS:
                assert (app.get_key_display(binding), binding.description) in listed  # type: ignore[union-attr]
        assert ("^l", "Mode") in listed and ("^p", "Commands") in listed
        groups = {str(table.get_row_at(r)[0]) for r in range(table.row_count)}
        assert {"Everywhere", "Inventory", "Detail"} <= groups
        await pilot.press("escape")
        assert isinstance(app.screen, InventoryScreen)


async def test_command_palette_group_verb(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"inventory: mark all")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.marked == set(ALL)


async def test_narrow_layout_keeps_the_main_columns(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = inventory(app)
        assert screen.has_class("-narrow")
        columns = [str(c.value) for c in screen.table.columns]
        assert columns == ["mark", "id", "env", "status", "keys", "flags", "batches", "egress"]
        assert screen.table.virtual_size.width <= 80
        assert cell(app, "claims-summariser", "keys") == "off"
        await pilot.resize_terminal(200, 40)
        await pilot.pause()
        assert not screen.has_class("-narrow")
        assert "name" in [str(c.value) for c in screen.table.columns]


# ---------------------------------------------------------------- real OpenBao

BAO_CONFIG = """
[settings]
audit_db = "audit.db"
operator = "ic-tester"

[backends.vault]
type = "vault"
url = "{url}"
token_env = "KS_TUI_VAULT_TOKEN"

[backends.down]
type = "vault"
url = "http://127.0.0.1:{dead}"
token_env = "KS_TUI_VAULT_TOKEN"
timeout = 2

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "vault"
mount = "{mount}"
path = "ai/support-bot/openai"

[[integrations]]
id = "legacy-chat"
name = "Legacy chat"
owner = "web"
environment = "dev"
provider = "openai"

[[integrations.credentials]]
backend = "down"
mount = "{mount}"
path = "ai/legacy-chat/openai"
"""


async def test_live_states_on_openbao_and_a_dead_backend(
        bao: BaoServer, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client = hvac.Client(url=bao.url, token=bao.token)
    mount = "tui-" + secrets.token_hex(4)
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    try:
        client.secrets.kv.v2.create_or_update_secret(
            path="ai/support-bot/openai", secret={"api_key": "sk-test"}, mount_point=mount)
        monkeypatch.setenv("KS_TUI_VAULT_TOKEN", bao.token)
        config = tmp_path / "config.toml"
        config.write_text(BAO_CONFIG.format(url=bao.url, mount=mount, dead=dead_port()))
        app = make_app(config)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert cell(app, "support-bot", "keys") == "ok"
            assert cell(app, "legacy-chat", "keys") == "unknown"
            client.secrets.kv.v2.delete_latest_version_of_secret(
                path="ai/support-bot/openai", mount_point=mount)
            await pilot.press("R")
            await settle(pilot)
            assert cell(app, "support-bot", "keys") == "disabled"
            await pilot.press("down", "enter")
            await settle(pilot)
            assert isinstance(app.screen, DetailScreen)
            points = str(app.screen.query_one("#detail-points", Static).content)
            assert "unknown" in points
            message = app.states["legacy-chat"]["keys"].detail
            assert message and "127.0.0.1" in message, message
            assert message.replace("[", "\\[") in points or message in points
    finally:
        client.sys.disable_secrets_engine(mount)
