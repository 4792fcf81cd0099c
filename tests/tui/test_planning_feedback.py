"""Planning says what it waits on and can be cancelled (issue 10, section 5).

"Every key gets visible feedback within 100 ms; work longer than that shows what it is waiting
on (which backends are still being observed, with a running count) and can be cancelled with
Escape." The slow backend here is a Vault URL that accepts connections and never answers
until the test lets go of them: the plan is provably held on it, however slow the machine.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from console.audit import AuditLog
from console.config import load_config
from console.engine.planner import make_plan
from console.engine.runtime import Runtime
from console.inventory import select
from console.runbook import load_runbook
from console.tui.app import make_app
from console.tui.screens.runbook import planning_text
from tests.tui.flow_helpers import (
    pick_runbook,
    switches,
    text,
    wait_for,
    wait_screen,
    write_fake_config,
)

SIZE = (120, 40)
PROGRESS = re.compile(r"^planning kill-switch for 2 integrations · (\d+)/(\d+) targets observed "
                      r"· waiting on vault-slow \(Esc cancels\)$")


class Blackhole:
    """A TCP port that accepts every connection and never answers, until :meth:`close`."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self.closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                if self.closed:
                    conn.close()
                    return
                self.accepted.append(conn)

    def close(self) -> None:
        """Stop listening and close every held connection: the waiting reads fail at once,
        and new connections are refused."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            held, self.accepted = self.accepted, []
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.server.close()
        self._thread.join(timeout=10)
        for conn in held:
            conn.close()


@pytest.fixture
def blackhole() -> Any:
    hole = Blackhole()
    yield hole
    hole.close()


def slow_config(root: Path, port: int, copies: int = 1) -> Path:
    """Two integrations on the fake backend; app-0's key also has ``copies`` copies in a
    Vault at ``port`` (backend ``vault-slow``)."""
    path = write_fake_config(root, 2)
    text_ = path.read_text().replace(
        "[[integrations]]",
        "[backends.vault-slow]\ntype = \"vault\"\n"
        f"url = \"http://127.0.0.1:{port}\"\ntoken_env = \"KS_TEST_SLOW_VAULT_TOKEN\"\n"
        "timeout = 120\n\n[[integrations]]", 1)
    refs = "".join(f'[[integrations.credentials]]\nbackend = "vault-slow"\nmount = "secret"\n'
                   f'path = "ai/app-0/key-{n}"\n' for n in range(copies))
    text_ = text_.replace('key = "app-0-key"\n', 'key = "app-0-key"\n' + refs, 1)
    path.write_text(text_)
    return path


def plan_events(root: Path) -> list[dict[str, Any]]:
    if not (root / "audit.db").exists():
        return []
    log = AuditLog(root / "audit.db")
    try:
        return [e for e in log.events() if e["phase"] == "plan"]
    finally:
        log.close()


async def test_planning_shows_what_it_waits_on_and_escape_cancels_it(
        tmp_path: Path, blackhole: Blackhole, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_SLOW_VAULT_TOKEN", "test-token")
    app = make_app(slow_config(tmp_path, blackhole.port), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0", "app-1"])
        await pick_runbook(pilot, "kill-switch")
        screen = app.screen
        # feedback as the key is handled, before any backend answered
        assert text(app, "#runbook-status").startswith(
            "planning kill-switch for 2 integrations · ")
        assert screen.check_action("plan", ()) is None  # no second plan meanwhile

        def held() -> re.Match[str] | None:
            return PROGRESS.match(text(app, "#runbook-status"))

        await wait_for(pilot, lambda: (m := held()) is not None
                       and int(m.group(1)) == int(m.group(2)) - 1,
                       what="every target observed but the one in vault-slow")
        match = held()
        assert match is not None and int(match.group(2)) >= 5  # 2 flags, 2 keys, the copy

        await pilot.press("escape")
        status = text(app, "#runbook-status")
        assert status.startswith("Planning kill-switch cancelled: nothing was changed"), status
        assert type(app.screen).__name__ == "RunbookScreen"  # still here: Escape again leaves
        assert not screen.planning and screen.check_action("plan", ()) is True
        await app.workers.wait_for_complete()
        assert type(app.screen).__name__ == "RunbookScreen"
        assert plan_events(tmp_path) == []  # nothing recorded either
        assert switches() == {}

        # the backend answers again (refuses): Enter plans again and the plan shows why
        blackhole.close()
        await pilot.press("enter")
        await wait_screen(pilot, "PlanScreen")
        errors = [c for c in app.screen.plan.changes if c.backend == "vault-slow"
                  and c.action != "evidence.preserve"]  # evidence is planned without a call
        assert errors and all(c.status == "error" for c in errors)
    assert switches() == {}


async def test_planning_from_the_palette_verb_starts_at_once(tmp_path: Path) -> None:
    """A named runbook (the palette's "run: ...") is highlighted and planned as soon as the
    picker has listed the runbooks; the plan review follows."""
    app = make_app(write_fake_config(tmp_path, 2), mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0", "app-1"], runbook="flags-off")
        await wait_screen(pilot, "PlanScreen")
        assert app.screen.plan.runbook == "flags-off"
        assert {c.action for c in app.screen.plan.changes} == {"flag.disable"}
        await pilot.press("escape")
        await wait_screen(pilot, "RunbookScreen")
        assert app.screen.selected is not None and app.screen.selected.name == "flags-off"


async def test_make_plan_reports_each_target_start_and_end(tmp_path: Path) -> None:
    config = load_config(write_fake_config(tmp_path, 3))
    seen: list[tuple[str, str]] = []
    rt = Runtime(config)
    try:
        plan = await make_plan(rt, load_runbook("kill-switch", config),
                               select(config.integrations, ["app-0", "app-1", "app-2"]),
                               ["app-0", "app-1", "app-2"],
                               progress=lambda event, backend: seen.append((event, backend)))
    finally:
        rt.close()
    started = [b for e, b in seen if e == "started"]
    # per integration: its key's evidence, its flag, its key
    assert len(started) == len(plan.changes) == 9 and set(started) == {"sim"}
    first_end = next(i for i, (e, _) in enumerate(seen) if e == "finished")
    assert first_end == len(started)  # every start is known before the first end: a total
    assert [e for e, _ in seen].count("finished") == 9


async def test_cancelling_make_plan_cancels_every_observation(
        tmp_path: Path, blackhole: Blackhole, monkeypatch: pytest.MonkeyPatch) -> None:
    """Escape cancels the planning task; the observations it started must not run on."""
    monkeypatch.setenv("KS_TEST_SLOW_VAULT_TOKEN", "test-token")
    config = load_config(slow_config(tmp_path, blackhole.port, copies=2))
    seen: list[tuple[str, str]] = []
    rt = Runtime(config)
    try:
        task = asyncio.create_task(make_plan(
            rt, load_runbook("kill-switch", config), select(config.integrations, ["app-0"]),
            ["app-0"], progress=lambda event, backend: seen.append((event, backend))))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        # the fake's three (evidence, flag, key) and the evidence rows of both vault copies
        # (planned without a call), not the vault's two disables
        while [e for e, _ in seen].count("finished") < 5:
            assert loop.time() < deadline, seen
            await asyncio.sleep(0.01)
        observing = [t for t in asyncio.all_tasks()
                     if getattr(t.get_coro(), "__qualname__", "") == "_tracked"]
        assert len(observing) == 2  # the others ended; both copies in vault are held
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _, running = await asyncio.wait(observing, timeout=10)
        assert not running, "an observation ran on after its planning was cancelled"
        assert all(t.cancelled() for t in observing)
    finally:
        blackhole.close()
        rt.close()
    assert seen.count(("finished", "vault-slow")) == 2  # the two evidence rows only


def test_planning_text() -> None:
    assert planning_text("kill-switch", 2, 5, 9, ["openai", "vault"]) == (
        "planning kill-switch for 2 integrations · 5/9 targets observed · waiting on "
        "openai, vault (Esc cancels)")
    assert planning_text("flags-off", 1, 0, 0, []) == (
        "planning flags-off for 1 integration · reading the runbook (Esc cancels)")
    many = planning_text("kill-switch", 9, 1, 9, [f"b{i}" for i in range(6)])
    assert "waiting on b0, b1, b2, b3 and 2 more" in many
    assert "9/9 targets observed · writing the plan" in planning_text("x", 9, 9, 9, [])
