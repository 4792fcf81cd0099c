"""Pilot tests of the inventory, detail, mode switch, help and palette.

Every app comes from the production factory ``make_app(config_path)`` on real parts: the fake
backend with a state file, and (for live states) the OpenBao dev server.
"""

from __future__ import annotations

import json
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
from tests.tui.flow_helpers import wait_for, write_fake_config

ALL = ["support-bot", "claims-summariser", "code-review-agent", "contract-drafter",
       "search-embeddings"]


async def settle(pilot: Pilot[int]) -> None:
    """Let the background work (state refresh, audit read) finish and the screen redraw."""
    app = pilot.app
    assert isinstance(app, KillswitchApp)
    await pilot.pause()
    await wait_for(pilot, lambda: not app.observed.busy, what="states observed")
    await app.workers.wait_for_complete()
    await pilot.pause()


def inventory(app: KillswitchApp) -> InventoryScreen:
    screen = app.screen
    assert isinstance(screen, InventoryScreen), type(screen).__name__
    return screen


def rows(app: KillswitchApp) -> list[str]:
    return list(inventory(app).table.row_ids)


def cell(app: KillswitchApp, row: str, column: str) -> str:
    return inventory(app).table.get_cell(row, column)


def status(app: KillswitchApp) -> str:
    return str(app.screen.query_one("#inventory-status", Label).content)


def points(app: KillswitchApp) -> str:
    return str(app.screen.query_one("#detail-points", Static).render())


async def type_filter(pilot: Pilot[int], text: str) -> None:
    await pilot.press("slash")
    box = pilot.app.screen.query_one("#inventory-filter", Input)
    assert box.has_focus
    box.value = ""
    await pilot.press(*["space" if c == " " else c for c in text])
    await pilot.pause()


def set_switch(config: Path, key: str, position: str) -> None:
    """Flip one switch of the fake backend's state file (what a run, or someone else, did)."""
    state = config.parent / "fake-state.json"
    data = json.loads(state.read_text())
    data["switches"][key] = position
    state.write_text(json.dumps(data))


