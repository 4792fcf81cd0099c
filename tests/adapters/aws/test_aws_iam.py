"""IAM access-key adapter against a real moto server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.aws_iam import IamAccessKeyAdapter, handle
from adapters.base import PlanContext
from console.errors import NotFound, UndoUnsupported
from tests.adapters.aws.conftest import client, options

CTX = PlanContext("claims-summariser", "revoke", run_id="r-1")
USER = "claims-summariser-bedrock"


@pytest.fixture
def iam(moto: str) -> Any:
    return client(moto, "iam")


@pytest.fixture
def adapter(moto: str) -> Iterator[IamAccessKeyAdapter]:
    a = IamAccessKeyAdapter("aws-iam", options(moto))
    a.open()
    yield a
    a.close()


@pytest.fixture
def keys(iam: Any) -> list[str]:
    """Two keys: one Active, one already Inactive (undo must keep it Inactive)."""
    iam.create_user(UserName=USER)
    ids = [iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    iam.update_access_key(UserName=USER, AccessKeyId=ids[1], Status="Inactive")
    return ids


def statuses(iam: Any) -> dict[str, str]:
    return {handle(m["AccessKeyId"]): m["Status"]
            for m in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]}


def test_disable_every_key_of_a_user_and_undo_exactly(adapter: IamAccessKeyAdapter, iam: Any,
                                                      keys: list[str]) -> None:
    ref = {"backend": "aws-iam", "user": USER}
    original = statuses(iam)
    [change] = adapter.plan("credential.disable", ref, CTX)
    assert change.before == {"user": USER, "keys": original}
    assert change.after == {"user": USER, "keys": dict.fromkeys(map(handle, keys), "Inactive")}
    assert not [k for k in keys if k in str(change.to_dict())], "full key ids stay out"
    assert statuses(iam) == original, "plan has no side effects"
    applied = adapter.apply(change)
    assert adapter.verify(change).ok and statuses(iam) == change.after["keys"]
    assert adapter.plan("credential.disable", ref, CTX)[0].status == "noop"
    adapter.apply(change)  # idempotent
    undo = adapter.inverse(change, applied)
    adapter.apply(undo)
    assert adapter.verify(undo).ok
    assert statuses(iam) == original, "each key's prior status is back"


def test_one_named_key(adapter: IamAccessKeyAdapter, iam: Any, keys: list[str]) -> None:
    ref = {"backend": "aws-iam", "user": USER, "access_key_id": keys[0]}
    [change] = adapter.plan("credential.disable", ref, CTX)
    assert list(change.before["keys"]) == [handle(keys[0])]
    adapter.apply(change)
    assert statuses(iam) == {handle(keys[0]): "Inactive", handle(keys[1]): "Inactive"}
    import hashlib

    redacted = f"[REDACTED sha256:{hashlib.sha256(keys[0].encode()).hexdigest()[:12]}]"
    [same] = adapter.plan("credential.disable", {**ref, "access_key_id": redacted}, CTX)
    assert same.before == change.after
    with pytest.raises(NotFound):
        adapter.plan("credential.disable", {**ref, "access_key_id": "AKIANOSUCHKEY0000000"},
                     CTX)


def test_new_active_key_fails_verify(adapter: IamAccessKeyAdapter, iam: Any,
                                     keys: list[str]) -> None:
    ref = {"backend": "aws-iam", "user": USER}
    [change] = adapter.plan("credential.disable", ref, CTX)
    adapter.apply(change)
    iam.delete_access_key(UserName=USER, AccessKeyId=keys[1])
    iam.create_access_key(UserName=USER)
    verdict = adapter.verify(change)
    assert not verdict.ok and "new since the plan" in verdict.detail


def test_destroy_is_irreversible(adapter: IamAccessKeyAdapter, iam: Any,
                                 keys: list[str]) -> None:
    ref = {"backend": "aws-iam", "user": USER}
    [change] = adapter.plan("credential.destroy", ref, CTX)
    assert not change.reversible and "irreversible" in change.note
    adapter.apply(change)
    adapter.apply(change)  # idempotent: already gone
    assert adapter.verify(change).ok and statuses(iam) == {}
    with pytest.raises(UndoUnsupported):
        adapter.inverse(change, {})


def test_unknown_user_is_not_found(adapter: IamAccessKeyAdapter) -> None:
    with pytest.raises(NotFound, match="nobody"):
        adapter.plan("credential.disable", {"backend": "aws-iam", "user": "nobody"}, CTX)


def test_cannot_reveal() -> None:
    assert IamAccessKeyAdapter.CAN_REVEAL is False
