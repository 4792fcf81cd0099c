"""Rotation on the anthropic adapter against the Anthropic stand-in: the Admin API cannot
create keys, so the run takes the key the operator pasted, checks it is new and works, and
retires the old key (status inactive)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from adapters.anthropic_admin import AnthropicAdminAdapter
from adapters.anthropic_rotation import PASTE_NOTE, hint_matches
from adapters.base import CURRENT_RUN, Change, PlanContext
from adapters.rotation import ISSUE, KEYRING, RETIRE, NewKey
from console.errors import AdapterError, Conflict, UndoUnsupported
from tests.adapters.llm.conftest import ANTHROPIC_KEY, LLMSandbox

REF = {"backend": "anthropic-sandbox", "api_key_id": ANTHROPIC_KEY}
RUN = "r-20261127-130000-0b0b"
INTEG = "code-review-agent"


@pytest.fixture
def adapter(llm: LLMSandbox) -> Iterator[AnthropicAdminAdapter]:
    token = CURRENT_RUN.set(RUN)
    a = llm.anthropic_adapter()
    yield a
    a.close()
    KEYRING.discard(RUN)
    CURRENT_RUN.reset(token)


def ctx(step: str) -> PlanContext:
    return PlanContext(INTEG, step, run_id=RUN)


def console_key(llm: LLMSandbox, name: str = "rotated") -> tuple[str, str]:
    """Create a key the way an operator does in the Console (the sandbox's stand-in for it)."""
    got = httpx.post(f"{llm.anthropic_url}/_sandbox/console/api_keys", json={"name": name})
    assert got.status_code == 200
    return got.json()["id"], got.json()["value"]


def paste(value: str) -> None:
    """What the console prompt / --new-key-from does: the value into the run's keyring."""
    KEYRING.put(RUN, INTEG, NewKey(value, source="pasted"))


def secret_free(value: str, *items: object) -> None:
    for item in items:
        text = json.dumps(item.to_dict()) if isinstance(item, Change) else \
            f"{item!s} {item!r} {getattr(item, 'hint', '')}"
        assert value not in text, type(item).__name__


def test_issue_waits_for_the_paste_then_checks_the_key(adapter: AnthropicAdminAdapter,
                                                      llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    assert c.status == "observed" and c.action == ISSUE and PASTE_NOTE in c.note
    assert c.before == {"checked": False} and c.after == {"checked": True}
    assert c.undo["source"] == "pasted", "the engine asks the operator for this key"
    assert {r["method"] for r in llm.anthropic.requests} == {"GET"}
    new_id, value = console_key(llm)
    paste(value)
    assert adapter.read(c) == c.before, "pasting after the plan is not drift"
    undo = adapter.apply(c)
    assert undo == {"new_key_id": new_id, "fingerprint": NewKey(value).fingerprint}
    assert adapter.read(c) == c.after
    held = KEYRING.get(RUN, INTEG)
    assert held is not None and held.key_id == new_id and held.source == "pasted"
    verdict = adapter.verify(c)
    assert verdict.ok and verdict.state == "works" and "active" in verdict.detail
    [again] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    assert again.status == "noop"
    secret_free(value, c, again, undo, verdict)


def test_no_pasted_key_fails_clearly_and_changes_nothing(adapter: AnthropicAdminAdapter,
                                                        llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    before = json.dumps(llm.anthropic.state, sort_keys=True)
    with pytest.raises(AdapterError) as err:
        adapter.apply(c)
    assert "no new key was pasted for code-review-agent" in err.value.msg
    assert "--new-key-from FILE" in err.value.hint and not err.value.retryable
    assert json.dumps(llm.anthropic.state, sort_keys=True) == before
    verdict = adapter.verify(c)
    assert not verdict.ok and "no pasted key" in verdict.detail


def test_pasting_the_old_key_again_is_refused(adapter: AnthropicAdminAdapter,
                                              llm: LLMSandbox) -> None:
    old = llm.value("anthropic", ANTHROPIC_KEY)
    paste(old)
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    with pytest.raises(AdapterError) as err:
        adapter.apply(c)
    assert f"is the OLD key {ANTHROPIC_KEY}" in err.value.msg
    assert adapter.read(c) == {"checked": False}
    secret_free(old, err.value, c)


def test_a_key_anthropic_refuses_is_not_taken(adapter: AnthropicAdminAdapter,
                                              llm: LLMSandbox) -> None:
    new_id, value = console_key(llm)
    llm.anthropic.state["api_keys"][new_id]["status"] = "inactive"
    paste(value)
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    with pytest.raises(AdapterError) as err:
        adapter.apply(c)
    assert "is refused by Anthropic" in err.value.msg and "401" in err.value.msg
    paste("sk-ant-api03-never-issued-anywhere")
    with pytest.raises(AdapterError, match="is refused by Anthropic"):
        adapter.apply(c)
    secret_free(value, err.value)


def test_retire_sets_the_old_key_inactive_and_the_new_one_works(
        adapter: AnthropicAdminAdapter, llm: LLMSandbox) -> None:
    new_id, value = console_key(llm)
    paste(value)
    [issue] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    adapter.apply(issue)
    old = llm.value("anthropic", ANTHROPIC_KEY)
    [c] = adapter.plan(RETIRE, REF, ctx("retire-old"))
    assert c.action == RETIRE and c.reversible and c.after == {"status": "inactive"}
    assert "retires the OLD key" in c.note
    applied = adapter.apply(c)
    assert adapter.verify(c).ok and adapter.verify(c).state == "dead"
    assert adapter.probe(old).state == "revoked" and adapter.probe(value).state == "live"
    inv = adapter.inverse(c, applied)
    assert inv.action == "credential.enable" and inv.after == {"status": "active"}
    assert inv.inverse_of == c.op_id and "re-enables the OLD key" in inv.note
    adapter.apply(inv)
    assert adapter.verify(inv).ok and adapter.probe(old).state == "live"


def test_retire_leaves_the_old_key_until_the_pasted_one_works(
        adapter: AnthropicAdminAdapter, llm: LLMSandbox) -> None:
    [c] = adapter.plan(RETIRE, REF, ctx("retire-old"))
    with pytest.raises(Conflict, match="no new key of code-review-agent"):
        adapter.apply(c)
    new_id, value = console_key(llm)
    paste(value)
    llm.anthropic.state["api_keys"][new_id]["status"] = "inactive"
    with pytest.raises(Conflict, match="does not work"):
        adapter.apply(c)
    assert llm.anthropic.state["api_keys"][ANTHROPIC_KEY]["status"] == "active"


def test_undo_of_issue_sets_the_pasted_key_inactive(adapter: AnthropicAdminAdapter,
                                                    llm: LLMSandbox) -> None:
    new_id, value = console_key(llm)
    paste(value)
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    undo = adapter.apply(c)
    inv = adapter.inverse(c, undo)
    assert inv.action == "credential.disable" and inv.ref["api_key_id"] == new_id
    assert inv.reversible and adapter.read(inv) == inv.before
    adapter.apply(inv)
    assert adapter.verify(inv).ok and adapter.probe(value).state == "revoked"
    with pytest.raises(UndoUnsupported, match="Claude Console"):
        adapter.inverse(c, {"new_key_id": "", "fingerprint": undo["fingerprint"]})
    secret_free(value, inv)


def test_hint_matching() -> None:
    assert hint_matches("sk-ant-api03-R2D...igAA", "sk-ant-api03-R2Dxxxxxxxxxxxxxxxx-igAA")
    assert not hint_matches("sk-ant-api03-R2D...igAA", "sk-ant-api03-R2Dxxxxxxxxxxxxxxxx-igAB")
    assert not hint_matches(None, "sk-ant") and not hint_matches("...", "anything")
    assert not hint_matches("sk...", "sk-ant-api03")


def test_the_stand_in_creates_no_key_by_api_as_the_sdk_has_none(llm: LLMSandbox) -> None:
    client = anthropic.Anthropic(api_key=llm.admin_key("anthropic"),
                                 base_url=llm.anthropic_url, max_retries=0)
    assert not hasattr(client.organization.api_keys, "create")
    got = httpx.post(f"{llm.anthropic_url}/v1/organizations/api_keys",
                     headers={"x-api-key": llm.admin_key("anthropic"),
                              "anthropic-version": "2023-06-01"}, json={"name": "x"})
    assert got.status_code == 404 and got.json()["type"] == "error"
    new_id, value = console_key(llm, "made-in-console")
    key = client.organization.api_keys.retrieve(new_id)
    assert key.status == "active" and key.name == "made-in-console"
    assert key.partial_key_hint and hint_matches(key.partial_key_hint, value)
    assert value not in key.model_dump_json()
    assert new_id in [k.id for k in client.organization.api_keys.list(status="active")]
    app = anthropic.Anthropic(api_key=value, base_url=llm.anthropic_url, max_retries=0)
    assert app.models.list().data
    client.close()
    app.close()


def _cli(llm: LLMSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")}
    env["KILLSWITCH_OPERATOR"] = "tester"
    return subprocess.run([sys.executable, "-m", "console", "--config",
                           str(llm.root / "config.toml"), *args], capture_output=True,
                          text=True, input="", cwd=llm.root, env=env, timeout=120)


def test_cli_rotate_takes_the_pasted_key_from_a_file(llm: LLMSandbox) -> None:
    new_id, value = console_key(llm)
    paste_file = llm.root / "new-key.txt"
    paste_file.write_text(f"{INTEG}={value}\n")
    paste_file.chmod(0o600)
    args = ("run", "rotate", INTEG, "--yes", "--reason", "a person left", "--json")
    refused = _cli(llm, *args)
    assert refused.returncode == 3 and "--new-key-from" in refused.stderr
    run = _cli(llm, *args, "--new-key-from", str(paste_file))
    assert run.returncode == 0, run.stderr[-2000:]
    verdicts = {o["op_id"].split("/")[1]: (o["outcome"], o["verdict"])
                for o in json.loads(run.stdout)["operations"]}
    assert verdicts == {"issue-key": ("applied", "works"), "retire-old": ("applied", "dead")}
    keys = llm.anthropic.state["api_keys"]
    assert keys[ANTHROPIC_KEY]["status"] == "inactive" and keys[new_id]["status"] == "active"
    assert value not in run.stdout + run.stderr
    assert value.encode() not in (llm.root / "audit.db").read_bytes()