async def test_states_are_observed_in_the_background(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert rows(app) == ALL
        assert [cell(app, r, "keys") for r in ALL] == ["live", "off", "live", "partial", "-"]
        assert [cell(app, r, "flags") for r in ALL] == ["live", "off", "off", "-", "-"]
        assert cell(app, "search-embeddings", "batches") == "live"
        assert cell(app, "search-embeddings", "egress") == "live"
        shown = {cell(app, r, c) for r in ALL for c in ("keys", "flags", "batches", "egress")}
        assert shown <= {"live", "off", "partial", "unknown", "-"}  # never ok/unk/part
        assert "5 of 5" in status(app) and "states: observed" in status(app)


async def test_partial_says_how_many_are_off(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        assert cell(app, "contract-drafter", "keys") == "partial 1/2"  # wide: room for n/m
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert cell(app, "contract-drafter", "keys") == "partial"  # narrow: the word only...
        await pilot.press("down", "down", "down")
        table = inventory(app).table
        assert table.cursor_id == "contract-drafter"
        assert "keys partial 1/2 off" in table.detail_text  # ...and n/m under the table


async def test_a_failing_backend_shows_unknown_with_why_never_live(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert cell(app, "support-bot", "keys") == "live"
        seen: list[str] = []
        app.observed.changed.subscribe(
            app.screen, lambda _e: seen.append(cell(app, "support-bot", "keys")),
            immediate=True)
        app.runtime.adapter("sim").fail_rate = 1.0  # type: ignore[attr-defined]
        await pilot.press("R")
        await settle(pilot)
        assert seen and "live" not in seen[1:], seen
        assert cell(app, "support-bot", "keys") == "unknown"
        assert cell(app, "claims-summariser", "keys") == "unknown"  # was off: not any more
        line = inventory(app).table.detail_text
        assert line.startswith("support-bot: keys unknown (") and "503" in line, line
        assert "states: observed, 5 unknown" in status(app)


async def test_an_engine_failure_is_unknown_with_the_message(
        tui_config: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import console.engine.observe

    async def broken(*_a: object, **_kw: object) -> None:
        raise RuntimeError("planner exploded")

    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        monkeypatch.setattr(console.engine.observe, "observe_states", broken)
        await pilot.press("R")
        await settle(pilot)
        assert [cell(app, r, "keys") for r in ALL] == ["unknown"] * 4 + ["-"]
        state = app.observed.state("support-bot", "keys")
        assert state is not None and "planner exploded" in state.detail


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


async def test_keys_typed_right_after_slash_go_into_the_filter(tui_config: Path) -> None:
    """Type-ahead over SSH: ``/`` and the text arrive in one burst, before ``/`` is handled."""
    from textual import events

    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ["slash", *"env=staging"]:  # all queued at once, as a terminal sends them
            char = "/" if key == "slash" else "=" if key == "=" else key
            event = events.Key("equals_sign" if key == "=" else key, char)
            event.set_sender(app)
            app._driver.send_message(event)  # type: ignore[union-attr]
        box = app.screen.query_one("#inventory-filter", Input)
        await wait_for(pilot, lambda: box.value == "env=staging", what=f"filter ({box.value!r})")
        await pilot.pause()
        assert rows(app) == ["code-review-agent", "contract-drafter"]
        assert app.marked == frozenset() and "sort" not in status(app)  # no key hit the table
        await pilot.press("slash", "x")  # in the filter, / is typed
        assert box.value == "env=staging/x"


async def test_erasing_the_filter_after_scrolling_widens_without_a_crash(
        tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 300))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("end")
        assert inventory(app).table.cursor_id == "app-299"
        await type_filter(pilot, "app-2")
        assert len(rows(app)) == 111
        await pilot.press("backspace", "backspace", "backspace")
        await pilot.pause()
        assert len(rows(app)) == 300
        assert inventory(app).table.cursor_id == "app-299"  # the cursor kept its row
        await pilot.press("escape", "home")
        assert inventory(app).table.cursor_id == "app-0"


async def test_an_empty_filter_result_keeps_focus_working(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = inventory(app)
        await type_filter(pilot, "no-such-thing")
        assert rows(app) == [] and "0 of 5" in status(app)
        await pilot.press("escape")  # leaves the filter for the (empty) table
        assert screen.table.has_focus
        await pilot.press("space", "enter", "r", "down")  # nothing to act on: nothing happens
        assert app.screen is screen and app.marked == frozenset()
        await pilot.press("slash")
        assert app.screen.query_one("#inventory-filter", Input).has_focus
        await pilot.press("escape", "escape")  # back to the table, then clear the filter
        assert rows(app) == ALL and screen.table.has_focus
        await pilot.press("down", "space")
        assert app.marked == {"claims-summariser"}


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
        assert rows(app)[:2] == ["code-review-agent", "support-bot"]  # live before partial
        assert rows(app)[2:4] == ["contract-drafter", "claims-summariser"]  # partial, off
        assert rows(app)[-1] == "search-embeddings"  # none listed last
        header = [c.label for c in inventory(app).table.columns]
        assert "keys \u25b2" in header


async def test_the_mouse_sorts_highlights_and_opens(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = inventory(app).table
        x = 0
        for column in table.columns:
            if column.key == "env":
                break
            x += column.width + 2
        await pilot.click("#inventory-table", offset=(x + 2, 0))  # the env header
        await pilot.pause()
        assert rows(app)[0] == "search-embeddings" and "sort env" in status(app)
        assert table.cursor_id == "support-bot" == rows(app)[2]  # the cursor kept its row
        fourth = rows(app)[3]
        await pilot.click("#inventory-table", offset=(5, 4))  # the fourth row: highlight
        await pilot.pause()
        assert table.cursor_id == fourth and isinstance(app.screen, InventoryScreen)
        await pilot.click("#inventory-table", offset=(5, 4))  # again: open it
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        assert app.screen.integration_id == fourth


async def test_enter_opens_detail_with_observed_states(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.integration_id == "contract-drafter"
        shown = points(app)
        assert "credentials partial  1/2 off" in shown, shown
        assert "- live  sim  key=drafter-key-1" in shown
        assert "- off  sim  key=drafter-key-2" in shown
        assert "observed just now" in shown
        about = str(app.screen.query_one("#detail-about", Static).content)
        assert "On-call team-legal" in about and "slack:#contract-drafter" in about
        audit = str(app.screen.query_one("#detail-audit", Static).content)
        assert "no events" in audit
        await pilot.press("m")
        assert app.marked == {"contract-drafter"}
        await pilot.press("escape")
        assert isinstance(app.screen, InventoryScreen)
        assert cell(app, "contract-drafter", "mark") == MARK


async def test_the_inventory_shows_what_the_detail_observed(tui_config: Path) -> None:
    """The old bug: the inventory kept a stale state after the detail observed again."""
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert cell(app, "support-bot", "keys") == "live"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        set_switch(tui_config, "support-key", "off")  # someone revoked it meanwhile
        await pilot.press("R")
        await settle(pilot)
        assert "credentials off" in points(app)
        await pilot.press("escape")
        assert isinstance(app.screen, InventoryScreen)
        assert cell(app, "support-bot", "keys") == "off"  # no refresh of its own needed
        assert cell(app, "support-bot", "flags") == "live"


async def test_a_refresh_from_elsewhere_updates_the_inventory(tui_config: Path) -> None:
    """What the run screen does when a run ends: ``app.observed.refresh(ids)``."""
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        set_switch(tui_config, "support-flag", "off")
        set_switch(tui_config, "claims-key", "on")
        app.observed.refresh(["support-bot", "no-such-id"])
        await settle(pilot)
        assert cell(app, "support-bot", "flags") == "off"
        assert cell(app, "claims-summariser", "keys") == "off"  # not asked: not observed


async def test_r_opens_the_runbook_picker_for_marked_rows(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "space", "down", "space", "r")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunbookScreen",
                       what="runbook picker")
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
        await pilot.pause()
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
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
        table = app.screen.query_one("#help-table", DataTable)
        listed = {(str(table.get_row_at(r)[1]), str(table.get_row_at(r)[2]))
                  for r in range(table.row_count)}
        for screen_cls in (InventoryScreen, DetailScreen):
            for binding in screen_cls.BINDINGS:
                assert (app.get_key_display(binding), binding.description) in listed  # type: ignore[union-attr]
        groups = {str(table.get_row_at(r)[0]) for r in range(table.row_count)}
        assert {"Inventory", "Detail"} <= groups
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen),
                       what="back on the inventory")


async def test_command_palette_group_verb(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"inventory: mark all")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.marked == set(ALL), what="all marked")


async def test_narrow_layout_keeps_the_main_columns(tui_config: Path) -> None:
    app = make_app(tui_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = inventory(app)
        assert screen.has_class("-narrow")
        columns = [c.key for c in screen.table.columns]
        assert columns == ["mark", "id", "env", "status", "keys", "flags", "batches", "egress"]
        assert screen.table.virtual_size.width <= 79  # one column left for the scrollbar
        assert cell(app, "claims-summariser", "keys") == "off"
        assert all(len(cell(app, r, "id")) == len(r) for r in ALL)  # ids are not cut
        await pilot.resize_terminal(200, 40)
        await pilot.pause()
        assert not screen.has_class("-narrow")
        assert "name" in [c.key for c in screen.table.columns]


async def test_ten_thousand_rows_scroll_to_the_end(tmp_path: Path) -> None:
    """Every row is reachable although only those on screen are drawn."""
    app = make_app(write_fake_config(tmp_path, 2000))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen)
                       and app.screen.table.row_count == 2000, what="inventory")
        table = inventory(app).table
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_id == "app-1999"
        assert table.rows_on_screen[-1] == "app-1999"
        assert table.detail_text.startswith("app-1999: ")
        await pilot.press("pageup")
        assert table.cursor_row < 1999 and table.cursor_id in table.rows_on_screen
        await settle(pilot)
        assert cell(app, "app-1999", "keys") == "live"


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
            assert cell(app, "support-bot", "keys") == "live"
            assert cell(app, "legacy-chat", "keys") == "unknown"
            client.secrets.kv.v2.delete_latest_version_of_secret(
                path="ai/support-bot/openai", mount_point=mount)
            await pilot.press("R")
            await settle(pilot)
            assert cell(app, "support-bot", "keys") == "off"
            await pilot.press("down")
            state = app.observed.state("legacy-chat", "keys")
            assert state is not None and "127.0.0.1" in state.detail, state
            assert f"keys unknown ({state.detail}" in inventory(app).table.detail_text
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, DetailScreen)
            assert f"credentials unknown  ({state.detail})" in points(app)
    finally:
        client.sys.disable_secrets_engine(mount)
