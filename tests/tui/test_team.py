"""Commanders see each other (issue 14 §3, the console part of §4).

A second commander (direct writes to the shared store under another operator and host, or
another process) starts a run: the Team view shows it and its progress without a key press,
on SQLite (the trail head polled) and on PostgreSQL (LISTEN/NOTIFY). A lock held by another
host shows in the inventory row with its holder. A pending approval from another operator is
approved from the console with its plan in front of the approver; the requester's own
approval is refused on screen. The live view survives PostgreSQL going away.

Built through the production factory on the fake backend; waits on states, never sleeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.identity import host_name
from console.store import open_approvals, open_audit
from console.tui.app import make_app
from console.tui.live import LiveView
from tests.tui.conftest import dead_port
from tests.tui.flow_helpers import text, type_text, wait_for, wait_screen, write_fake_config
from tests.tui.screen_helpers import line_with, screen_text
from tests.tui.test_guards import palette

SIZE = (80, 24)
ME = "ic-on-call"
"""The console's operator (write_fake_config)."""


@pytest.fixture(autouse=True)
def _quick_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read the store often: the tests wait for what a commander would see within seconds."""
    monkeypatch.setattr(LiveView, "poll", 0.2)
    monkeypatch.setattr(LiveView, "slow", 0.4)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both stores: the embedded SQLite file, and a fresh schema of the test PostgreSQL."""
    if request.param == "postgresql":
        monkeypatch.setenv("KILLSWITCH_STORE", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("KILLSWITCH_STORE", raising=False)
    return str(request.param)


def second_config(config: Path, operator: str = "bob") -> Path:
    """The same store, another commander's config (another operator name)."""
    other = config.with_name("config-b.toml")
    other.write_text(config.read_text().replace(f'operator = "{ME}"',
                                                f'operator = "{operator}"'))
    return other


class OtherCommander:
    """Writes a run to the shared trail as another operator on another host would."""

    def __init__(self, config: Path, run_id: str, operator: str = "bob",
                 host: str = "laptop-b", integrations: tuple[str, ...] = ("app-0",),
                 ops: int = 3, ts: str | None = None) -> None:
        self.trail = open_audit(load_config(config))
        self.run_id, self.ops, self.integrations = run_id, ops, list(integrations)
        self.base: dict[str, Any] = {"run_id": run_id, "incident": "INC-7",
                                     "operator": operator, "host": host}
        if ts is not None:
            self.base["ts"] = ts

    def _write(self, **event: Any) -> None:
        self.trail.append_many([{**self.base, **event}])

    def plan(self) -> None:
        self._write(mode="plan", phase="plan", action="kill-switch", outcome="planned",
                    detail={"integrations": self.integrations, "changes": self.ops})

    def start(self) -> None:
        changes = [{"op_id": f"{self.integrations[0]}/step/{n}"} for n in range(self.ops)]
        self._write(mode="live", phase="run", action="kill-switch", outcome="started",
                    detail={"plan": {"changes": changes, "integrations": self.integrations}})

    def apply(self, n: int, outcome: str = "applied") -> None:
        integ = self.integrations[0]
        self._write(mode="live", phase="apply", integration=integ, step="step",
                    op_id=f"{integ}/step/{n}", action="flag.disable", outcome=outcome)

    def finish(self) -> None:
        self._write(mode="live", phase="run", action="kill-switch", outcome="finished",
                    detail={"exit_code": 0})

    def close(self) -> None:
        self.trail.close()


def team_row(app: Any, run_id: str) -> dict[str, str]:
    """The Team view's row of ``run_id`` ({} while it is not shown)."""
    screen = app.screen
    if type(screen).__name__ != "TeamScreen":
        return {}
    return next((r for r in screen.rows() if r["run"] == run_id), {})


async def watching(pilot: Any) -> str:
    """Wait until the live view watches the store; how (``live`` or ``polling``)."""
    live = pilot.app.live_view
    await wait_for(pilot, lambda: live.state in ("live", "polling"), what="the live view")
    return str(live.state)


# -- runs of other commanders ------------------------------------------------------------
async def test_team_view_shows_another_commanders_run_and_progress_live(
        tmp_path: Path, store: str) -> None:
    config = write_fake_config(tmp_path, 2)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        assert await watching(pilot) == ("live" if store == "postgresql" else "polling")
        await pilot.press("t")
        await wait_screen(pilot, "TeamScreen")
        assert "No runs in the trail yet" in screen_text(app)

        bob = OtherCommander(config, "r-bob-1", integrations=("app-0", "app-1"))
        mine = OtherCommander(config, "r-mine-1", operator=ME, host=host_name(),
                              integrations=("app-1",), ops=2)
        try:
            bob.plan()
            bob.start()
            await wait_for(pilot, lambda: team_row(app, "r-bob-1").get("status") == "running",
                           what="bob's run, running")
            row = team_row(app, "r-bob-1")
            assert (row["who"], row["progress"], row["you"]) == ("bob@laptop-b", "0/3", "")
            assert "kill-switch on app-0, app-1" in row["what"]
            bob.apply(0)
            await wait_for(pilot, lambda: team_row(app, "r-bob-1").get("progress") == "1/3",
                           what="one operation done")
            bob.apply(1, outcome="failed")
            bob.apply(2)
            bob.finish()
            await wait_for(pilot, lambda: team_row(app, "r-bob-1").get("status")
                           == "finished, 1 failed", what="bob's run, finished")
            assert team_row(app, "r-bob-1")["progress"] == "3/3"
            mine.plan()
            await wait_for(pilot, lambda: bool(team_row(app, "r-mine-1")), what="my run")
            assert team_row(app, "r-mine-1")["you"] == "you"
            assert team_row(app, "r-mine-1")["status"] == "plan only"
        finally:
            bob.close()
            mine.close()
        await pilot.pause()
        shown = screen_text(app)
        row_line = line_with(shown, "bob@laptop-b")
        assert "3/3" in row_line and "finished" in row_line, shown  # on an 80x24 screen
        assert "you" in line_with(shown, f"{ME}@"), shown
        assert "live view:" in shown


async def test_a_run_of_another_process_shows_in_the_team_view(tmp_path: Path,
                                                               store: str) -> None:
    """A real second console process (CLI, another operator and host) runs kill-switch."""
    config = write_fake_config(tmp_path, 2)
    other = second_config(config)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await watching(pilot)
        await palette(pilot, "team", "team: runs of every commander")
        await wait_screen(pilot, "TeamScreen")
        env = {**os.environ, "KILLSWITCH_HOST": "laptop-b",
               "PYTHONPATH": str(Path(__file__).parents[2])}
        done = subprocess.run(
            [sys.executable, "-m", "console", "--config", str(other), "run", "kill-switch",
             "app-0", "--yes", "--reason", "second commander", "--json"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr

        def bobs() -> dict[str, str]:
            return next((r for r in app.screen.rows() if r["who"] == "bob@laptop-b"), {})

        await wait_for(pilot, lambda: bobs().get("status") == "finished", what="bob's run")
        assert bobs()["progress"] == "3/3"
        assert bobs()["what"] == "kill-switch on app-0"


# -- locks ---------------------------------------------------------------------------------
def hold_lock_elsewhere(config: Path, integration: str, run_id: str, host: str = "laptop-b",
                        operator: str = "bob") -> None:
    """Another process on ``host`` takes the lock of ``integration`` (and exits: its lease
    keeps the lock until it expires)."""
    code = ("import sys\nfrom console.config import load_config\n"
            "from console.store import open_locks\n"
            "t = open_locks(load_config(sys.argv[1]))\n"
            "t.acquire([sys.argv[2]], sys.argv[3], sys.argv[4], '2025-01-01T09:30:00Z')\n"
            "getattr(t, 'close', lambda: None)()\n")
    env = {**os.environ, "KILLSWITCH_HOST": host,
           "PYTHONPATH": str(Path(__file__).parents[2])}
    subprocess.run([sys.executable, "-c", code, str(config), integration, run_id, operator],
                   env=env, check=True, timeout=60)


async def test_a_lock_held_by_another_host_shows_in_the_inventory(tmp_path: Path,
                                                                  store: str) -> None:
    config = write_fake_config(tmp_path, 3)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await watching(pilot)
        table = app.screen.query_one("#inventory-table")
        assert table.get_cell("app-1", "status") == "approved"
        hold_lock_elsewhere(second_config(config), "app-1", "r-bob-locks")
        # this console's own lock (same host, same process) is not someone else's
        from console.store import open_locks

        open_locks(app.config).acquire(["app-2"], "r-mine", ME, "2025-01-01T09:31:00Z")
        await wait_for(pilot, lambda: table.get_cell("app-1", "status") == "LOCKED",
                       what="app-1 marked LOCKED")
        await wait_for(pilot, lambda: len(app.live_view.locks) == 2, what="both locks read")
        assert table.get_cell("app-2", "status") == "approved"
        assert table.get_cell("app-0", "status") == "approved"
        await pilot.press("down")
        await wait_for(pilot, lambda: table.cursor_id == "app-1", what="cursor on app-1")
        line = table.detail_text
        assert "LOCKED by bob@laptop-b (run r-bob-locks) since 2025-01-01 09:30:00" in line
        await pilot.pause()
        shown = screen_text(app)
        assert "LOCKED" in line_with(shown, "app-1"), shown
        assert "1 locked elsewhere" in shown, shown
        await pilot.press("enter")
        await wait_screen(pilot, "DetailScreen")
        assert "LOCKED by bob@laptop-b (run r-bob-locks)" in text(app, "#detail-title")


# -- approvals -----------------------------------------------------------------------------
async def request_as(config: Path, operator: str, host: str,
                     monkeypatch: pytest.MonkeyPatch) -> str:
    """``operator`` on ``host`` plans kill-switch on app-0 and asks for an approval."""
    from console.engine.service import Session
    from console.engine.twoperson import request_approval

    with monkeypatch.context() as m:
        m.setenv("KILLSWITCH_HOST", host)
        session = Session(load_config(second_config(config, operator)))
        try:
            plan = await session.plan("kill-switch", ["app-0"])
            approval = request_approval(session, plan, "two_person = all", "key leaked")
        finally:
            session.close()
            session.audit.close()
    return str(approval.id)


def approval_status(config: Path, approval_id: str) -> tuple[str, str]:
    """(status, approver operator) as the store has it."""
    with open_approvals(load_config(config)) as approvals:
        a = approvals.get(approval_id)
    return a.status, (a.approver.operator if a.approver else "")


async def open_review(pilot: Any, approval_id: str, palette_first: bool = False) -> None:
    """Team view, ``p`` (or the palette's verb), the approval highlighted, ``enter``: its
    plan review."""
    app = pilot.app
    if palette_first:
        await wait_for(pilot, lambda: app.approvals_pending == 1, what="one pending")
        await palette(pilot, "approvals", "approvals: review 1 pending")
    else:
        await pilot.press("t")
        await wait_screen(pilot, "TeamScreen")
        await pilot.press("p")
    await wait_screen(pilot, "ApprovalsScreen")
    await wait_for(pilot, lambda: any(r["id"] == approval_id for r in app.screen.rows()),
                   what="the approval listed")
    await pilot.press("enter")
    await wait_screen(pilot, "ApprovalReviewScreen")


async def test_a_pending_approval_is_approved_from_the_console(
        tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_fake_config(tmp_path, 2)
    approval_id = await request_as(config, "bob", "laptop-b", monkeypatch)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await watching(pilot)
        banner = "1 to approve"
        await wait_for(pilot, lambda: banner in screen_text(app), what="the banner's count")
        await open_review(pilot, approval_id)
        shown = screen_text(app)
        assert f"APPROVE {approval_id}" in shown, shown
        assert "bob" in shown and "laptop-b" in shown, shown
        assert "app-0 / flags-off" in shown, shown  # the plan itself, as the review shows it
        await pilot.press("a")  # no reason yet: the reason field first
        assert "Type why you approve" in screen_text(app)
        assert approval_status(config, approval_id) == ("pending", "")
        await type_text(pilot, "plan checked with bob")
        await pilot.press("enter")
        await wait_screen(pilot, "ApprovalsScreen")
        assert approval_status(config, approval_id) == ("approved", ME)
        await wait_for(pilot, lambda: banner not in screen_text(app)
                       and not app.screen.rows(), what="nothing pending any more")
        assert any("Approved" in str(n.message) for n in app._notifications)


async def test_the_requester_cannot_approve_their_own_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same operator name on the same host: refused on screen (exit-3 words), no traceback,
    the approval stays pending."""
    config = write_fake_config(tmp_path, 2)
    approval_id = await request_as(config, ME, host_name(), monkeypatch)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await watching(pilot)
        await open_review(pilot, approval_id, palette_first=True)
        assert "your own request" in screen_text(app)
        await pilot.press("a")
        await type_text(pilot, "it is fine")
        await pilot.press("enter")
        screen: Any = app.screen
        await wait_for(pilot, lambda: "refused" in screen.refusal, what="the refusal")
        assert "same operator" in screen.refusal
        shown = " ".join(screen_text(app).split())
        assert "refused: the requester and the approver are the same operator" in shown, shown
        assert type(app.screen).__name__ == "ApprovalReviewScreen"
        assert approval_status(config, approval_id) == ("pending", "")


# -- the store going away ------------------------------------------------------------------
async def test_the_watcher_reports_an_unreachable_store_and_keeps_trying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port: ``reconnecting`` with why (no password), again and again; no raise."""
    from console.store.watch import Watcher

    config = write_fake_config(tmp_path, 1)
    monkeypatch.setenv("KILLSWITCH_STORE",
                       f"postgresql://ks:s3cret-pw@127.0.0.1:{dead_port()}/killswitch")
    watcher = Watcher(load_config(config), retry=(0.05,))
    seen = []
    async for change in watcher:
        seen.append(change)
        if len(seen) == 3:
            watcher.close()
    assert [c.state for c in seen] == ["reconnecting"] * 3
    assert all("s3cret" not in c.detail for c in seen)
    assert "connect" in seen[0].detail or "refused" in seen[0].detail, seen[0].detail


async def test_the_watcher_calls_back_with_trail_moves_and_creates_no_trail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: no file yet is an empty trail (looking creates none); an append is heard."""
    import asyncio

    from console.store.watch import Watcher

    monkeypatch.delenv("KILLSWITCH_STORE", raising=False)
    config = write_fake_config(tmp_path, 1)
    watcher = Watcher(load_config(config), poll=0.05, slow=0.1)
    heard: list[Any] = []
    task = asyncio.get_running_loop().create_task(watcher.run(heard.append))
    try:
        async def until(check: Any) -> None:
            for _ in range(400):
                if check():
                    return
                await asyncio.sleep(0.025)
            raise AssertionError(f"never heard it: {heard}")

        await until(lambda: any(c.kind == "trail" for c in heard))
        assert watcher.state == "polling"
        assert [c.seq for c in heard if c.kind == "trail"] == [0]
        assert not (tmp_path / "audit.db").exists()
        bob = OtherCommander(config, "r-heard")
        try:
            bob.plan()
        finally:
            bob.close()
        await until(lambda: any(c.kind == "trail" and c.seq == 1 for c in heard))
    finally:
        watcher.close()
        task.cancel()


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own (it is stopped and started again)."""
    from tests.pgserver import start_pg, stop_pg

    server = start_pg()
    try:
        yield server
    finally:
        stop_pg(server)


async def test_the_live_view_survives_postgresql_going_away(
        tmp_path: Path, own_pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from console.sandbox import unleash as sb

    monkeypatch.setenv("KILLSWITCH_STORE", own_pg.fresh_url())
    config = write_fake_config(tmp_path, 2)
    bob = OtherCommander(config, "r-before")
    bob.plan()
    bob.close()
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        assert await watching(pilot) == "live"
        await pilot.press("t")
        await wait_screen(pilot, "TeamScreen")
        await wait_for(pilot, lambda: bool(team_row(app, "r-before")), what="the first run")

        sb.stop_postgres(own_pg.paths)
        await wait_for(pilot, lambda: "live view: reconnecting" in screen_text(app),
                       what="reconnecting on screen")
        assert team_row(app, "r-before"), "what was seen stays on screen"
        assert app.is_running

        sb.start_postgres(own_pg.paths)
        await wait_for(pilot, lambda: app.live_view.state == "live", timeout=60,
                       what="live again")
        bob = OtherCommander(config, "r-after")
        try:
            bob.plan()
        finally:
            bob.close()
        await wait_for(pilot, lambda: bool(team_row(app, "r-after")), what="a run after")
        assert "reconnecting" not in screen_text(app)


# -- snapshot ------------------------------------------------------------------------------
def test_team_view_snapshot(snap_compare: Any, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """80x24: another commander's finished run with a failure, an interrupted one, and this
    console's own plan (fixed times: no clock on screen)."""
    monkeypatch.delenv("KILLSWITCH_STORE", raising=False)
    monkeypatch.setenv("KILLSWITCH_HOST", "console-host")  # this console's host, on screen
    config = write_fake_config(tmp_path, 2)
    day = "2025-01-01T"
    bob = OtherCommander(config, "r-20250101-0900-bob", integrations=("app-0", "app-1"),
                         ts=f"{day}09:00:00.000000Z")
    carol = OtherCommander(config, "r-20250101-0915-carol", operator="carol",
                           host="laptop-c", integrations=("app-1",), ops=2,
                           ts=f"{day}09:15:00.000000Z")
    mine = OtherCommander(config, "r-20250101-0930-mine", operator=ME, host=host_name(),
                          integrations=("app-0",), ts=f"{day}09:30:00.000000Z")
    try:
        bob.plan()
        bob.start()
        for n in range(3):
            bob.apply(n, outcome="failed" if n == 1 else "applied")
        bob.finish()
        carol.plan()
        carol.start()
        carol.apply(0)
        mine.plan()
    finally:
        for who in (bob, carol, mine):
            who.close()
    with monkeypatch.context() as m:  # carol's console holds its lock: her run is running
        m.setenv("KILLSWITCH_HOST", "laptop-c")
        hold_lock_elsewhere(config, "app-1", "r-20250101-0915-carol", host="laptop-c",
                            operator="carol")
    app = make_app(config)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: len(app.live_view.runs) == 3, what="three runs")
        await pilot.press("t")
        await wait_screen(pilot, "TeamScreen")
        await wait_for(pilot, lambda: len(app.screen.rows()) == 3, what="rows")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
