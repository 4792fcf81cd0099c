"""Locks that tell the truth, on both stores: all or none, the holder named, fencing tokens
that only increase, leases that end, takeovers, and a stale holder fenced off."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple
from pathlib import Path

import pytest

from console.engine.locks import Lock, LockStore, LockTable, RunFence
from console.errors import LockHeld
from console.store.pg_locks import PgLockTable

Make = Callable[..., LockStore]
SINCE = "2026-11-27T03:00:00Z"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Make]]:
    """(kind, where, make): ``make(lease=...)`` opens another commander's view of one store."""
    made: list[LockStore] = []
    if request.param == "sqlite":
        where = str(tmp_path / "audit.db")

        def make(lease: float = 60.0) -> LockStore:
            table = LockTable(where, lease=lease)
            made.append(table)
            return table
    else:
        where = request.getfixturevalue("pg_url")

        def make(lease: float = 60.0) -> LockStore:
            table = PgLockTable(where, lease=lease)
            made.append(table)
            return table
    yield request.param, where, make
    for table in made:
        if isinstance(table, PgLockTable):
            table.close()


def on(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """Act as a commander on ``host`` (what the locks record and compare)."""
    monkeypatch.setenv("KILLSWITCH_HOST", host)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        time.sleep(0.02)


def expired(table: LockStore, integration: str) -> Callable[[], bool]:
    """True once the lock on ``integration`` counts as a dead holder's from here."""
    def check() -> bool:
        row = next((lk for lk in table.held() if lk.integration == integration), None)
        return row is not None and table.holder_gone(row)
    return check


def test_acquire_is_all_or_none_and_the_refusal_names_the_holder(
        store: tuple[str, str, Make], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, make = store
    alice, bob = make(), make()
    on(monkeypatch, "host-a")
    alice.acquire(["app-1"], "r-alice", "alice", SINCE)
    on(monkeypatch, "host-b")
    with pytest.raises(LockHeld) as err:
        bob.acquire(["app-0", "app-1", "app-2"], "r-bob", "bob", "2026-11-27T04:00:00Z")
    assert err.value.exit_code == 3 and err.value.where == "app-1"
    msg = str(err.value)
    for word in ("run r-alice", "alice on host-a", f"pid {os.getpid()}", f"since {SINCE}",
                 "killswitch resume r-alice", "lease until 20"):
        assert word in msg, msg
    # none of bob's three were taken: app-0 and app-2 are still free
    assert [(lk.integration, lk.run_id) for lk in bob.held()] == [("app-1", "r-alice")]
    bob.acquire(["app-0", "app-2"], "r-bob", "bob", SINCE)
    assert sorted(lk.integration for lk in alice.held()) == ["app-0", "app-1", "app-2"]


def test_tokens_only_increase_across_acquires_releases_and_takeovers(
        store: tuple[str, str, Make], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, make = store
    tokens: list[int] = []
    a, b = make(lease=0.2), make(lease=0.2)
    on(monkeypatch, "host-a")
    a.acquire(["app-0", "app-1"], "r-1", "alice", SINCE)
    tokens.append(a.mine("r-1")["app-0"].token)
    assert a.mine("r-1")["app-1"].token == tokens[-1]  # one acquire, one token
    a.acquire(["app-2"], "r-2", "alice", SINCE)
    tokens.append(a.mine("r-2")["app-2"].token)
    a.release("r-2")
    a.acquire(["app-2"], "r-3", "alice", SINCE)  # the same integration again: a new token
    tokens.append(a.mine("r-3")["app-2"].token)
    on(monkeypatch, "host-b")
    wait_until(expired(b, "app-0"))  # host-a stopped renewing
    stale = b.acquire(["app-0"], "r-4", "bob", SINCE)
    assert [(s.run_id, s.token) for s in stale] == [("r-1", tokens[0])]
    tokens.append(b.mine("r-4")["app-0"].token)
    assert tokens == sorted(set(tokens)), tokens
    assert {lk.integration: lk.token for lk in b.held()} == {
        "app-0": tokens[3], "app-1": tokens[0], "app-2": tokens[2]}


def test_a_lease_that_ends_is_taken_over_and_the_old_holder_is_fenced_off(
        store: tuple[str, str, Make], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, make = store
    alice, bob = make(lease=0.6), make(lease=0.6)
    on(monkeypatch, "host-a")
    alice.acquire(["app-0"], "r-1", "alice", SINCE)
    alice.fence("r-1")  # holds
    on(monkeypatch, "host-b")
    with pytest.raises(LockHeld, match="alice on host-a"):  # the lease still runs
        bob.acquire(["app-0"], "r-1", "bob", SINCE)  # a resume of the same run
    wait_until(expired(bob, "app-0"))
    [old] = bob.acquire(["app-0"], "r-1", "bob", SINCE)
    assert (old.host, old.operator) == ("host-a", "alice")
    new = bob.mine("r-1")["app-0"]
    assert new.token > old.token and new.host == "host-b"
    # alice wakes up: every way she could act is refused, naming bob
    on(monkeypatch, "host-a")
    for act in (alice.fence, alice.renew):
        with pytest.raises(LockHeld) as err:
            act("r-1")
        assert "resumed elsewhere" in err.value.msg and "bob on host-b" in err.value.msg
        assert f"token {new.token}" in err.value.msg
    alice.release("r-1")  # drops nothing of bob's
    assert [(lk.operator, lk.token) for lk in bob.held()] == [("bob", new.token)]
    bob.fence("r-1")


def test_renewal_keeps_the_lock_past_its_first_lease(
        store: tuple[str, str, Make], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, make = store
    alice, bob = make(lease=0.5), make(lease=0.5)
    on(monkeypatch, "host-a")
    alice.acquire(["app-0"], "r-1", "alice", SINCE)
    first = alice.mine("r-1")["app-0"].lease_until

    async def hold() -> RunFence:
        fence = RunFence(alice, "r-1")
        keeper = asyncio.create_task(fence.keep())
        await asyncio.to_thread(wait_until, lambda: time.time() > first + 0.3)
        keeper.cancel()
        return fence

    fence = asyncio.run(hold())
    assert fence.lost is None
    on(monkeypatch, "host-b")
    [row] = bob.held()
    assert row.lease_until > first
    with pytest.raises(LockHeld, match="alice on host-a"):
        bob.acquire(["app-0"], "r-2", "bob", SINCE)


def test_release_drops_only_the_holders_own_locks(
        store: tuple[str, str, Make], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, make = store
    alice, bob = make(), make()
    on(monkeypatch, "host-a")
    alice.acquire(["app-0"], "r-1", "alice", SINCE)
    on(monkeypatch, "host-b")
    bob.release("r-1")  # someone else naming alice's run
    bob.acquire(["app-1"], "r-2", "bob", SINCE)
    bob.release("r-2")
    assert [(lk.integration, lk.run_id) for lk in alice.held()] == [("app-0", "r-1")]
    on(monkeypatch, "host-a")
    alice.release("r-1")
    assert alice.held() == []


def test_a_removed_lock_fences_the_run_too(store: tuple[str, str, Make]) -> None:
    _, _, make = store
    table = make()
    table.acquire(["app-0", "app-1"], "r-1", "alice", SINCE)
    other = make()
    other.plant(Lock("app-1", "EX-LOCK-1", "mallory", "elsewhere", 1, SINCE), lambda _r: True)
    with pytest.raises(LockHeld, match="mallory on elsewhere"):
        table.fence("r-1")
    assert other.drop("app-1", "EX-LOCK-") == 1
    with pytest.raises(LockHeld, match="the lock on app-1 is gone"):
        table.fence("r-1")


def test_concurrent_acquires_of_one_integration_let_exactly_one_win(
        store: tuple[str, str, Make]) -> None:
    _, _, make = store
    tables = [make() for _ in range(6)]
    wins: list[str] = []
    refused: list[str] = []
    go = threading.Barrier(len(tables))

    def one(n: int) -> None:
        go.wait()
        try:
            tables[n].acquire(["app-0", f"own-{n}"], f"r-{n}", f"op{n}", SINCE)
            wins.append(f"r-{n}")
        except LockHeld as exc:
            refused.append(exc.msg)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(tables))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(refused) == len(tables) - 1
    assert all(f"locked by run {wins[0]}" in m for m in refused)
    held = {lk.integration: lk.run_id for lk in tables[0].held()}
    assert held == {"app-0": wins[0], f"own-{wins[0][2:]}": wins[0]}  # all or none


def test_fence_checks_are_shared_but_never_stale(store: tuple[str, str, Make]) -> None:
    _, _, make = store
    table = make()
    table.acquire(["app-0"], "r-1", "alice", SINCE)

    fence = RunFence(table, "r-1")
    go = threading.Barrier(50)

    def side_effect() -> None:  # as the executor's workers do, right before the call
        go.wait()
        fence.check_sync()

    workers = [threading.Thread(target=side_effect) for _ in range(50)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert 1 <= fence.checks <= 10, fence.checks  # fifty at once: a few shared round trips

    async def after_takeover() -> None:
        fence = RunFence(table, "r-1")
        await fence.check()
        make().plant(Lock("app-0", "r-9", "bob", "host-b", 1, SINCE, "", time.time() + 60),
                     lambda _r: True)
        with pytest.raises(LockHeld, match="bob on host-b"):
            await fence.check()  # a check begun before the takeover does not count
        assert fence.lost is not None
        with pytest.raises(LockHeld):
            await fence.check()  # remembered: no new round trip needed

    asyncio.run(after_takeover())


_PAUSED = textwrap.dedent("""
    import asyncio, sys
    from console.engine.locks import LockTable, RunFence
    from console.errors import LockHeld
    from console.store.pg_locks import PgLockTable

    kind, where, effects = sys.argv[1:4]
    table = (LockTable(where, lease=0.6) if kind == "sqlite"
             else PgLockTable(where, lease=0.6))
    table.acquire(["app-0"], "r-paused", "alice", "2026-11-27T03:00:00Z")

    async def apply(n):
        fence = RunFence(table, "r-paused")
        await fence.check()
        with open(effects, "a") as fh:
            fh.write(f"side effect {n}\\n")

    asyncio.run(apply(1))
    print("applied 1", flush=True)
    sys.stdin.readline()  # frozen: a stopped process, a suspended VM, a lost network
    try:
        asyncio.run(apply(2))
    except LockHeld as exc:
        print("REFUSED", exc.msg, flush=True)
        sys.exit(exc.exit_code)
    print("applied 2", flush=True)
""")


def test_a_holder_paused_past_its_lease_cannot_act_after_a_takeover(
        store: tuple[str, str, Make], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kind, where, make = store
    effects = tmp_path / "effects.txt"
    env = {**os.environ, "KILLSWITCH_HOST": "host-a"}
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED, kind, where, str(effects)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "applied 1"
        on(monkeypatch, "host-b")
        bob = make(lease=0.6)
        wait_until(expired(bob, "app-0"))
        [old] = bob.acquire(["app-0"], "r-bob", "bob", SINCE)
        assert old.run_id == "r-paused" and old.host == "host-a"
        proc.stdin.write("wake up\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, out + err
    assert "REFUSED run r-paused lost its lock (taken over)" in out
    assert "locked by run r-bob (bob on host-b" in out
    assert effects.read_text() == "side effect 1\n"  # nothing after the takeover


def test_an_old_sqlite_lock_table_gains_tokens(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE locks (integration TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
                 "operator TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, "
                 "since TEXT NOT NULL)")
    conn.execute("INSERT INTO locks VALUES ('app-0', 'r-old', 'alice', 'gone-host', 1, ?)",
                  (SINCE,))
    conn.commit()
    conn.close()
    table = LockTable(db)
    [old] = table.held()
    assert (old.run_id, old.token, old.lease_until) == ("r-old", 0, 0.0)
    assert table.acquire(["app-0"], "r-new", "bob", SINCE) == [old]  # never renewed: gone
    assert table.mine("r-new")["app-0"].token >= 1


def test_postgresql_locks_hold_no_session_lock_and_stay_in_their_schema(pg_url: str,
                                                                         pg: object) -> None:
    import psycopg

    from console.store.pg_audit import trail_channel
    from tests.pgserver import PgServer

    assert isinstance(pg, PgServer)
    table, neighbour = PgLockTable(pg_url), PgLockTable(pg.fresh_url())
    try:
        with psycopg.connect(pg_url, autocommit=True) as console:  # a watching console
            console.execute(f'LISTEN "{trail_channel(console)}"')
            table.acquire(["app-0"], "r-1", "alice", SINCE)
            heard = [n.payload for n in console.notifies(timeout=5, stop_after=1)]
        assert heard == ["locks"]  # consoles re-read the locks at once
        table.renew("r-1")
        table.fence("r-1")
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                               ).fetchone()
        assert row is not None and row[0] == 0  # transaction-scoped only: nothing left over
        assert neighbour.held() == []  # another schema of the same database
        neighbour.acquire(["app-0"], "r-2", "bob", SINCE)  # no collision either
        assert [lk.run_id for lk in table.held()] == ["r-1"]
    finally:
        table.close()
        neighbour.close()


def test_a_namesake_host_is_judged_by_its_lease_not_by_a_local_pid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two laptops both called "localhost": a holder with this host's name but another boot
    id is another machine, and a pid here says nothing about it."""
    on(monkeypatch, "localhost")
    elsewhere = Lock("app-0", "r-1", "alice", "localhost", 999_999, SINCE,
                     "another-boot-id:12345", time.time() + 60)
    assert not LockTable.holder_gone(elsewhere)  # its lease runs (pid 999999 is not here)
    assert LockTable.holder_gone(Lock(*[*astuple(elsewhere)[:7], time.time() - 1]))
