"""80x24 over SSH: what decides is on screen, and nothing needs a sideways scroll.

Each test reads what the terminal really shows (``screen_text``: the compositor's output, one
line per terminal row, ``width`` characters each) and where the table's columns end. The plan,
run and report come from the real planner and executor on the fake backend, in a config where
everything goes wrong at once (``write_incident_config``): long names, an IRREVERSIBLE
destroy, a change that cannot be planned (FAILED), and a key its provider still accepts
(STILL LIVE).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from console.tui.app import make_app
from console.tui.layout import NARROW_BELOW, fit_widths, shorten, squeeze
from tests.tui.flow_helpers import text, wait_for, wait_screen
from tests.tui.screen_helpers import (
    LONG_FLAG,
    LONG_KEY,
    fits,
    line_with,
    screen_text,
    write_incident_config,
)
from tests.tui.test_snapshots_run import fixed_plan

NARROW = (80, 24)
IDS = ["support-assistant-prod", "claims-bot", "leaky-bot"]


async def _run(pilot: Any, app: Any) -> Any:
    """Apply the incident plan (irreversible consent given) and wait for its end."""
    app.open_run(await fixed_plan(app, "destroy-keys", IDS), "key pasted in a ticket", True)
    await wait_screen(pilot, "RunScreen")
    run = app.screen
    await wait_for(pilot, lambda: run.result is not None, what="run result")
    await pilot.pause()
    return run


async def test_plan_at_80x24_shows_irreversible_and_status_first(tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path), mode="live")
    async with app.run_test(size=NARROW) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_plan(await fixed_plan(app, "destroy-keys", IDS))
        await wait_screen(pilot, "PlanScreen")
        await pilot.pause()
        screen = screen_text(app)
        table = app.screen.query_one("#plan-table", DataTable)
        assert app.screen.has_class("-narrow")
        assert fits(app, table), [c.width for c in table.ordered_columns]
        # the deciding words, on the row of the target they decide about
        assert line_with(screen, "IRREVERSIBLE", "observed", "provider:leaky-key")
        assert line_with(screen, "IRREVERSIBLE", "ERROR", "down:claims-bot-key")
        assert line_with(screen, "reversible", "observed", "sim:support-assistant")
        # a long target is shortened in the middle: both ends stay readable
        long_row = line_with(screen, "reversible", "sim:support-assistant")
        assert "\u2026" in long_row and long_row.rstrip().endswith("customer-tenants")
        assert LONG_FLAG not in screen  # too long for the table...

        # ...the pane under it shows the highlighted row in full, before -> after included
        await pilot.press("down")
        await pilot.pause()
        pane = text(app, "#plan-detail-text")
        assert f"sim:{LONG_FLAG}" in pane and "switch: on -> off" in pane
        assert "reversible" in pane and "flag.disable" in pane
        await pilot.press("down", "down")
        await pilot.pause()
        pane = text(app, "#plan-detail-text")
        assert f"sim:{LONG_KEY}" in pane and "IRREVERSIBLE: cannot be undone" in pane
        assert "switch: on -> off" in screen_text(app)


async def test_plan_at_120x40_keeps_before_after_in_the_table(tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path), mode="live")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_plan(await fixed_plan(app, "destroy-keys", IDS))
        await wait_screen(pilot, "PlanScreen")
        await pilot.pause()
        assert not app.screen.has_class("-narrow")
        table = app.screen.query_one("#plan-table", DataTable)
        assert fits(app, table)
        assert [str(c.label) for c in table.ordered_columns] == [
            "undo", "status", "target", "before -> after"]
        assert line_with(screen_text(app), "IRREVERSIBLE", "provider:leaky-key",
                         "switch: on -> off")
        # shrinking the terminal switches to the narrow columns, and back
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: app.screen.has_class("-narrow"), what="narrow layout")
        assert [str(c.label) for c in table.ordered_columns] == [
            "undo", "status", "action / target"]
        assert fits(app, table)


async def test_run_at_80x24_shows_outcome_and_verify_first(tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path), mode="live")
    async with app.run_test(size=NARROW) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        run = await _run(pilot, app)
        table = run.query_one("#run-table", DataTable)
        assert fits(app, table)
        screen = screen_text(app)
        assert line_with(screen, "FAILED", "down:claims-bot-key")
        assert line_with(screen, "done (applied)", "dead", "provider:leaky-key")
        assert "NOT VERIFIED — key STILL LIVE" in screen
        # the end per integration, in words, what is still live first
        assert "exit code 4" in screen
        assert line_with(screen, "claims-bot:", "STILL LIVE")
        # the failed operation in full in the pane: its error
        await pilot.press("down", "down")
        await pilot.pause()
        pane = text(app, "#run-detail-text")
        assert "FAILED" in pane and "could not be planned: fake: 503" in pane
        assert "could not be planned" in screen_text(app)
        # the proof row says STILL LIVE in the verify column, before the target
        table.move_cursor(row=table.row_count - 1)
        await pilot.pause()
        assert line_with(screen_text(app), "STILL LIVE", "leaky-bot/proof")


async def test_report_and_audit_at_80x24_one_event_a_line(tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path), mode="live")
    async with app.run_test(size=NARROW) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await _run(pilot, app)
        app.action_audit()
        await wait_screen(pilot, "AuditScreen")
        await wait_for(pilot, lambda: app.screen.ready and bool(app.screen.runs),
                       what="trail listed")
        audit = app.screen
        for selector in ("#audit-runs", "#audit-events"):
            assert fits(app, audit.query_one(selector, DataTable)), selector
        screen = screen_text(app)
        assert line_with(screen, "r-20250101-000000-snap", "finished, 1 failed")
        assert line_with(screen, "failed", "claims-bot", "down:claims-bot-key")

        await pilot.press("o")
        await wait_screen(pilot, "ReportScreen")
        await pilot.pause()
        report = app.screen
        timeline = report.query_one("#report-timeline", DataTable)
        assert fits(app, timeline)
        assert [str(c.label) for c in timeline.ordered_columns] == ["time", "outcome", "what"]
        screen = screen_text(app)
        assert "needs attention: 1 STILL LIVE, 1 failed, 3 IRREVERSIBLE applied" in screen
        assert line_with(screen, "failed", "claims-bot credential.destroy")
        assert line_with(screen, "applied", "leaky-bot credential.destroy provider:leaky-key")
        rows = [[str(c) for c in timeline.get_row_at(i)] for i in range(timeline.row_count)]
        words = {r[1] for r in rows}
        assert {"applied", "failed", "verified", "STILL LIVE"} <= words
        # the failed event in full in the pane
        failed = next(i for i, r in enumerate(rows) if r[1] == "failed")
        timeline.move_cursor(row=failed)
        await pilot.pause()
        pane = text(app, "#report-detail-text")
        assert "could not be planned: fake: 503 Service Unavailable" in pane
        assert "target: down:claims-bot-key" in pane
        # f: the whole report, then back to the timeline
        await pilot.press("f")
        await pilot.pause()
        assert report.has_class("-full") and "Postmortem timeline" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert not report.has_class("-full") and app.screen is report


async def test_help_at_80x24_wraps_instead_of_scrolling_sideways(tmp_path: Path) -> None:
    app = make_app(write_incident_config(tmp_path))
    async with app.run_test(size=NARROW) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("question_mark")
        await wait_screen(pilot, "HelpScreen")
        await pilot.pause()
        table = app.screen.query_one("#help-table", DataTable)
        assert fits(app, table)
        screen = screen_text(app)
        assert line_with(screen, "Everywhere", "?", "Help", "Every key")
        # a description longer than its column wraps onto the next line, in full
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        details = next(r[3] for r in rows if r[1] == "A" and r[2] == "Audit")
        assert len(details) > table.ordered_columns[3].width  # too long for one line
        lines = screen.splitlines()
        first = next(i for i, line in enumerate(lines) if " ".join(details.split()[:3]) in line)
        assert details.split()[-1] in lines[first + 1]  # its end is on the next line
        # every screen's keys are listed, the report's included
        assert {"Everywhere", "Plan", "Run", "Audit", "Report"} <= {r[0] for r in rows}


def test_fitting_helpers_keep_what_decides() -> None:
    assert NARROW_BELOW == 100
    # the deciding columns keep their width; the long one gives way
    assert fit_widths(40, [(12, 12), (8, 8), (60, 10)]) == [12, 8, 14]
    assert fit_widths(20, [(12, 12), (8, 8), (60, 10)]) == [12, 8, 10]  # minimums win
    assert shorten("vault:secret/ai/support-bot/openai", 20) == "vault:sec…bot/openai"
    assert squeeze(["support-assistant-prod", "flag.disable", "sim:" + LONG_FLAG], 50) \
        .split()[1] == "flag.disable"
