"""One mode model, said the same way everywhere (issue 10, section 2).

DRY-RUN changes nothing anywhere; EXERCISE applies only to sandbox backends; LIVE applies to
real systems. The words come from ``console.vocab.MODE_MEANING``; these tests check that the
README, the help screen, the banner, the palette, the plan header and the confirm dialogs
say them, that ``--exercise`` refuses a config with a backend not marked ``sandbox = true``,
that every switch needs the typed word, and that the banner stays visible over modals.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console.errors import UsageError
from console.tui.app import make_app
from console.tui.commands import commands
from console.tui.widgets.banner import ModeBanner
from console.vocab import MODE_MEANING, Mode, mode_sentence
from tests.tui.flow_helpers import (
    pick_runbook,
    text,
    type_text,
    wait_for,
    wait_screen,
    write_fake_config,
)

REPO = Path(__file__).resolve().parents[2]
SIZE = (120, 40)
SENTENCES = {
    "dry-run": "DRY-RUN changes nothing anywhere",
    "exercise": "EXERCISE applies only to sandbox backends",
    "live": "LIVE applies to real systems",
}


def sandbox_config(root: Path) -> Path:
    """Two integrations on fake backend ``sim``, marked ``sandbox = true``."""
    return write_fake_config(root, 2, backend="sandbox = true")


def mixed_config(root: Path) -> Path:
    """``sim`` is a sandbox backend; ``prod-flags`` is not."""
    path = write_fake_config(root, 2, backend="sandbox = true")
    path.write_text(path.read_text().replace(
        "[[integrations]]", '[backends.prod-flags]\ntype = "fake"\n\n[[integrations]]', 1))
    return path


def banner_text(app: Any) -> str:
    return str(app.screen.query_one(ModeBanner).text)


def test_the_three_sentences_are_defined_once() -> None:
    assert {m.value: mode_sentence(m) for m in MODE_MEANING} == SENTENCES
    assert list(MODE_MEANING) == [Mode.DRY_RUN, Mode.EXERCISE, Mode.LIVE]


def test_readme_uses_the_same_words() -> None:
    readme = (REPO / "README.md").read_text()
    for sentence in SENTENCES.values():
        assert sentence in readme, sentence


def test_example_config_backends_are_all_sandbox_backends() -> None:
    from console.config import load_config

    assert load_config(REPO / "config.example.toml").real_backends == []


@pytest.mark.parametrize("argv", [["--exercise"], ["--exercise", "--incident", "INC-1"]])
def test_exercise_refuses_a_config_with_real_backends(tmp_path: Path,
                                                      argv: list[str]) -> None:
    """Exit 2 naming the backend, before the app starts (no TTY: stdin is /dev/null)."""
    config = mixed_config(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "console", "--config", str(config), *argv],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "prod-flags" in proc.stderr and "sim," not in proc.stderr
    assert "EXERCISE applies only to sandbox backends" in proc.stderr
    assert "sandbox = true" in proc.stderr  # the hint says how to mark one


def test_modes_offered_follow_the_sandbox_marks(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "m").mkdir()
    sandbox, mixed = sandbox_config(tmp_path / "s"), mixed_config(tmp_path / "m")
    app = make_app(sandbox, exercise=True)
    assert app.mode == "dry-run" and app.applying_mode == "exercise"
    with pytest.raises(UsageError, match="every backend of this config is a sandbox"):
        make_app(sandbox, mode="live")  # LIVE on a sandbox would be meaningless
    assert make_app(mixed).applying_mode == "live"
    with pytest.raises(UsageError, match="prod-flags") as err:
        make_app(mixed, mode="exercise")
    assert err.value.exit_code == 2


async def test_every_switch_needs_the_typed_word(tmp_path: Path) -> None:
    app = make_app(sandbox_config(tmp_path), exercise=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        assert SENTENCES["dry-run"] in banner_text(app)
        names = [name for name, _, _ in commands(app) if name.startswith("mode:")]
        assert names == ["mode: switch to exercise"]  # never LIVE on a sandbox config

        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        assert SENTENCES["exercise"] in text(app, "#confirm-mode-text")
        await type_text(pilot, "LIVE")  # the wrong word
        await pilot.press("enter")
        await pilot.pause()
        assert app.mode == "dry-run"
        assert "still DRY-RUN" in text(app, "#confirm-mode-error")
        await type_text(pilot, "EXERCISE")
        await pilot.press("enter")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "exercise"
        assert SENTENCES["exercise"] in banner_text(app)
        assert app.screen.query_one(ModeBanner).has_class("-exercise")

        # back to DRY-RUN: the typed word too
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        assert SENTENCES["dry-run"] in text(app, "#confirm-mode-text")
        await type_text(pilot, "dry")
        await pilot.press("enter")
        await pilot.pause()
        assert app.mode == "exercise"
        assert "still EXERCISE" in text(app, "#confirm-mode-error")
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "exercise"
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        await type_text(pilot, "DRY-RUN")
        await pilot.press("enter")
        await wait_screen(pilot, "InventoryScreen")
        assert app.mode == "dry-run"


def _banner_on_top(app: Any, sentence: str) -> None:
    """The active (modal) screen's own banner is on row 0 and says the mode."""
    banner = app.screen.query_one(ModeBanner)
    assert banner.display and banner.region.y == 0 and banner.region.width == SIZE[0]
    assert sentence in banner.text


