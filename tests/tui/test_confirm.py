"""The run confirmation (issue 10): its own keys in its footer, irreversible consent in words,
and an opening that does no engine, file or audit work.

Built through the production factory on the fake backend; waits on states, never sleeps.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from console.engine.model import plan_counts
from console.tui.app import make_app
from console.tui.widgets.confirm_run import consent_text
from tests.tui.flow_helpers import (
    open_plan,
    switches,
    text,
    type_text,
    wait_for,
    wait_screen,
    write_fake_config,
)

SIZE = (120, 40)


def footer_keys(app: Any) -> dict[str, str]:
    """Key shown -> description, as the confirm dialog's own footer paints them."""
    footer = app.screen.query_one(Footer)
    return {str(k.key_display or k.key): str(k.description) for k in footer.query(FooterKey)}


async def open_confirm(pilot: Any, runbook: str, ids: list[str]) -> Any:
    """From the inventory: plan ``runbook`` on ``ids``, Apply, and return the dialog."""
    app = pilot.app
    await wait_screen(pilot, "InventoryScreen")
    await open_plan(pilot, runbook, ids)
    await pilot.press("a")
    await wait_screen(pilot, "ConfirmRunModal")
    await wait_for(pilot, lambda: bool(app.screen.query(FooterKey)), what="footer keys")
    return app.screen


async def test_the_dialog_lists_its_own_keys_and_says_consent_in_words(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_confirm(pilot, "destroy-keys", ["app-0"])
        keys = footer_keys(app)
        assert keys.get("esc") == "Cancel", keys
        assert keys.get("^r") == "Run", keys
        assert keys.get("^t") == "Consent", keys
        assert keys.get("tab") == "Next field", keys
        assert "q" not in keys and "?" not in keys  # the app's keys do not act in here

        consent = text(app, "#confirm-consent")
        assert consent == ("IRREVERSIBLE changes: 1 — consent: NOT GIVEN "
                           "(press ctrl+t, or tick the box, to consent)")
        await type_text(pilot, "app-0")
        await pilot.press("tab")
        await type_text(pilot, "key sold on a forum")
        await pilot.press("enter")
        assert type(app.screen).__name__ == "ConfirmRunModal"
        error = text(app, "#confirm-error")
        assert "consent is NOT GIVEN" in error and "tick the box" in error

        await pilot.press("ctrl+t")  # consent by key, from the reason field
        assert text(app, "#confirm-consent").endswith("consent: GIVEN (ctrl+t withdraws it)")
        assert dialog.consent and text(app, "#confirm-error") == ""
        await pilot.press("ctrl+t")
        assert "consent: NOT GIVEN" in text(app, "#confirm-consent")
        await pilot.press("ctrl+t")
        await pilot.press("ctrl+r")
        await wait_screen(pilot, "RunScreen")
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
    assert switches() == {"app-0-flag": "off", "app-0-key": "off"}


async def test_a_plan_that_can_be_undone_needs_no_consent_and_says_so(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 2), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await open_confirm(pilot, "kill-switch", ["app-0", "app-1"])
        assert text(app, "#confirm-consent").startswith("IRREVERSIBLE changes: none")
        assert not app.screen.query("#confirm-irreversible")
        keys = footer_keys(app)
        assert "^t" not in keys and keys.get("^r") == "Run", keys
        assert text(app, "#confirm-incident") == "Incident: INC-7"
        await pilot.press("ctrl+t")  # nothing to consent to: nothing happens
        assert text(app, "#confirm-consent").startswith("IRREVERSIBLE changes: none")
        await pilot.press("escape")
        await wait_screen(pilot, "PlanScreen")
    assert switches() == {}


async def test_opening_the_dialog_reads_no_trail_and_calls_no_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes a dialog slow to open is I/O: opening this one does none (the plan is in
    memory; the blast-radius guard is arithmetic). Counted while ``a`` is handled, on the
    thread that draws the screen: the team view's watcher may open the trail in its own
    thread at any moment (the first time it sees one), which blocks nothing."""
    from adapters.fake import FakeAdapter
    from console.audit import TrailBase

    app = make_app(write_fake_config(tmp_path, 2), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await open_plan(pilot, "kill-switch", ["app-0", "app-1"])
        await app.workers.wait_for_complete()
        opened: list[object] = []
        real_setup = TrailBase._setup  # what opening either store's trail starts with

        ui_thread = threading.get_ident()

        def counting_setup(self: TrailBase, *args: Any, **kw: Any) -> None:
            if threading.get_ident() == ui_thread:
                opened.append(args)
            real_setup(self, *args, **kw)

        monkeypatch.setattr(TrailBase, "_setup", counting_setup)
        calls = FakeAdapter.total_calls
        await pilot.press("a")
        await wait_screen(pilot, "ConfirmRunModal")
        await pilot.pause()
        assert opened == [] and FakeAdapter.total_calls == calls
        assert "2 change(s)" not in text(app, "#confirm-summary")  # 4 changes on 2 targets
        counts = plan_counts(app.screen.plan)
        assert f"{counts['changes']} change(s) on 2 integration(s)" in text(
            app, "#confirm-summary")


def test_consent_words() -> None:
    assert consent_text(0, False).startswith("IRREVERSIBLE changes: none")
    assert "NOT GIVEN" in consent_text(3, False) and "3" in consent_text(3, False)
    assert "consent: GIVEN" in consent_text(3, True)
