"""Squid denylist adapter against a real Squid from Debian on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import PlanContext
from adapters.squid import SquidDenylistAdapter
from console.errors import AdapterError
from tests.adapters.egress.conftest import Squid


def adapter(squid: Squid, **extra: object) -> SquidDenylistAdapter:
    # verify polls until the proxy answers as planned; give a loaded machine time for the
    # reconfigure (tests that want a short wait pass their own verify_wait)
    return SquidDenylistAdapter("proxy", {"denylist": str(squid.denylist),
                                          "reload": squid.reload_cmd(), "proxy": squid.proxy,
                                          "verify_wait": 60, **extra})


def test_allowed_then_denied_then_allowed(squid: Squid) -> None:
    url = f"http://localhost:{squid.dest_port}/"
    original = squid.denylist.read_text()
    a = adapter(squid)
    ref = {"backend": "proxy", "destinations": ["localhost"]}
    ctx = PlanContext("bot", "block-egress", run_id="r-sq")
    assert squid.status(url) == 200

    [c] = a.plan("egress.block", ref, ctx)
    assert squid.denylist.read_text() == original, "plan must not change anything"
    assert c.before == {"denied": []} and c.after == {"denied": ["localhost"]}
    assert "DNS answers and already-open connections can outlive a block" in c.note

    applied = a.apply(c)
    assert applied["added"] == ["localhost"]
    assert squid.denylist.read_text() == original + "localhost\n"
    assert squid.wait_status(url, 403) == 403, "denied after the block"
    v = a.verify(c)
    assert v.ok and v.state == "blocked" and "403" in v.detail, v
    assert a.read(c) == c.after
    assert a.apply(c) == {"added": [], "removed": []}
    [again] = a.plan("egress.block", ref, ctx)
    assert again.status == "noop"

    inv = a.inverse(c, applied)
    assert inv.before == c.after and inv.inverse_of == c.op_id
    a.apply(inv)
    assert squid.denylist.read_text() == original, "undo removes exactly the added line"
    assert squid.wait_status(url, 200) == 200, "allowed again after undo"
    assert a.verify(inv).ok
    assert a.read(c) == c.before


def test_failed_reload_puts_the_file_back(squid: Squid, tmp_path: Path) -> None:
    original = squid.denylist.read_text()
    a = adapter(squid, reload=["false"])
    [c] = a.plan("egress.block", {"backend": "proxy", "destinations": ["x.example"]},
                 PlanContext("bot", "s"))
    with pytest.raises(AdapterError) as err:
        a.apply(c)
    assert err.value.retryable and "reload command failed" in err.value.msg
    assert squid.denylist.read_text() == original


def test_bad_references(squid: Squid) -> None:
    a = adapter(squid)
    with pytest.raises(AdapterError, match="not a domain"):
        a.plan("egress.block", {"backend": "proxy", "destinations": ["http://x/"]},
               PlanContext("a", "s"))
    with pytest.raises(AdapterError, match="denylist"):
        SquidDenylistAdapter("p", {}).plan("egress.block", {"destinations": ["a.example"]},
                                           PlanContext("a", "s"))
