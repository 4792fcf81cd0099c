"""Pilot tests of the incident flows, on real parts: OpenBao, a flag file, the fake backend.

Built through the production factory (`make_app`); keys drive every step a user takes.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import hvac
import pytest

from console.audit import AuditLog
from console.tui.app import make_app
from tests.servers import BaoServer
from tests.tui.flow_helpers import (
    VAULT_CONFIG,
    cells,
    pick_runbook,
    switches,
    text,
    type_text,
    wait_for,
    wait_screen,
    write_fake_config,
)

SIZE = (120, 40)


# -- the real world: OpenBao dev server + flag file ---------------------------------------
@pytest.fixture
def world(bao: BaoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """support-bot's key planted in a fresh KV v2 mount, its flag on, a config in tmp_path."""
    client = hvac.Client(url=bao.url, token=bao.token)
    mount = "tui-" + secrets.token_hex(4)
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    canary = "sk-proj-" + secrets.token_urlsafe(36)
    client.secrets.kv.v2.create_or_update_secret(path="ai/support-bot/openai",
                                                 secret={"api_key": canary}, mount_point=mount)
    flags = {"flags": {name: {"state": "ENABLED", "variants": {"on": True, "off": False},
                              "defaultVariant": "on", "targeting": {}}
                       for name in ("support-bot-enabled", "code-helper-enabled")}}
    (tmp_path / "flags.json").write_text(json.dumps(flags))
    config = tmp_path / "config.toml"
    config.write_text(VAULT_CONFIG.format(url=bao.url, mount=mount))
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", bao.token)
    monkeypatch.setenv("KILLSWITCH_OPERATOR", "ic-on-call")
    monkeypatch.delenv("KILLSWITCH_AUDIT_KEY", raising=False)

    def app_reads() -> str | None:
        try:
            data = client.secrets.kv.v2.read_secret_version(
                path="ai/support-bot/openai", mount_point=mount, raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            return None
        return str(data["data"]["data"]["api_key"])

    def flag(name: str = "support-bot-enabled") -> str:
        return str(json.loads((tmp_path / "flags.json").read_text())
                   ["flags"][name]["defaultVariant"])

    yield {"root": tmp_path, "config": config, "canary": canary, "reads": app_reads,
           "flag": flag}
    client.sys.disable_secrets_engine(mount)


async def confirm(pilot: Any, typed: str, reason: str) -> None:
    """Fill the confirmation: typed id, tab, reason, enter."""
    await wait_screen(pilot, "ConfirmRunModal")
    await type_text(pilot, typed)
    await pilot.press("tab")
    await type_text(pilot, reason)
    await pilot.press("enter")


async def test_whole_flow_kill_verify_audit_restore_on_openbao(world: Any) -> None:
    app = make_app(world["config"], mode="live", incident="INC-42")
    async with app.run_test(size=SIZE) as pilot:
        # inventory: filter to prod, mark the row, open the runbook picker
        await wait_screen(pilot, "InventoryScreen")
        await pilot.press("slash")
        await type_text(pilot, "env=prod")
        await pilot.press("escape")
        await pilot.press("space")
        assert app.marked == frozenset({"support-bot"})
        await pilot.press("r")
        await wait_screen(pilot, "RunbookScreen")
        assert "support-bot" in text(app, "#runbook-header")
        listed = [rb.name for rb in app.screen.runbooks]
        assert "kill-switch" in listed and "restore" not in listed

        # runbook -> plan (read-only: nothing changed yet)
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        rows = cells(app, "#plan-table")
        # what decides first: undo, status, then the target and its before -> after
        assert ["", "", "support-bot / flags-off", "flag.disable"] in rows
        diffs = {r[2].strip(): r for r in rows}
        assert diffs["flags:support-bot-enabled"][0] == "reversible"
        assert any("credential.disable" in r[3] for r in rows)
        assert world["reads"]() == world["canary"]
        assert "LIVE PLAN" in text(app, "#plan-header")

        # confirm -> run -> verify
        await pilot.press("a")
        await confirm(pilot, "support-bot", "key pasted in a public ticket")
        await wait_screen(pilot, "RunScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
        verdict = text(app, "#run-verdict")
        assert verdict.startswith("OK — every change applied and verified"), verdict
        run_rows = cells(app, "#run-table")
        assert {r[3]: (r[0], r[1]) for r in run_rows if r[3] != "proof"} == {
            "evidence.preserve": ("done (applied)", "preserved"),
            "flag.disable": ("done (applied)", "off"),
            "credential.disable": ("done (applied)", "dead")}
        log = "\n".join(str(line.text) for line in app.screen.query_one("#run-log").lines)
        assert "done (applied)" in log and "verify" in log
        run_id = app.screen.plan.run_id
        assert world["reads"]() is None
        assert world["flag"]() == "off"
        assert world["flag"]("code-helper-enabled") == "on"

        # audit: the run is there, chain OK; its report opens
        await pilot.press("A")
        await wait_screen(pilot, "AuditScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: "Chain OK" in text(app, "#audit-chain"), what="chain")
        runs = cells(app, "#audit-runs")
        assert runs[0][0] == run_id and runs[0][-1] == "finished"
        await pilot.press("o")
        await wait_screen(pilot, "ReportScreen")
        assert run_id in app.screen.markdown
        assert world["canary"] not in app.screen.markdown
        await pilot.press("escape")
        await wait_screen(pilot, "AuditScreen")

        # search: by integration and outcome
        await pilot.press("slash")
        await type_text(pilot, "outcome=applied")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: all(r[4] == "applied"
                                          for r in cells(app, "#audit-events")), what="filter")
        assert len(cells(app, "#audit-events")) == 3  # evidence, flag, key
        await pilot.press("enter", "escape")  # leave the filter, then clear it
        await app.workers.wait_for_complete()

        # restore from the audit screen: plan -> confirm -> run
        await pilot.press("u")
        await wait_screen(pilot, "PlanScreen")
        assert app.screen.plan.restore_of == run_id
        assert "RESTORE of run" in text(app, "#plan-header")
        await pilot.press("a")
        await confirm(pilot, "support-bot", "key rotated, all clear")
        await wait_screen(pilot, "RunScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: app.screen.result is not None, what="restore result")
        assert text(app, "#run-verdict").startswith("OK"), text(app, "#run-verdict")
        assert [r[1] for r in cells(app, "#run-table")] == ["restored", "restored"]

    assert world["reads"]() == world["canary"]
    assert world["flag"]() == "on"
    log = AuditLog(world["root"] / "audit.db")
    assert log.verify().ok
    raw = (world["root"] / "audit.db").read_bytes()
    assert world["canary"].encode() not in raw


async def test_wrong_typed_id_is_refused_and_nothing_runs(world: Any) -> None:
    app = make_app(world["config"], mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["support-bot"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await confirm(pilot, "support-bo", "typo")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmRunModal"
        error = text(app, "#confirm-error")
        assert "Refused: you typed 'support-bo', expected 'support-bot'" in error
        assert "Nothing was run" in error
        # an empty reason is refused too
        field = app.screen.query_one("#confirm-id")
        field.value = "support-bot"
        app.screen.query_one("#confirm-reason").value = ""
        await pilot.press("ctrl+r")
        assert "reason is required" in text(app, "#confirm-error")
        await pilot.press("escape")
        await wait_screen(pilot, "PlanScreen")
    assert world["reads"]() == world["canary"]
    assert world["flag"]() == "on"
    events = AuditLog(world["root"] / "audit.db").events()
    assert events and all(e["phase"] == "plan" for e in events)


# -- the fake backend ---------------------------------------------------------------------
def journal_consistent(events: list[dict[str, Any]]) -> None:
    """Every apply 'started' is followed by an end event of the same operation."""
    open_ops: set[str] = set()
    for e in events:
        if e["phase"] != "apply":
            continue
        if e["outcome"] == "started":
            open_ops.add(e["op_id"])
        elif e["outcome"] != "retrying":
            open_ops.discard(e["op_id"])
    assert not open_ops, f"started without an end: {open_ops}"


async def test_cancel_mid_run_keeps_the_journal_consistent_then_resume(tmp_path: Path) -> None:
    # The fake holds every apply at a gate the test opens: the cancel lands while the first
    # apply is provably in flight, however slow the machine (no timing window).
    gate = tmp_path / "apply-gate"
    entered = tmp_path / "apply-gate.entered"
    config = write_fake_config(tmp_path, 3, backend=f'gate_file = "{gate}"')
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0", "app-1", "app-2"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await confirm(pilot, "3", "runaway agent loop")
        await wait_screen(pilot, "RunScreen")
        run = app.screen
        await wait_for(pilot, entered.exists, what="first apply held at the gate")
        # the evidence came first (copies: no apply, no gate); no kill has ended yet
        assert run.running and all("/preserve-evidence/" in op for op in run.final)
        await pilot.press("c")
        await wait_screen(pilot, "ConfirmCancelModal")
        await pilot.press("y")
        await wait_screen(pilot, "RunScreen")
        await wait_for(pilot, lambda: run.cancel_requested, what="cancel requested")
        assert run.running and all("/preserve-evidence/" in op for op in run.final)
        gate.touch()  # the in-flight apply finishes; nothing else starts
        await wait_for(pilot, lambda: run.result is not None, what="cancelled result")
        assert run.result.cancelled
        verdict = text(app, "#run-verdict")
        assert verdict.startswith("CANCELLED"), verdict
        states = {r[2]: r[0] for r in cells(app, "#run-table")}
        assert "skipped" in states.values(), states

        log = AuditLog(tmp_path / "audit.db")
        events = log.events(run_id=run.plan.run_id)
        journal_consistent(events)
        skipped = [e for e in events if e["outcome"] == "skipped"]
        assert skipped and all(e["detail"]["message"] for e in skipped)
        assert any(e["phase"] == "run" and e["outcome"] == "cancelled" for e in events)
        keys = [switches().get(f"app-{i}-key", "on") for i in range(3)]
        assert "on" in keys, (states, switches())  # skipped keys were never touched

        # resume finishes what was skipped, without repeating anything
        await pilot.press("u")
        await wait_for(pilot, lambda: run.result is not None and not run.running
                       and not run.result.cancelled, what="resumed result")
        assert text(app, "#run-verdict").startswith("OK"), text(app, "#run-verdict")
        ops = [r for r in cells(app, "#run-table") if r[3] != "proof"]
        assert len(ops) == 9 and {r[0] for r in ops} <= {"done (applied)", "done (noop)"}
    assert switches() == {f"app-{i}-{k}": "off" for i in range(3) for k in ("flag", "key")}
    from adapters.fake import FakeAdapter

    applied = [a["key"] for a in FakeAdapter._memory["sim"]["applied"]]
    assert sorted(applied) == sorted(set(applied)) and len(applied) == 6
    events = AuditLog(tmp_path / "audit.db").events(run_id=run.plan.run_id)
    journal_consistent(events)
    assert AuditLog(tmp_path / "audit.db").verify().ok


async def test_irreversible_changes_need_the_explicit_toggle(tmp_path: Path) -> None:
    config = write_fake_config(tmp_path, 1)
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "destroy-keys")
        await wait_screen(pilot, "PlanScreen")
        assert app.screen.has_class("-irreversible")
        rows = {r[2].strip(): r for r in cells(app, "#plan-table")}
        assert rows["sim:app-0-key"][0] == "IRREVERSIBLE"
        assert rows["sim:app-0-flag"][0] == "reversible"
        await pilot.press("a")
        await confirm(pilot, "app-0", "key sold on a forum")
        assert type(app.screen).__name__ == "ConfirmRunModal"
        assert "tick the box" in text(app, "#confirm-error")
        assert switches().get("app-0-key", "on") == "on"
        app.screen.query_one("#confirm-irreversible").focus()
        await pilot.press("space")
        await pilot.press("ctrl+r")
        await wait_screen(pilot, "RunScreen")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: app.screen.result is not None, what="run result")
        assert text(app, "#run-verdict").startswith("OK")
    assert switches() == {"app-0-flag": "off", "app-0-key": "off"}
    started = [e for e in AuditLog(tmp_path / "audit.db").events()
               if e["phase"] == "run" and e["outcome"] == "started"]
    assert len(started) == 1


async def test_dry_run_plan_cannot_be_applied_and_changes_nothing(tmp_path: Path) -> None:
    config = write_fake_config(tmp_path, 2)
    app = make_app(config, mode="dry-run")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0", "app-1"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        header = text(app, "#plan-header")
        assert header.startswith("DRY-RUN changes nothing anywhere: nothing was changed")
        assert "switch to LIVE (ctrl+l, type LIVE)" in header
        assert app.screen.check_action("apply_plan", ()) is None
        await pilot.press("a")
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "PlanScreen"
        statuses = {r[1] for r in cells(app, "#plan-table") if r[2].startswith("  ")}
        assert statuses == {"observed"}
    assert switches() == {}  # nothing was ever switched
    events = AuditLog(tmp_path / "audit.db").events()
    assert {e["mode"] for e in events} == {"dry-run"}
    assert not [e for e in events if e["phase"] in ("run", "apply")]


async def test_planning_error_is_shown_not_raised(tmp_path: Path) -> None:
    config = write_fake_config(tmp_path, 1)
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        (tmp_path / "runbooks" / "destroy-keys.toml").write_text("name = [broken")
        app.open_runbooks(["app-0"])
        await wait_screen(pilot, "RunbookScreen")
        await pilot.pause()
        status = text(app, "#runbook-status")
        assert "Cannot load 1 runbook(s): destroy-keys" in status
        assert "kill-switch" in [rb.name for rb in app.screen.runbooks]  # the others stay


async def test_lock_held_is_shown_with_who_and_since(tmp_path: Path) -> None:
    from console.engine.locks import LockTable

    config = write_fake_config(tmp_path, 1)
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0"])
        await pick_runbook(pilot, "flags-off")
        await wait_screen(pilot, "PlanScreen")
        LockTable(tmp_path / "audit.db").acquire(["app-0"], "r-other", "alice",
                                                 "2025-01-01T00:00:00Z")
        await pilot.press("a")
        await confirm(pilot, "app-0", "x")
        await wait_screen(pilot, "RunScreen")
        await wait_for(pilot, lambda: app.screen.failed_error is not None, what="refusal")
        verdict = text(app, "#run-verdict")
        assert verdict.startswith("REFUSED — nothing was changed")
        assert "alice" in verdict and "2025-01-01" in verdict
        assert app.screen.check_action("resume_run", ()) is None
    assert switches() == {}


async def test_quit_is_refused_while_a_run_is_in_progress(tmp_path: Path) -> None:
    config = write_fake_config(tmp_path, 2, backend="apply_latency = 0.4")
    app = make_app(config, mode="live")
    async with app.run_test(size=SIZE) as pilot:
        await wait_screen(pilot, "InventoryScreen")
        app.open_runbooks(["app-0", "app-1"])
        await pick_runbook(pilot, "kill-switch")
        await wait_screen(pilot, "PlanScreen")
        await pilot.press("a")
        await confirm(pilot, "2", "quit test")
        await wait_screen(pilot, "RunScreen")
        run = app.screen
        await pilot.press("q")  # asks (tests/tui/test_guards.py); n keeps the run going
        await wait_screen(pilot, "ConfirmQuitModal")
        await pilot.press("n")
        await wait_screen(pilot, "RunScreen")
        await pilot.press("i")
        await pilot.pause()
        assert app.is_running and type(app.screen).__name__ == "RunScreen"
        assert any("run is in progress" in n.message for n in app._notifications)
        await wait_for(pilot, lambda: run.result is not None, what="run finished")
        await pilot.press("q")
    assert run.result.exit_code() == 0
