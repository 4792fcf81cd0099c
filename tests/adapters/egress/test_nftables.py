"""nftables adapter in network namespaces the test creates (root)."""

from __future__ import annotations

import json
import subprocess

import pytest

from adapters.base import PlanContext
from adapters.nftables import NftablesAdapter
from console.errors import AdapterError
from tests.adapters.egress.conftest import Netns, Routed


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


def test_traffic_routed_through_the_host_is_blocked_too(routed: Routed) -> None:
    """Fails with an output-only chain: a client routed through the host still connects."""
    a = NftablesAdapter("fw", {"netns": routed.rtr, "probe_port": routed.port,
                               "probe_timeout": 0.5})
    ref = {"backend": "fw", "destinations": [routed.server_ip]}
    assert routed.connects(routed.cli) and routed.connects(routed.rtr)
    [c] = a.plan("egress.block", ref, PlanContext("bot", "block-egress", run_id="r-fwd"))
    assert "forward hook" in c.note and "output hook" in c.note
    applied = a.apply(c)
    assert not routed.connects(routed.cli), "forwarded traffic (containers, VMs) must drop"
    assert not routed.connects(routed.rtr), "the host's own traffic must drop too"
    assert a.verify(c).ok
    table = json.loads(routed.nft("-j", "list", "table", "inet", "killswitch"))["nftables"]
    hooks = {i["chain"]["name"]: i["chain"]["hook"] for i in table if "chain" in i}
    assert hooks == {"egress": "output", "forward": "forward"}, "one table, both hooks"
    rules = [(i["rule"]["chain"], i["rule"]["comment"]) for i in table if "rule" in i]
    assert sorted(rules) == [("egress", "ks:r-fwd:bot"), ("forward", "ks:r-fwd:bot")]
    assert set(applied["handles"]) == set(applied["forward_handles"]) == {routed.server_ip}

    a.apply(a.inverse(c, applied))
    assert routed.connects(routed.cli) and routed.connects(routed.rtr)
    assert "drop" not in routed.nft("list", "ruleset")


def test_a_destination_dropped_on_one_hook_only_is_completed_and_undone_exactly(
        netns: Netns) -> None:
    """A table from the output-only adapter: the block adds the forward rule, undo only it."""
    script = ("add table inet killswitch\n"
              "add chain inet killswitch egress { type filter hook output priority 0; "
              "policy accept; }\n"
              'add rule inet killswitch egress ip daddr 10.200.0.7 counter drop comment '
              '"ks:r-old:bot"\n')
    subprocess.run(["ip", "netns", "exec", netns.cli, "nft", "-f", "-"], input=script,
                   text=True, check=True, capture_output=True)
    a = NftablesAdapter("fw", {"netns": netns.cli})
    ref = {"backend": "fw", "destinations": ["10.200.0.7"]}
    [c] = a.plan("egress.block", ref, PlanContext("bot", "s", run_id="r-new"))
    assert c.status == "observed" and c.before["blocked"] == []
    applied = a.apply(c)
    assert applied["handles"] == {} and set(applied["forward_handles"]) == {"10.200.0.7"}
    assert a.read(c) == c.after
    a.apply(a.inverse(c, applied))
    assert a.read(c) == c.before
    assert "r-old" in netns.nft("list", "chain", "inet", "killswitch", "egress")
    assert "r-new" not in netns.nft("list", "table", "inet", "killswitch")
    netns.nft("delete", "table", "inet", "killswitch")
