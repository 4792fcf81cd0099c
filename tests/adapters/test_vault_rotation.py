"""``credential.write`` of the vault adapter against a real OpenBao dev server.

The new key goes in as a new KV v2 version with check-and-set, keeping the secret's other
fields; a version written meanwhile is never overwritten; a copy a kill-switch soft-deleted
is written from the shape of its newest readable version; undo writes the old data back; a
write without the run's key in memory writes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import hvac
import pytest

from adapters.base import PlanContext, fingerprint
from adapters.rotation import KEYRING, WRITE, NewKey
from adapters.vault import VaultAdapter
from console.errors import AdapterError
from tests.servers import BaoServer

RUN = "r-vault-rotation"


@pytest.fixture
def world(bao: BaoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", bao.token)
    client = hvac.Client(url=bao.url, token=bao.token)
    path = f"ai/rot-{secrets.token_hex(4)}/key"
    old = "sk-old-" + secrets.token_hex(8)
    client.secrets.kv.v2.create_or_update_secret(path=path,
                                                 secret={"api_key": old, "org": "acme"})
    adapter = VaultAdapter("vault", {"url": bao.url, "token_env": "KS_TEST_VAULT_TOKEN"})
    adapter.run_id = RUN
    integ = f"bot-{secrets.token_hex(3)}"
    new = NewKey(value="sk-new-" + secrets.token_hex(8))
    KEYRING.put(RUN, integ, new)
    yield {"client": client, "path": path, "old": old, "new": new, "adapter": adapter,
           "integ": integ, "ref": {"backend": "vault", "path": path}}
    KEYRING.discard(RUN)
    adapter.close()


def _data(w: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    got = w["client"].secrets.kv.v2.read_secret_version(
        path=w["path"], version=version, raise_on_deleted_version=False)["data"]
    return dict(got["data"] or {})


def _plan(w: dict[str, Any]) -> Any:
    [change] = w["adapter"].plan(WRITE, w["ref"], PlanContext(w["integ"], "write-copies",
                                                              run_id=RUN))
    return change


def test_write_keeps_other_fields_and_undo_puts_the_old_data_back(world: dict[str, Any]) -> None:
    w, a = world, world["adapter"]
    change = _plan(w)
    assert change.before == {"version": 1, "deleted": False, "destroyed": False,
                             "holds": "the key from before this rotation"}
    assert w["new"].value not in repr(change.to_dict()) and w["old"] not in repr(change)
    assert fingerprint(a.read(change)) == change.precondition, "read matches the plan"
    applied = a.apply(change, a.read(change))
    assert _data(w) == {"api_key": w["new"].value, "org": "acme"}
    assert a.read(change) == change.after and a.verify(change).ok
    assert applied == {"previous_version": 1, "new_version": 2,
                       "fingerprint": w["new"].fingerprint, "previous_readable": True}
    again = a.apply(change, a.read(change))  # idempotent: no second version
    assert again["new_version"] == 2 and _data(w)["api_key"] == w["new"].value
    undo = a.inverse(change, applied)
    assert undo.action == WRITE and undo.inverse_of == change.op_id
    a.apply(undo, a.read(undo))
    assert _data(w) == {"api_key": w["old"], "org": "acme"}
    assert a.verify(undo).state == "restored"


def test_a_version_written_after_the_plan_is_never_overwritten(world: dict[str, Any]) -> None:
    w, a = world, world["adapter"]
    change = _plan(w)
    w["client"].secrets.kv.v2.create_or_update_secret(
        path=w["path"], secret={"api_key": w["old"], "org": "other-writer"})
    now = a.read(change)
    assert fingerprint(now) != change.precondition, "the engine sees the drift"
    assert now["holds"].startswith("another value")
    with pytest.raises(AdapterError) as err:  # even applied blindly: check-and-set refuses
        a.apply(change, change.before)
    assert w["new"].value not in str(err.value.msg)
    assert _data(w) == {"api_key": w["old"], "org": "other-writer"}


def test_a_soft_deleted_copy_gets_the_new_key_in_its_old_shape(world: dict[str, Any]) -> None:
    w, a = world, world["adapter"]
    w["client"].secrets.kv.v2.create_or_update_secret(path=w["path"], secret={"api_key": "x"})
    w["client"].secrets.kv.v2.delete_latest_version_of_secret(path=w["path"])  # kill-switch
    change = _plan(w)
    assert change.before["deleted"] and "newest readable version" in change.note
    applied = a.apply(change, a.read(change))
    assert _data(w) == {"api_key": w["new"].value, "org": "acme"}
    assert a.verify(change).ok and not applied["previous_readable"]
    with pytest.raises(Exception, match="already deleted"):
        a.inverse(change, applied)


def test_no_key_in_memory_writes_nothing(world: dict[str, Any]) -> None:
    w, a = world, world["adapter"]
    change = _plan(w)
    KEYRING.discard(RUN)
    assert a.read(change) == change.before, "the copy is as planned"
    with pytest.raises(AdapterError) as err:
        a.apply(change, a.read(change))
    assert "only in memory" in err.value.msg and "rotate again" in err.value.msg
    assert _data(w) == {"api_key": w["old"], "org": "acme"} and a.verify(change).state == \
        "unknown"
