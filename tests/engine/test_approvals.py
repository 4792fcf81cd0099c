"""The two-person rule's approvals store, on SQLite and on PostgreSQL (one API, two stores).

What a commander would notice: nobody approves their own request (not by claiming another
name either), of two approvers racing exactly one wins, an approval is spent once, a voided
or used one cannot be approved or used again, every state change is in the audit trail, and
a live run under the rule applies nothing until it is approved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import Config
from console.engine.service import Session
from console.engine.twoperson import ApprovalRequired, needs_approval
from console.errors import AuditError, Refused, UsageError
from console.identity import Identity
from console.store.approvals import Approvals, PgApprovals, SqliteApprovals
from tests.engine.conftest import applied

ALICE = Identity("alice", "laptop-a", "alice(1000)")
BOB = Identity("bob", "laptop-b", "bob(1001)")
CAROL = Identity("carol", "laptop-c", "carol(1002)")
SECRET = "sk-proj-" + "Abc123Xyz789" * 4


class Sink:
    """An audit trail that keeps the events (optionally refusing to store them)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = False
        self.lock = threading.Lock()

    def append_many(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.fail:
            raise AuditError("the trail cannot be written")
        with self.lock:
            self.events.extend(events)
        return events

    def actions(self) -> list[str]:
        return [e["action"] for e in self.events]


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[Callable[[Sink], Approvals]]:
    """A factory of store objects, all on one store (a new object: another commander)."""
    opened: list[Approvals] = []
    if request.param == "sqlite":
        def make(sink: Sink) -> Approvals:
            opened.append(SqliteApprovals(tmp_path / "audit.db", audit=sink))
            return opened[-1]
    else:
        url = request.getfixturevalue("pg_url")

        def make(sink: Sink) -> Approvals:
            opened.append(PgApprovals(url, audit=sink))
            return opened[-1]
    yield make
    for store in opened:
        store.close()


def ask(store: Approvals, requester: Identity = ALICE, **kw: Any) -> Any:
    return store.request(plan='{"plan": "text"}', plan_hash="ab" * 32, runbook="contain",
                         integrations=["app-0"], requester=requester, incident="INC-1",
                         cause="leak", plan_run_id="r-1", **kw)


def test_a_request_is_pending_and_recorded_without_the_plan(
        make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    a = ask(store, reason="key leaked")
    assert (a.status, a.kind, a.requester) == ("pending", "approval", ALICE)
    assert [p.id for p in store.pending()] == [a.id]
    again = make_store(Sink()).get(a.id)  # another commander reads the same row
    assert again == a and again.integrations == ("app-0",)
    (event,) = sink.events
    assert event["action"] == "approval.requested" and event["target"] == a.id
    assert event["detail"]["plan_hash"] == "ab" * 32 and "plan" not in event["detail"]
    assert event["operator"] == "alice" and event["host"] == "laptop-a"
    pasted = ask(store, reason=f"leaked: {SECRET}")  # a reason is free text: scrubbed
    assert SECRET not in pasted.request_reason and "REDACTED" in pasted.request_reason
    assert SECRET not in repr(store.get(pasted.id)) and SECRET not in repr(sink.events)
    with pytest.raises(UsageError, match="no approval 'apr-nope'"):
        store.get("apr-nope")


def test_the_requester_cannot_approve_under_their_own_name(
        make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    a = ask(store)
    elsewhere = Identity("alice", "other-host", "other(5)")  # the same name from anywhere
    with pytest.raises(Refused, match="same operator") as err:
        store.approve(a.id, elsewhere, "lgtm")
    assert err.value.exit_code == 3
    assert store.get(a.id).status == "pending"
    assert sink.actions()[-1] == "approval.refused"


def test_another_name_on_the_same_host_and_os_user_is_the_same_person(
        make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    a = ask(store)
    mallory = Identity("totally-not-alice", ALICE.host, ALICE.os_user)
    with pytest.raises(Refused, match="same OS user .* on the same host"):
        store.approve(a.id, mallory, "lgtm")
    assert store.get(a.id).status == "pending"
    refused = sink.events[-1]
    assert refused["operator"] == "totally-not-alice"
    assert "whatever operator name" in refused["detail"]["refused"]


def test_a_second_operator_approves_once(make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    a = ask(store)
    with pytest.raises(UsageError, match="needs a reason"):
        store.approve(a.id, BOB, "  ")
    done = store.approve(a.id, BOB, "checked the plan")
    assert (done.status, done.approver, done.reason) == ("approved", BOB, "checked the plan")
    assert store.get(a.id) == done and store.pending() == []
    assert [x.id for x in store.list(all=True)] == [a.id]
    with pytest.raises(Refused, match="already approved by bob"):
        store.approve(a.id, CAROL, "me too")
    assert sink.actions() == ["approval.requested", "approval.approved", "approval.refused"]


def test_two_racing_approvers_exactly_one_wins(
        make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    a = ask(make_store(sink))
    approvers = [Identity(f"op{i}", f"host{i}", f"u{i}(1)") for i in range(6)]
    stores = [make_store(sink) for _ in approvers]  # one connection each
    for s in stores:
        s.find(a.id)  # connected and ready before the race starts
    gate = threading.Barrier(len(approvers))
    won: list[str] = []
    lost: list[str] = []

    def go(store: Approvals, who: Identity) -> None:
        gate.wait()
        try:
            store.approve(a.id, who, "race")
            won.append(who.operator)
        except Refused as exc:
            lost.append(exc.msg)

    threads = [threading.Thread(target=go, args=pair) for pair in zip(stores, approvers,
                                                                       strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1 and len(lost) == len(approvers) - 1
    final = stores[0].get(a.id)
    assert final.status == "approved" and final.approver is not None
    assert final.approver.operator == won[0]
    assert all("not pending" in m for m in lost)
    assert sink.actions().count("approval.approved") == 1


def test_used_once_and_void_is_final(make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    a = ask(store)
    with pytest.raises(Refused, match="not approved yet"):
        store.mark_used(a.id, "r-1")
    store.approve(a.id, BOB, "ok")
    used = store.mark_used(a.id, "r-1", by=ALICE)
    assert (used.status, used.run_id) == ("used", "r-1")
    with pytest.raises(Refused, match="already used by run r-1"):
        store.mark_used(a.id, "r-2")
    with pytest.raises(Refused, match="cannot be voided"):
        store.void(a.id, "too late")
    event = sink.events[-1]
    assert (event["action"], event["run_id"]) == ("approval.used", "r-1")

    b = ask(store)
    store.approve(b.id, BOB, "ok")
    void = store.void(b.id, "the plan drifted", by=BOB)
    assert (void.status, void.void_reason) == ("void", "the plan drifted")
    with pytest.raises(Refused, match="void"):
        store.mark_used(b.id, "r-3")
    with pytest.raises(Refused, match="void"):
        store.approve(b.id, CAROL, "ok")
    assert store.get(b.id).status == "void"
    assert "approval.void" in sink.actions()


def test_a_break_glass_cosign_is_pending_until_another_operator_signs(
        make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    c = ask(store, kind="cosign", run_id="r-9", reason="prod on fire")
    assert (c.kind, c.status, c.run_id) == ("cosign", "pending", "r-9")
    event = sink.events[-1]
    assert (event["action"], event["run_id"], event["outcome"]) == (
        "approval.break_glass", "r-9", "break-glass")
    assert event["detail"]["reason"] == "prod on fire"
    assert [p.id for p in store.pending()] == [c.id]
    with pytest.raises(Refused, match="cannot be voided"):
        store.void(c.id, "never mind")  # a break-glass's debt is not waived
    with pytest.raises(Refused, match="same operator"):
        store.approve(c.id, ALICE, "I co-sign myself")
    with pytest.raises(Refused, match="cannot be used"):
        store.mark_used(c.id, "r-10")
    signed = store.approve(c.id, BOB, "was right to act")
    assert signed.status == "approved" and store.pending() == []
    assert sink.events[-1]["action"] == "approval.cosigned"
    assert sink.events[-1]["run_id"] == "r-9"


def test_a_change_the_trail_cannot_record_is_undone(
        make_store: Callable[[Sink], Approvals]) -> None:
    sink = Sink()
    store = make_store(sink)
    a = ask(store)
    sink.fail = True
    with pytest.raises(AuditError):
        store.approve(a.id, BOB, "ok")
    assert store.get(a.id).status == "pending"
    with pytest.raises(AuditError):
        ask(store)
    assert [p.id for p in store.pending()] == [a.id]  # no request left without its event


@pytest.mark.sqlite_only
def test_the_default_trail_is_the_audit_file(tmp_path: Path) -> None:
    from console.audit import AuditLog

    store = SqliteApprovals(tmp_path / "audit.db")
    a = ask(store)
    store.approve(a.id, BOB, "ok")
    store.close()
    with AuditLog(tmp_path / "audit.db", readonly=True) as log:
        assert [e["action"] for e in log.events()] == ["approval.requested",
                                                      "approval.approved"]
        assert log.verify().ok


def test_the_default_trail_of_the_shared_store(pg_url: str) -> None:
    from console.store.pg_audit import PgAuditLog

    store = PgApprovals(pg_url)
    a = ask(store)
    store.approve(a.id, BOB, "ok")
    store.close()
    log = PgAuditLog(pg_url, readonly=True)
    try:
        assert [e["action"] for e in log.events()] == ["approval.requested",
                                                      "approval.approved"]
        assert log.verify().ok
    finally:
        log.close()


# -- the policy and the engine's gate ---------------------------------------------------------
def _with(config: Config, rule: str) -> Config:
    return config.model_copy(update={"settings": config.settings.model_copy(
        update={"two_person": rule})})


def test_policy(make_config: Callable[..., Config]) -> None:
    config = make_config(n=2)
    session = Session(config, operator="alice")
    try:
        plan = session.sync(session.plan("contain", ["app-0"]))
        destroy = session.sync(session.plan("destroy", ["app-1"]))
    finally:
        session.close()
        session.audit.close()
    assert needs_approval(plan, _with(config, "off")) is None
    assert "every live run" in (needs_approval(plan, _with(config, "all")) or "")
    assert "production: app-0" in (needs_approval(plan, _with(config, "prod")) or "")
    assert needs_approval(plan, _with(config, "irreversible")) is None
    assert "cannot be undone" in (needs_approval(destroy, _with(config, "irreversible")) or "")
    for mode in ("dry-run", "plan", "rehearsal", "exercise"):
        assert needs_approval(plan, _with(config, "all"), mode) is None


def test_a_live_run_under_the_rule_applies_nothing_and_requests_an_approval(
        make_config: Callable[..., Config]) -> None:
    config = _with(make_config(n=2), "all")
    session = Session(config, operator="alice", incident="INC-7")
    try:
        plan = session.sync(session.plan("contain", ["app-0"]))
        with pytest.raises(ApprovalRequired) as err:
            session.sync(session.apply(plan, reason="leak"))
        assert err.value.exit_code == 3 and applied() == []
        a = err.value.approval
        assert a.plan_hash == plan.hash and a.plan_run_id == plan.run_id
        assert a.incident == "INC-7" and a.request_reason == "leak"
        assert "killswitch approve" in err.value.hint
        assert session.audit.events(run_id=plan.run_id, outcome="started") == []

        def spent() -> None:
            raise Refused("approval already used")

        with pytest.raises(Refused, match="already used"):
            session.sync(session.apply(plan, reason="leak", authorise=spent))
        assert applied() == []
        assert session.locks.held() == []
    finally:
        session.close()
        session.audit.close()