async def test_banner_shows_the_mode_while_a_modal_is_open(tmp_path: Path) -> None:
    app = make_app(write_fake_config(tmp_path, 2), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        _banner_on_top(app, SENTENCES["live"])
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")

        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await wait_screen(pilot, "ConfirmRunModal")
        _banner_on_top(app, SENTENCES["live"])
        assert SENTENCES["live"] in text(app, "#confirm-title")


async def test_banner_shows_the_mode_over_the_command_palette(tmp_path: Path) -> None:
    """A screen that composes no banner (Textual's palette) gets one from the app."""
    app = make_app(sandbox_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("ctrl+p")
        await wait_screen(pilot, "CommandPalette")
        await wait_for(pilot, lambda: bool(app.screen.query(ModeBanner)), what="banner")
        await pilot.pause()
        _banner_on_top(app, SENTENCES["dry-run"])
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")
        assert len(app.screen.query(ModeBanner)) == 1  # screens with their own get no second


async def test_the_same_sentence_in_help_banner_palette_and_plan_header(
        tmp_path: Path) -> None:
    app = make_app(sandbox_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        dry = SENTENCES["dry-run"]
        assert dry in banner_text(app)
        palette = {name: help_text for name, help_text, _ in commands(app)}
        assert palette["mode: switch to exercise"].startswith(SENTENCES["exercise"])

        await pilot.press("question_mark")
        await wait_screen(pilot, "HelpScreen")
        modes = text(app, "#help-modes")
        for sentence in SENTENCES.values():
            assert f"{sentence}." in modes
        assert dry in banner_text(app)
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")

        app.open_runbooks(["app-0", "app-1"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        header = text(app, "#plan-header")
        assert header.startswith(dry) and "switch to EXERCISE (ctrl+l, type EXERCISE)" in header
        assert dry in banner_text(app)

        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        await type_text(pilot, "EXERCISE")
        await pilot.press("enter")
        await wait_screen(pilot, "PlanScreen")
        await wait_for(pilot, lambda: text(app, "#plan-header").startswith(
            SENTENCES["exercise"]), what="plan header in EXERCISE")
        assert SENTENCES["exercise"] in banner_text(app)
        palette = {name: help_text for name, help_text, _ in commands(app)}
        assert palette["mode: switch to dry-run"].startswith(dry)


async def test_banner_shows_the_mode_over_the_incident_question(tmp_path: Path) -> None:
    """The incident id is asked for on the way to EXERCISE: the banner still says DRY-RUN
    (nothing switched yet), on top of the question."""
    config = sandbox_config(tmp_path)
    config.write_text(config.read_text().replace('incident = "INC-7"\n', ""))
    app = make_app(config, exercise=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("ctrl+l")
        await wait_screen(pilot, "ConfirmModeModal")
        await type_text(pilot, "EXERCISE")
        await pilot.press("enter")
        await wait_screen(pilot, "IncidentPromptModal")
        _banner_on_top(app, SENTENCES["dry-run"])
        assert "no incident" in banner_text(app)
        await type_text(pilot, "EX-1")
        await pilot.press("enter")
        await wait_screen(pilot, "InventoryScreen")
        assert SENTENCES["exercise"] in banner_text(app) and "EX-1" in banner_text(app)
