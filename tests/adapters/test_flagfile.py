"""FlagFileAdapter on a real flagd flag file in tmp_path."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from adapters.base import NOOP, PlanContext
from adapters.flagfile import FlagFileAdapter, evaluate
from console.errors import AdapterError, NotFound, UndoUnsupported

CTX = PlanContext(integration="support-bot", step="flags-off")

DOC: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "bot": {"state": "ENABLED", "variants": {"yes": True, "no": False},
                "defaultVariant": "yes",
                "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "yes", "no"]},
                "metadata": {"owner": "ml"}},
        "plain": {"state": "DISABLED", "variants": {"on": "enabled", "off": "disabled"},
                  "defaultVariant": "on"},
        "nooff": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a"},
    },
    "$evaluators": {"x": {"in": ["a", "b"]}},
    "metadata": {"version": "7"},
}


@pytest.fixture
def flagfile(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DOC, indent=4))
    return path


@pytest.fixture
def adapter(flagfile: Path) -> FlagFileAdapter:
    a = FlagFileAdapter("flags", {"path": str(flagfile)})
    a.open()
    return a


def ref(flag: str, **kw: str) -> dict[str, str]:
    return {"backend": "flags", "flag": flag, **kw}


def test_plan_is_read_only(adapter: FlagFileAdapter, flagfile: Path) -> None:
    raw = flagfile.read_bytes()
    (ch,) = adapter.plan("flag.disable", ref("bot"), CTX)
    assert flagfile.read_bytes() == raw
    assert ch.before == {"state": "ENABLED", "defaultVariant": "yes",
                         "targeting": DOC["flags"]["bot"]["targeting"]}
    assert ch.after == {"state": "ENABLED", "defaultVariant": "no", "targeting": {}}
    assert ch.undo == {"prior": ch.before} and ch.reversible
    assert adapter.read(ch) == ch.before


def test_disable_verify_undo(adapter: FlagFileAdapter, flagfile: Path) -> None:
    (ch,) = adapter.plan("flag.disable", ref("bot"), CTX)
    assert not adapter.verify(ch).ok
    applied = adapter.apply(ch)
    doc = json.loads(flagfile.read_text())
    flag = doc["flags"]["bot"]
    assert flag["defaultVariant"] == "no" and flag["targeting"] == {}
    assert flag["metadata"] == {"owner": "ml"}
    assert {k: v for k, v in doc.items() if k != "flags"} == \
        {k: v for k, v in DOC.items() if k != "flags"}
    assert doc["flags"]["plain"] == DOC["flags"]["plain"]
    v = adapter.verify(ch)
    assert v.ok and v.state == "off" and "false" in v.detail
    assert evaluate(flag) == (True, False, "defaultVariant 'no'")
    adapter.apply(ch)  # idempotent
    assert adapter.plan("flag.disable", ref("bot"), CTX)[0].status == NOOP

    undo = adapter.inverse(ch, applied)
    assert undo.action == "flag.enable" and undo.inverse_of == ch.op_id
    assert undo.op_id == ch.op_id + ":undo" and undo.before == ch.after
    assert adapter.read(undo) == undo.before
    adapter.apply(undo)
    assert json.loads(flagfile.read_text()) == DOC
    v = adapter.verify(undo)
    assert v.ok and v.state == "restored"


def test_undo_restores_absent_keys_and_disabled_state(adapter: FlagFileAdapter,
                                                      flagfile: Path) -> None:
    (ch,) = adapter.plan("flag.disable", ref("plain"), CTX)
    assert ch.before == {"state": "DISABLED", "defaultVariant": "on"}
    assert ch.after["defaultVariant"] == "off"  # named "off", no false value
    adapter.apply(ch)
    assert adapter.verify(ch).ok
    assert evaluate(json.loads(flagfile.read_text())["flags"]["plain"])[1] == "disabled"
    adapter.apply(adapter.inverse(ch, {}))
    assert json.loads(flagfile.read_text())["flags"]["plain"] == DOC["flags"]["plain"]
    assert "targeting" not in json.loads(flagfile.read_text())["flags"]["plain"]


def test_off_variant_choice(adapter: FlagFileAdapter) -> None:
    with pytest.raises(AdapterError) as err:
        adapter.plan("flag.disable", ref("nooff"), CTX)
    assert "off_variant" in str(err.value)
    (ch,) = adapter.plan("flag.disable", ref("nooff", off_variant="b"), CTX)
    assert ch.after["defaultVariant"] == "b"
    with pytest.raises(AdapterError):
        adapter.plan("flag.disable", ref("nooff", off_variant="zzz"), CTX)


def test_noop_has_no_inverse(adapter: FlagFileAdapter) -> None:
    (ch,) = adapter.plan("flag.disable", ref("bot"), CTX)
    adapter.apply(ch)
    (again,) = adapter.plan("flag.disable", ref("bot"), CTX)
    assert again.status == NOOP
    with pytest.raises(UndoUnsupported):
        adapter.inverse(again, {})


def test_missing_file_and_flag(tmp_path: Path, adapter: FlagFileAdapter,
                               flagfile: Path) -> None:
    with pytest.raises(NotFound) as err:
        adapter.plan("flag.disable", ref("ghost"), CTX)
    assert "ghost" in str(err.value) and str(flagfile) in str(err.value)
    missing = FlagFileAdapter("flags", {"path": str(tmp_path / "nope.json")})
    with pytest.raises(NotFound) as err2:
        missing.plan("flag.disable", ref("bot"), CTX)
    assert "nope.json" in str(err2.value)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "flags": {\n    "a": {"state": "ENABLED",,}\n  }\n}\n')
    a = FlagFileAdapter("flags", {"path": str(path)})
    with pytest.raises(AdapterError) as err:
        a.plan("flag.disable", ref("a"), CTX)
    assert err.value.where == f"{path}:3"
    assert f"{path}:3" in str(err.value)


def test_concurrent_disables_all_land(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    flags = {f"f{i}": {"state": "ENABLED", "variants": {"on": True, "off": False},
                       "defaultVariant": "on", "targeting": {}} for i in range(20)}
    path.write_text(json.dumps({"flags": flags}))
    changes = []
    for i in range(20):
        a = FlagFileAdapter("flags", {"path": str(path)})
        changes.append((a, a.plan("flag.disable", ref(f"f{i}"), CTX)[0]))
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def run(a: FlagFileAdapter, ch: Any) -> None:
        try:
            barrier.wait()
            a.apply(ch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in changes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    doc = json.loads(path.read_text())
    assert all(f["defaultVariant"] == "off" for f in doc["flags"].values())
    assert all(a.verify(ch).ok for a, ch in changes)
    assert not list(tmp_path.glob(".many.json.*.tmp"))


def test_secretless_and_declared() -> None:
    for kind, spec in FlagFileAdapter.ACTIONS.items():
        assert spec.kind == kind and spec.kill_point == "flags"
        assert spec.permissions and spec.schema["properties"]
    with pytest.raises(AdapterError):
        FlagFileAdapter("flags", {})
