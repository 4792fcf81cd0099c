"""nftables adapter in network namespaces the test creates (root)."""

from __future__ import annotations

import json

import pytest

from adapters.base import PlanContext
from adapters.nftables import NftablesAdapter
from console.errors import AdapterError
from tests.adapters.egress.conftest import Netns


def test_connection_works_before_fails_during_works_after(netns: Netns) -> None:
    a = NftablesAdapter("fw", {"netns": netns.cli, "probe_port": netns.port,
                               "probe_timeout": 0.5})
    a.open()
    ref = {"backend": "fw", "destinations": ["10.200.0.1", "10.200.0.0/24", "localhost"]}
    ctx = PlanContext("bot", "block-egress", run_id="r-nft-1")
    assert netns.connects()

    [c] = a.plan("egress.block", ref, ctx)
    assert "killswitch" not in netns.nft("list", "ruleset"), "plan must not change anything"
    assert c.status == "observed" and c.before["blocked"] == []
    assert "127.0.0.1" in c.after["blocked"] and "resolved to" in c.note
    assert "DNS answers and already-open connections can outlive a block" in c.note

    applied = a.apply(c)
    assert not netns.connects(), "the connection must fail during the block"
    listed = json.loads(netns.nft("-j", "-a", "list", "chain", "inet", "killswitch", "egress"))
    comments = [i["rule"]["comment"] for i in listed["nftables"] if "rule" in i]
    assert comments == ["ks:r-nft-1:bot"] * 3
    assert sorted(applied["handles"]) == sorted(c.after["blocked"])
    v = a.verify(c)
    assert v.ok and v.state == "blocked" and "10.200.0.1:8080 fails" in v.detail, v
    assert a.read(c) == c.after
    assert a.apply(c)["added"] == []  # idempotent
    [again] = a.plan("egress.block", ref, ctx)
    assert again.status == "noop"

    inv = a.inverse(c, applied)
    assert inv.before == c.after and inv.inverse_of == c.op_id
    a.apply(inv)
    v = a.verify(inv)
    assert v.ok and v.state == "restored" and "10.200.0.1:8080 connects" in v.detail, v
    assert a.read(c) == c.before
    assert netns.connects(), "the connection must work again after undo"
    assert "drop" not in netns.nft("list", "ruleset")


def test_undo_deletes_only_its_own_rules(netns: Netns) -> None:
    a = NftablesAdapter("fw", {"netns": netns.cli})
    other = a.plan("egress.block", {"backend": "fw", "destinations": ["10.200.0.9"]},
                   PlanContext("other", "s", run_id="r-other"))[0]
    a.apply(other)
    ref = {"backend": "fw", "destinations": ["10.200.0.1", "10.200.0.9"]}
    [c] = a.plan("egress.block", ref, PlanContext("bot", "s", run_id="r-mine"))
    assert c.before["blocked"] == ["10.200.0.9"]
    applied = a.apply(c)
    a.apply(a.inverse(c, applied))
    assert a.read(c) == {"table": "killswitch", "blocked": ["10.200.0.9"]}
    assert "r-other" in netns.nft("list", "ruleset")
    # standalone unblock removes every ks: rule for its destinations
    [u] = a.plan("egress.unblock", {"backend": "fw", "destinations": ["10.200.0.9"]},
                 PlanContext("other", "s", run_id="r-u"))
    a.apply(u)
    assert a.verify(u).ok and "drop" not in netns.nft("list", "ruleset")


def test_errors_are_adapter_errors(netns: Netns) -> None:
    with pytest.raises(AdapterError, match="does not exist"):
        NftablesAdapter("fw", {"netns": "ks-no-such-ns"}).plan(
            "egress.block", {"backend": "fw", "destinations": ["10.0.0.1"]},
            PlanContext("a", "s"))
    with pytest.raises(AdapterError, match="not found"):
        NftablesAdapter("fw", {"nft": "/nonexistent/nft"}).plan(
            "egress.block", {"backend": "fw", "destinations": ["10.0.0.1"]},
            PlanContext("a", "s"))
    with pytest.raises(AdapterError):
        NftablesAdapter("fw", {"table": "bad name;"})
