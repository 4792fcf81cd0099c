"""Rotation pieces without servers: key files, which integrations need a pasted key, what a
store copy holds once the new key is written, and when the old key is proven dead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.base import Change
from adapters.rotation import NewKey
from adapters.rotation_stores import compose, holds
from console.engine.model import OpResult, Plan
from console.engine.rotation import (
    parse_key_file,
    pasted_key_needed,
    read_key_file,
    retired_old_key,
)
from console.errors import UsageError

KNOWN = ["review-agent", "support-bot", "claims"]


def test_key_file_lines_and_bare_keys() -> None:
    text = "# new keys\nreview-agent=sk-ant-1==\n\nsupport-bot = sk-2\n"
    assert parse_key_file(text, ["review-agent", "support-bot"], KNOWN) == {
        "review-agent": "sk-ant-1==", "support-bot": "sk-2"}
    assert parse_key_file("  abc=def==\n", ["review-agent"], KNOWN) == {
        "review-agent": "abc=def=="}, "a bare key may hold '='"
    multi = '{\n  "type": "service_account"\n}\n'
    assert json.loads(parse_key_file(multi, ["claims"], KNOWN)["claims"])


@pytest.mark.parametrize(("text", "needed", "words"), [
    ("sk-1\n", ["review-agent", "support-bot"], "2 integrations need one"),
    ("review-agent=sk-1\nnot-a-line\n", ["review-agent"], "line(s) 2"),
    ("review-agent=\n", ["review-agent"], "line 1: the key of review-agent is empty"),
    ("claims=sk-9\n", ["review-agent"], "claims need(s) no pasted key"),
    ("# only a comment\n", ["review-agent"], "holds no key"),
])
def test_bad_key_files_are_refused_without_quoting_keys(text: str, needed: list[str],
                                                        words: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_key_file(text, needed, KNOWN, where="keys.txt")
    assert words in err.value.msg and "sk-" not in err.value.msg
    assert err.value.exit_code == 2


def test_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "k"
    p.write_text("sk-secret\n")
    p.chmod(0o640)
    with pytest.raises(UsageError) as err:
        read_key_file(str(p))
    assert "mode 0640" in err.value.msg and err.value.hint == f"chmod 600 {p}"
    p.chmod(0o600)
    assert read_key_file(str(p)) == "sk-secret\n"
    with pytest.raises(UsageError, match="cannot read"):
        read_key_file(str(tmp_path / "missing"))


def _change(integ: str, action: str, status: str = "observed",
            **undo: str) -> Change:
    return Change(f"{integ}/{action}/0", integ, "s", action, "b", "a", "t", status=status,
                  undo=dict(undo))


def test_which_integrations_need_a_pasted_key() -> None:
    changes = [
        _change("a", "credential.issue"), _change("a", "credential.write"),  # API issue
        _change("b", "credential.write"),                                    # no provider
        _change("c", "credential.issue", source="pasted"), _change("c", "credential.write"),
        _change("d", "credential.issue", status="error"), _change("d", "credential.write"),
        _change("e", "credential.write", rollback="1"),                      # an undo
    ]
    plan = Plan("r", "rotate", [], ["a", "b", "c", "d", "e"], [], changes)
    assert pasted_key_needed(plan) == ["b", "c"]


def test_the_old_key_is_proven_dead_only_once_retired() -> None:
    retire = _change("a", "credential.retire")
    disable = _change("a", "credential.disable")
    done = {retire.op_id: OpResult(retire.op_id, "applied")}
    skipped = {retire.op_id: OpResult(retire.op_id, "skipped")}
    assert retired_old_key([retire], done) and not retired_old_key([retire], skipped)
    assert retired_old_key([disable], {}), "a kill-switch always proves"


def test_a_copy_keeps_its_shape() -> None:
    key = NewKey(value="NEW", key_id="AKNEW", fields={"aws_access_key_id": "AKNEW",
                                                      "aws_secret_access_key": "NEW"})
    pair = {"aws_access_key_id": "AKOLD", "aws_secret_access_key": "OLD"}
    cases = [
        ({**pair, "api_key": "OLD"}, {}, {"api_key": "NEW", "aws_access_key_id": "AKNEW",
                                         "aws_secret_access_key": "NEW"}),
        (pair, {}, {"aws_access_key_id": "AKNEW", "aws_secret_access_key": "NEW"}),
        ({"token": "OLD", "org": "x"}, {}, {"token": "NEW", "org": "x"}),
        ({"key": "OLD", "org": "x"}, {"field": "key"}, {"key": "NEW", "org": "x"}),
    ]
    for before, ref, after in cases:
        text = compose(json.dumps(before), ref, key)
        assert json.loads(text) == after
        assert holds(text, ref, key) and not holds(json.dumps(before), ref, key)
    assert compose("OLD", {}, key) == "NEW"
    assert json.loads(compose(None, {"field": "api_key"}, key))["api_key"] == "NEW"


def test_two_provider_keys_issuing_for_one_integration_are_refused() -> None:
    from console.engine.rotation import plan_notes, require_pasted_keys
    from console.errors import Refused

    changes = [_change("a", "credential.issue"), _change("a", "credential.issue"),
               _change("a", "credential.write")]
    changes[1].op_id = "a/credential.issue/1"
    assert any("2 provider keys would each issue" in n for n in plan_notes(changes, ["a"]))
    with pytest.raises(Refused) as err:
        require_pasted_keys(Plan("r", "rotate", [], ["a"], [], changes))
    assert err.value.exit_code == 3 and "one key per integration" in err.value.msg
