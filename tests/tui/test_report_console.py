"""The report opened in the console speaks console, not CLI flags.

Hints and notes are written once, for the CLI (``use `killswitch restore RUN` ``, ``pass
--allow-irreversible``); adapters put some of them in plan notes and failure messages, which
the trail keeps. The console's report names its keys instead; the CLI's report is unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from console.audit import AuditLog
from console.report import build_report, console_words, render_console_report, render_report
from console.tui.app import make_app
from tests.tui.flow_helpers import text, wait_for, wait_screen, write_fake_config
from tests.tui.screen_helpers import screen_text
from tests.tui.test_snapshots_run import fixed_plan

CLI = re.compile(r"killswitch [a-z]|(?<![\w-])--[a-z]")

HINTS = [  # as the engine and the adapters write them
    "use `killswitch restore RUN_ID`",
    "to undo a disable exactly, use `killswitch restore RUN`",
    "undo the block with `killswitch restore RUN_ID`, which re-authorises the rules",
    "list runs with `killswitch audit show`",
    "see `killswitch report r-20250101-000000-snap`",
    "another host, `killswitch resume r-1` finishes it once its lease expires",
    "save a fresh plan with `killswitch plan ... --out FILE`",
    "plan again (`killswitch plan ... --out FILE`) and review the new plan",
    "check with `killswitch inventory list SELECTOR...`",
    "narrow the selectors, or pass --max-targets 3",
    "review the plan, then pass --allow-irreversible to consent",
    "consent with --allow-irreversible only if the key must die",
    "for the sandbox run `killswitch sandbox start`",
    "run `killswitch audit verify`",
]


@pytest.mark.parametrize("hint", HINTS)
def test_console_words_name_keys_not_commands(hint: str) -> None:
    words = console_words(hint)
    assert not CLI.search(words), words
    assert words != hint


def test_console_words_keep_what_is_not_a_command() -> None:
    plain = "r-20250101-000000-snap: sim:app-0-key switch is off (batch-jobs-2025--x kept)"
    assert console_words(plain) == plain
    assert "press u" in console_words("use `killswitch restore RUN_ID`")


RUN_ID = "r-20250101-000000-snap"


async def open_report(app: Any, pilot: Any) -> None:
    """The audit trail (A), then ``o`` on the highlighted run: its report."""
    app.action_audit()
    await wait_screen(pilot, "AuditScreen")
    await wait_for(pilot, lambda: app.screen.ready and bool(app.screen.runs),
                   what="trail listed")
    await pilot.press("o")
    await wait_screen(pilot, "ReportScreen")


async def test_the_console_report_names_keys_and_the_cli_report_is_unchanged(
        tmp_path: Path) -> None:
    """A run on the fake backend whose trail also holds what real adapters write: a plan
    note with a flag, a failure whose message names a command."""
    root, run_id = tmp_path, RUN_ID
    app = make_app(write_fake_config(root, 1), mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await app.session().apply(await fixed_plan(app, "kill-switch", ["app-0"]),
                                  reason="leak")
        log = AuditLog(root / "audit.db")
        log.append(run_id=run_id, incident="INC-7", mode="live", integration="app-0",
                   step="destroy", op_id="app-0/destroy/0", phase="plan",
                   action="credential.destroy", target="openai:key_abc", outcome="planned",
                   detail={"note": "OpenAI deletes a key for good: consent with "
                           "--allow-irreversible only if the key must die",
                           "reversible": False})
        log.append(run_id=run_id, incident="INC-7", mode="live", integration="app-0",
                   step="flags-off", op_id="app-0/flags-off/1", phase="apply",
                   action="flag.disable", target="ld:support-bot", outcome="failed",
                   detail={"message": "flag changed outside the console; to undo a disable "
                           "exactly, use `killswitch restore RUN`"})

        # the CLI's report keeps its words
        cli = render_report(log, run_id=run_id)
        assert "--allow-irreversible" in cli and "killswitch restore RUN" in cli

        # the console's: the same facts, the console's keys
        console = render_console_report(build_report(log, run_id=run_id))
        assert not CLI.search(console), CLI.findall(console)
        assert "restore (the audit trail (A): highlight the run, press u)" in console
        assert "the irreversible box in the confirmation" in console
        assert "## What next (keys in this console)" in console
        assert ("- Restore (undo this run): the audit trail (A), highlight the run, press u."
                in console)

        await open_report(app, pilot)
        report = app.screen
        assert not CLI.search(report.markdown)
        timeline = report.query_one("#report-timeline")
        failed = next(i for i in range(timeline.row_count)
                      if str(timeline.get_row_at(i)[1]) == "failed")
        timeline.move_cursor(row=failed)
        await pilot.pause()
        pane = text(app, "#report-detail-text")
        assert "use restore (the audit trail (A): highlight the run, press u)" in pane
        assert not CLI.search(screen_text(app))
        await pilot.press("f")
        await pilot.pause()
        assert not CLI.search(screen_text(app))


async def test_an_exercise_runs_report_says_so_on_screen(tmp_path: Path) -> None:
    """Opened from the audit trail, the report of a run that touched only the sandbox says
    EXERCISE above its summary (the console's own banner says the console's mode, which may
    be live by the time the report is read)."""
    app = make_app(write_fake_config(tmp_path, 1), mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        log = AuditLog(tmp_path / "audit.db")
        for outcome in ("started", "finished"):
            log.append(run_id="r-ex", incident="EX-drill", mode="exercise", phase="run",
                       action="kill-switch", outcome=outcome)
        log.close()
        await open_report(app, pilot)
        summary = text(app, "#report-summary")
        assert summary.startswith(" EXERCISE: applied only to sandbox backends; nothing real "
                                  "was changed. \nrun r-ex"), summary
        assert "EXERCISE: applied only to sandbox backends" in screen_text(app)
