"""No way around a guard (issue 10 §1): every way out during a run asks, a confirmed quit and
a lost terminal cancel the run and exit only once its end is in the trail, and the next start
offers to resume a run a dead console left unfinished.

Built through the production factory; waits on states (the trail, the screen), never sleeps.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList

from console.audit import AuditLog
from console.engine.locks import LockTable
from console.errors import EXIT_INTERRUPTED
from console.tui.app import make_app
from tests.tui.flow_helpers import (
    pick_runbook,
    switches,
    text,
    type_text,
    wait_for,
    wait_screen,
    write_fake_config,
)

SIZE = (120, 40)
ROOT = Path(__file__).resolve().parents[2]


def open_ops(events: list[dict[str, Any]]) -> set[str]:
    """Operations whose apply ``started`` has no end event after it."""
    started: set[str] = set()
    for e in events:
        if e["phase"] != "apply":
            continue
        if e["outcome"] == "started":
            started.add(e["op_id"])
        elif e["outcome"] != "retrying":
            started.discard(e["op_id"])
    return started


def trail(root: Path) -> list[dict[str, Any]]:
    """Every event of the trail in ``root``."""
    if not (root / "audit.db").exists():
        return []
    log = AuditLog(root / "audit.db")
    try:
        return log.events()
    finally:
        log.close()


def in_flight(root: Path) -> bool:
    """True while some operation has started and not ended."""
    return bool(open_ops(trail(root)))


def record_exit(app: Any, root: Path) -> dict[str, Any]:
    """Wrap ``app.exit`` to take the trail as it was when the app decided to exit."""
    seen: dict[str, Any] = {}
    real_exit = app.exit

    def exit_(*args: Any, **kw: Any) -> None:
        seen.setdefault("events", trail(root))
        seen.setdefault("args", args)
        real_exit(*args, **kw)

    app.exit = exit_
    return seen


async def start_run(pilot: Any, n: int = 3) -> Any:
    """From the inventory, run kill-switch on app-0..app-{n-1} and return the run screen."""
    app = pilot.app
    await wait_screen(pilot, "InventoryScreen")
    app.open_runbooks([f"app-{i}" for i in range(n)])
    await pick_runbook(pilot, "kill-switch")
    await wait_screen(pilot, "PlanScreen")
    await pilot.press("a")
    await wait_screen(pilot, "ConfirmRunModal")
    await type_text(pilot, str(n) if n > 1 else "app-0")
    await pilot.press("tab")
    await type_text(pilot, "guard test")
    await pilot.press("enter")
    await wait_screen(pilot, "RunScreen")
    return app.screen


async def palette(pilot: Any, query: str, name: str) -> None:
    """Open the command palette, type ``query``, highlight the command ``name``, run it."""
    await pilot.press("ctrl+p")
    await wait_screen(pilot, "CommandPalette")
    await type_text(pilot, query)
    commands = pilot.app.screen.query_one(CommandList)

    def prompts() -> list[str]:
        return [str(commands.get_option_at_index(i).hit.text)
                for i in range(commands.option_count)]

    await wait_for(pilot, lambda: name in prompts(), what=f"{name!r} in the palette")
    await wait_for(pilot, lambda: commands.highlighted is not None, what="a highlight")
    for _ in range(commands.option_count):
        if prompts()[commands.highlighted or 0] == name:
            break
        await pilot.press("down")
    assert prompts()[commands.highlighted or 0] == name, prompts()
    await pilot.press("enter")


async def ask(pilot: Any, path: str) -> None:
    """Take one way out."""
    if path == "palette":
        await palette(pilot, "quit", "app: quit")
    elif path == "system-quit":
        await palette(pilot, "quit", "Quit")
    else:
        await pilot.press(path)


PATHS = ["q", "ctrl+q", "ctrl+c", "palette", "system-quit"]


def gated_config(root: Path, n: int = 3) -> tuple[Path, Path, Path]:
    """A config whose fake applies wait at a gate the test opens: (config, gate, entered).

    The first apply holds at the gate (``entered`` exists) with every integration's first
    operation started: the quit is answered while operations are provably in flight,
    however slow the machine."""
    gate = root / "apply-gate"
    config = write_fake_config(root, n, backend=f'gate_file = "{gate}"')
    return config, gate, root / "apply-gate.entered"


@pytest.mark.parametrize("path", PATHS)
async def test_every_way_out_asks_during_a_run(tmp_path: Path, path: str) -> None:
    """Declined: the run goes on and the console stays. Confirmed: the run is cancelled and
    the app exits only once every started operation has its end in the trail."""
    config, gate, entered = gated_config(tmp_path)
    app = make_app(config, mode="live")
    seen = record_exit(app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        run = await start_run(pilot)
        await wait_for(pilot, entered.exists, what="an apply held at the gate")
        await ask(pilot, path)
        await wait_screen(pilot, "ConfirmQuitModal")
        await pilot.press("n")
        await wait_screen(pilot, "RunScreen")
        assert app.is_running and "events" not in seen
        assert run.running and not run.cancel_requested

        await ask(pilot, path)
        await wait_screen(pilot, "ConfirmQuitModal")
        await pilot.press("y")
        await wait_for(pilot, lambda: run.cancel_requested, what="the run cancelled")
        assert in_flight(tmp_path) and "events" not in seen  # waits for the in-flight ops
        gate.touch()
        await wait_for(pilot, lambda: "events" in seen, what="the app exiting")
    events = seen["events"]
    assert seen["args"] == (EXIT_INTERRUPTED,)
    assert not open_ops(events), "exited with an operation started and not ended"
    ends = [e["outcome"] for e in events if e["phase"] == "run"]
    assert ends[-1] == "cancelled", ends
    skipped = {e["op_id"] for e in events if e["outcome"] == "skipped"}
    # every credential operation came after the answer: none started, all skipped
    assert skipped == {f"app-{i}/disable-credentials/0" for i in range(3)}, skipped
    assert AuditLog(tmp_path / "audit.db").verify().ok


async def test_quit_without_a_run_does_not_ask(tmp_path: Path) -> None:
    config = write_fake_config(tmp_path, 1)
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running or app._exit, what="exit")
    assert app.return_value is None


async def test_sighup_during_a_run_finishes_in_flight_work_and_records_it(
        tmp_path: Path) -> None:
    """A real SIGHUP to this process: no new operation starts, the in-flight one ends and is
    recorded, the run is recorded cancelled, and only then does the console exit."""
    config, gate, entered = gated_config(tmp_path)
    app = make_app(config, mode="live")
    seen = record_exit(app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        run = await start_run(pilot)
        assert signal.SIGHUP in app.guard._signals, "no SIGHUP handler installed"
        await wait_for(pilot, entered.exists, what="an apply held at the gate")
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(pilot, lambda: run.cancel_requested, what="the run cancelled")
        assert "events" not in seen  # not before the in-flight operations end
        gate.touch()
        await wait_for(pilot, lambda: "events" in seen, what="the app exiting")
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # given back on exit
    events = seen["events"]
    assert not open_ops(events), "exited with an operation started and not ended"
    assert [e["outcome"] for e in events if e["phase"] == "run"][-1] == "cancelled"
    assert any(e["outcome"] == "skipped" for e in events)
    assert LockTable(tmp_path / "audit.db").held() == []



async def test_no_other_section_or_mode_while_a_run_is_in_progress(tmp_path: Path) -> None:
    """The audit trail, the help and the inventory are other sections (Textual modes): going
    there would leave the run unwatched, so the keys are refused and say why; so is a mode
    switch (the banner would stop saying what the run does). The run goes on meanwhile."""
    config, gate, entered = gated_config(tmp_path, 2)
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        run = await start_run(pilot, 2)
        await wait_for(pilot, entered.exists, what="an apply held at the gate")
        for key in ("A", "question_mark", "i", "ctrl+l"):
            app._notifications.clear()
            await pilot.press(key)
            await wait_for(pilot, lambda: any("A run is in progress" in str(n.message)
                                              for n in app._notifications),
                           what=f"{key} refused")
            assert app.screen is run and app.current_mode == "inventory", key
        assert app.mode == "live" and run.running
        gate.touch()
        await wait_for(pilot, lambda: run.result is not None and not run.running,
                       what="the run's end")
        await pilot.press("A")  # the run is over: the audit trail opens
        await wait_screen(pilot, "AuditScreen")

# -- start-up: a run a dead console left unfinished ----------------------------------------
CRASH = """
import asyncio, sys
from console.config import load_config
from console.engine.service import Session

