"""One contract test over every registered adapter (built-ins register like third parties).

Metadata: every action is a known kind on the right kill point, declares permissions and a
schema, and reversible actions name an inverse the adapter offers. Lifecycle on the adapter's
real backend: plan has no side effects, apply then verify passes, a second plan is a no-op,
the inverse restores the exact prior state, and only AdapterError escapes.
"""

from __future__ import annotations

import ast
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest

from adapters.base import KILL_POINTS, Adapter, PlanContext, adapter_names, load_adapter_class
from adapters.fake import FakeAdapter
from console.errors import AdapterError
from tests.servers import BaoServer

REPO = Path(__file__).resolve().parents[2]


def test_builtin_adapters_are_registered() -> None:
    assert {"vault", "flagfile", "fake"} <= set(adapter_names())


@pytest.mark.parametrize("name", adapter_names())
def test_adapter_metadata(name: str) -> None:
    cls = load_adapter_class(name)
    assert cls.name == name
    assert cls.ACTIONS, f"{name} offers no action"
    for kind, spec in cls.ACTIONS.items():
        assert spec.kind == kind
        assert kind in KILL_POINTS, f"{name}: {kind} is not an action kind runbooks know"
        assert spec.kill_point == KILL_POINTS[kind]
        assert spec.permissions, f"{name}: {kind} declares no permissions"
        assert "properties" in spec.schema, f"{name}: {kind} has no reference schema"
        if spec.reversible and spec.inverse:
            assert spec.inverse in cls.ACTIONS, f"{name}: inverse {spec.inverse} not offered"
    assert cls.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("name", adapter_names())
def test_constructor_does_no_io(name: str) -> None:
    # a backend that does not exist and no credentials: constructing must still succeed
    cls = load_adapter_class(name)
    adapter = cls("nowhere", {"url": "http://127.0.0.1:9", "path": "/nonexistent/flags.json",
                              "token_env": "KS_CONTRACT_NO_SUCH_VAR", "unknown_option": 1})
    assert adapter.backend == "nowhere"


def test_adapters_import_only_the_contract_from_console() -> None:
    allowed = {"console.errors"}
    for path in (REPO / "adapters").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("console"):
                assert node.module in allowed, f"{path.name} imports {node.module}"


@dataclass
class Rig:
    """An adapter on its real backend, plus the test's own view of that backend."""

    adapter: Adapter
    action: str
    ref: dict[str, Any]
    outside: Callable[[], Any]  # the backend's state as seen without the adapter


@pytest.fixture
def fake_rig() -> Iterator[Rig]:
    FakeAdapter.reset()
    adapter = FakeAdapter("sim", {})
    yield Rig(adapter, "credential.disable", {"backend": "sim", "key": "k1"},
              lambda: FakeAdapter._memory.get("sim", {}).get("switches", {}).get("k1", "on"))


@pytest.fixture
def flagfile_rig(tmp_path: Path) -> Iterator[Rig]:
    from adapters.flagfile import FlagFileAdapter

    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"f": {
        "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on",
        "targeting": {"if": [{"==": [{"var": "tier"}, "beta"]}, "on", "off"]}}}}))
    adapter = FlagFileAdapter("flags", {"path": str(path)})
    yield Rig(adapter, "flag.disable", {"backend": "flags", "flag": "f"},
              lambda: json.loads(path.read_text()))


@pytest.fixture
def vault_rig(bao: BaoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    from adapters.vault import VaultAdapter

    monkeypatch.setenv("KS_CONTRACT_TOKEN", bao.token)
    client = hvac.Client(url=bao.url, token=bao.token)
    mount = f"c-{uuid.uuid4().hex[:10]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret(path="app/key", secret={"k": "v1"},
                                                 mount_point=mount)
    client.secrets.kv.v2.create_or_update_secret(path="app/key", secret={"k": "v2"},
                                                 mount_point=mount)

    def outside() -> Any:
        meta = client.secrets.kv.v2.read_secret_metadata(path="app/key", mount_point=mount)
        return {n: (bool(v["deletion_time"]), v["destroyed"])
                for n, v in meta["data"]["versions"].items()}

    adapter = VaultAdapter("vault", {"url": bao.url, "token_env": "KS_CONTRACT_TOKEN"})
    yield Rig(adapter, "credential.disable",
              {"backend": "vault", "kind": "kv", "mount": mount, "path": "app/key"}, outside)
    adapter.close()
    client.sys.disable_secrets_engine(path=mount)


@pytest.fixture(params=["fake", "flagfile", "vault"])
def rig(request: pytest.FixtureRequest) -> Rig:
    return request.getfixturevalue(f"{request.param}_rig")


def test_lifecycle(rig: Rig) -> None:
    a = rig.adapter
    a.open()
    ctx = PlanContext("app", "step", run_id="r-test")
    original = rig.outside()

    changes = a.plan(rig.action, rig.ref, ctx)
    assert changes and all(c.status == "observed" for c in changes)
    assert rig.outside() == original, "plan must not change anything"

    undo_data = [a.apply(c) for c in changes]
    assert rig.outside() != original
    for c in changes:
        verdict = a.verify(c)
        assert verdict.ok, verdict
        assert a.read(c) == c.after

    again = a.plan(rig.action, rig.ref, ctx)
    assert all(c.status == "noop" for c in again), "a second apply must be a no-op"
    for c in again:
        a.apply(c) if c.status != "noop" else None
    assert rig.outside() != original

    for c, data in zip(changes, undo_data, strict=True):
        inverse = a.inverse(c, data)
        assert inverse.before == c.after and inverse.inverse_of == c.op_id
        a.apply(inverse)
        assert a.verify(inverse).ok
        assert a.read(c) == c.before
    assert rig.outside() == original, "undo must restore the exact prior state"
    a.close()


def test_only_adapter_errors_escape(rig: Rig) -> None:
    a = rig.adapter
    a.open()
    bad = {k: v for k, v in rig.ref.items() if k == "backend"}
    bad.update({"path": "no/such/secret", "flag": "no-such-flag", "key": "",
                "mount": rig.ref.get("mount", "secret"), "kind": rig.ref.get("kind", "kv")})
    with pytest.raises(AdapterError):
        a.plan(rig.action, bad, PlanContext("app", "step"))
    a.close()