session = Session(load_config(sys.argv[1]), operator="ic-gone", mode="live")

async def go():
    plan = await session.plan("kill-switch", ["app-0", "app-1"])
    await session.apply(plan, reason="console about to die")

asyncio.run(go())
"""


def crashed_run(root: Path) -> str:
    """A console that dies (SIGKILL) with an operation in flight: its run id."""
    config = write_fake_config(root, 2, backend="apply_latency = 60")
    proc = subprocess.Popen([sys.executable, "-c", CRASH, str(config)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    try:
        while not in_flight(root):  # wait on the child (or the trail), not a sleep
            assert time.monotonic() < deadline, "no operation started"
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError("the run ended before it could be killed")
    finally:
        proc.kill()
        proc.wait()
    locks = LockTable(root / "audit.db").held()
    assert locks and all(LockTable.holder_gone(lock) for lock in locks)
    write_fake_config(root, 2)  # the same config, without the hang, for this process
    return str(locks[0].run_id)


async def test_startup_offers_to_resume_an_unfinished_run(tmp_path: Path) -> None:
    run_id = crashed_run(tmp_path)
    app = make_app(tmp_path / "config.toml", mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "ResumeOfferModal")
        summary = text(app, "#resume-summary")
        assert run_id in summary and "by ic-gone" in summary, summary
        interrupted = re.search(r"(\d+) interrupted \(started, no end recorded\)", summary)
        assert interrupted and int(interrupted.group(1)) >= 1, summary
        await pilot.press("u")
        await wait_screen(pilot, "RunScreen")
        run = app.screen
        assert run.plan.run_id == run_id
        await wait_for(pilot, lambda: run.result is not None and not run.running,
                       what="resumed result")
        assert text(app, "#run-verdict").startswith("OK"), text(app, "#run-verdict")
    events = trail(tmp_path)
    assert not open_ops(events)
    run_events = [e["outcome"] for e in events if e["phase"] == "run" and e["run_id"] == run_id]
    assert run_events[-2:] == ["resumed", "finished"], run_events
    assert make_app(tmp_path / "config.toml").session().interrupted_runs() == []


async def test_resume_offer_in_dry_run_asks_for_the_mode_first(tmp_path: Path) -> None:
    crashed_run(tmp_path)
    app = make_app(tmp_path / "config.toml")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "ResumeOfferModal")
        await pilot.press("u")
        await pilot.pause()
        assert type(app.screen).__name__ == "ResumeOfferModal"
        assert "DRY-RUN" in text(app, "#resume-error")
        await pilot.press("escape")
        await wait_screen(pilot, "InventoryScreen")
    assert len(make_app(tmp_path / "config.toml").session().interrupted_runs()) == 1


async def test_no_offer_while_the_holder_is_alive(tmp_path: Path) -> None:
    """A run another live console is running is not offered (it would be refused anyway)."""
    config = write_fake_config(tmp_path, 1)
    app = make_app(config, mode="live")
    session = app.session()
    plan = await session.plan("kill-switch", ["app-0"])
    LockTable(tmp_path / "audit.db").acquire(plan.integrations, plan.run_id, "alice", "now")
    journal = session._journal(plan.run_id, "live")
    await journal.record(phase="run", action=plan.runbook, outcome="started",
                         detail={"plan": plan.body()})
    await journal.aclose()
    assert session.interrupted_runs() == []  # this very process holds the lock


async def test_a_cancel_before_the_executor_starts_starts_nothing(tmp_path: Path) -> None:
    """Quit confirmed the instant a run opens: the run records itself cancelled and no
    operation starts (the guard cancels through Session.request_cancel)."""
    config = write_fake_config(tmp_path, 2)
    session = make_app(config, mode="live").session()
    plan = await session.plan("kill-switch", ["app-0", "app-1"])
    session.request_cancel()
    result = await session.apply(plan, reason="quit at once")
    assert result.cancelled
    events = trail(tmp_path)
    assert not [e for e in events if e["phase"] == "apply" and e["outcome"] == "started"]
    assert [e["outcome"] for e in events if e["phase"] == "run"][-1] == "cancelled"
    assert switches() == {}


HEADLESS = """
import sys
from console.tui.app import make_app
from tests.tui.test_guards import start_run

app = make_app(sys.argv[1], mode="live")

async def auto(pilot):
    await start_run(pilot, 3)  # then the operator's terminal goes; the console stays up

sys.exit(int(app.run(headless=True, size=(120, 40), auto_pilot=auto) or 0))
"""


def test_sighup_to_the_console_process_records_every_end(tmp_path: Path) -> None:
    """The console as its own process (app.run, not run_test) gets SIGHUP mid-run: it exits
    130 after the run's end is recorded, with no operation started and not ended."""
    config, gate, entered = gated_config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", HEADLESS, str(config)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    try:
        while not entered.exists():
            assert time.monotonic() < deadline, "no operation started"
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"the console exited ({proc.returncode}) before SIGHUP")
        proc.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):  # waits for the held apply...
            proc.wait(timeout=0.5)
        gate.touch()  # ...which ends and is recorded; then it exits
        assert proc.wait(timeout=60) == EXIT_INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = trail(tmp_path)
    assert not open_ops(events), "started without an end"
    assert [e["outcome"] for e in events if e["phase"] == "run"][-1] == "cancelled"
    assert any(e["outcome"] == "skipped" for e in events)
    assert LockTable(tmp_path / "audit.db").held() == []
