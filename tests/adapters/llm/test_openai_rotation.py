"""Rotation on the openai adapter against the OpenAI stand-in: a new project service account
and key (credential.issue), the old key deleted (credential.retire); the stand-in's create
endpoints driven by the official client (openai 3.54.0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest

from adapters.base import CURRENT_RUN, Change, PlanContext
from adapters.openai_admin import OpenAIAdminAdapter
from adapters.rotation import ISSUE, KEYRING, RETIRE, NewKey
from console.errors import AdapterError, Conflict, Unavailable, UndoUnsupported
from tests.adapters.llm.conftest import OPENAI_KEY, PROJECT, SERVICE_ACCOUNT, LLMSandbox

REF = {"backend": "openai-sandbox", "project": PROJECT, "api_key_id": OPENAI_KEY}
SA_REF = {"backend": "openai-sandbox", "project": PROJECT, "service_account_id": SERVICE_ACCOUNT}
RUN = "r-20261127-120000-0a0a"
NAME = f"killswitch-rotation-{RUN}-support-bot"


@pytest.fixture
def adapter(llm: LLMSandbox) -> Iterator[OpenAIAdminAdapter]:
    token = CURRENT_RUN.set(RUN)
    a = llm.openai_adapter()
    yield a
    a.close()
    KEYRING.discard(RUN)
    CURRENT_RUN.reset(token)


def ctx(step: str, integration: str = "support-bot") -> PlanContext:
    return PlanContext(integration, step, run_id=RUN)


def accounts(llm: LLMSandbox) -> dict[str, str]:
    """Service account id -> name, as the stand-in holds them."""
    return {k: v["name"] for k, v in llm.openai.state["projects"][PROJECT]
            ["service_accounts"].items()}


def secret_free(value: str, *items: object) -> None:
    """``value`` appears in none of the changes, undo data, verdicts or errors."""
    for item in items:
        text = json.dumps(item.to_dict()) if isinstance(item, Change) else \
            f"{item!s} {item!r} {getattr(item, 'hint', '')}"
        assert value not in text, type(item).__name__


def test_issue_creates_a_working_key_held_only_in_memory(adapter: OpenAIAdminAdapter,
                                                        llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    assert c.action == ISSUE and c.status == "observed" and c.reversible
    assert c.before == {"issued": False, "held": False}
    assert c.after == {"issued": True, "held": True}
    assert NAME in c.note and "keeps working until the retire step" in c.note
    assert {r["method"] for r in llm.openai.requests} == {"GET"}, "plan only reads"
    assert NAME not in accounts(llm).values()

    undo = adapter.apply(c)
    key = KEYRING.get(RUN, "support-bot")
    assert key is not None and key.source == "issued" and key.key_id == undo["new_key_id"]
    assert undo["fingerprint"] == key.fingerprint and key.value.startswith("sk-svcacct-")
    assert accounts(llm)[undo["service_account_id"]] == NAME
    listed = llm.openai.state["projects"][PROJECT]["api_keys"][key.key_id]
    assert listed["owner"]["service_account"]["id"] == undo["service_account_id"]
    assert adapter.read(c) == c.after
    verdict = adapter.verify(c)
    assert verdict.ok and verdict.state == "works" and key.fingerprint in verdict.detail
    assert adapter.probe(key.value).state == "live"
    assert adapter.probe(llm.value("openai", OPENAI_KEY)).state == "live", "old still works"

    assert adapter.apply(c) == undo, "a second apply issues nothing new"
    assert list(accounts(llm).values()).count(NAME) == 1
    [again] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    assert again.status == "noop"
    secret_free(key.value, c, again, undo, verdict)


def test_retire_deletes_the_old_key_and_the_new_one_lives(adapter: OpenAIAdminAdapter,
                                                         llm: LLMSandbox) -> None:
    [issue] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    adapter.apply(issue)
    new = KEYRING.get(RUN, "support-bot")
    assert new is not None
    old = llm.value("openai", OPENAI_KEY)
    [c] = adapter.plan(RETIRE, REF, ctx("retire-old"))
    assert c.action == RETIRE and not c.reversible and c.after == {"exists": False}
    assert "retires the OLD key" in c.note and "IRREVERSIBLE" in c.note
    adapter.apply(c)
    verdict = adapter.verify(c)
    assert verdict.ok and verdict.state == "dead"
    assert adapter.probe(old).state == "revoked", "the old key is dead"
    assert adapter.probe(new.value).state == "live", "the new key still works"
    assert adapter.verify(issue).ok
    with pytest.raises(UndoUnsupported, match="cannot be undone"):
        adapter.inverse(c, {})
    secret_free(new.value, c, verdict)
    secret_free(old, c, verdict, issue)


def test_retire_deletes_nothing_until_the_new_key_works(adapter: OpenAIAdminAdapter,
                                                       llm: LLMSandbox) -> None:
    [c] = adapter.plan(RETIRE, REF, ctx("retire-old"))
    with pytest.raises(Conflict) as err:
        adapter.apply(c)
    assert "no new key of support-bot" in err.value.msg and "rotate again" in err.value.hint
    [issue] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    undo = adapter.apply(issue)
    del llm.openai.state["projects"][PROJECT]["service_accounts"][undo["service_account_id"]]
    del llm.openai.state["projects"][PROJECT]["api_keys"][undo["new_key_id"]]
    with pytest.raises(Conflict, match="does not work"):
        adapter.apply(c)
    assert OPENAI_KEY in llm.openai.state["projects"][PROJECT]["api_keys"], "nothing deleted"


def test_retiring_a_service_account_leaves_the_rotation_account(adapter: OpenAIAdminAdapter,
                                                               llm: LLMSandbox) -> None:
    [issue] = adapter.plan(ISSUE, SA_REF, ctx("issue-key", "batch-worker"))
    undo = adapter.apply(issue)
    [retire] = adapter.plan(RETIRE, SA_REF, ctx("retire-old", "batch-worker"))
    adapter.apply(retire)
    assert SERVICE_ACCOUNT not in accounts(llm)
    assert undo["service_account_id"] in accounts(llm)
    new = KEYRING.get(RUN, "batch-worker")
    assert new is not None and adapter.probe(new.value).state == "live"
    assert adapter.probe(llm.value("openai", SERVICE_ACCOUNT)).state == "revoked"


def test_undo_of_issue_deletes_the_new_account_irreversibly(adapter: OpenAIAdminAdapter,
                                                           llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    undo = adapter.apply(c)
    new = KEYRING.get(RUN, "support-bot")
    assert new is not None
    inv = adapter.inverse(c, undo)
    assert inv.action == "credential.destroy" and not inv.reversible
    assert inv.ref["service_account_id"] == undo["service_account_id"]
    assert inv.inverse_of == c.op_id and "IRREVERSIBLE" in inv.note
    assert adapter.read(inv) == inv.before, "the undo's precondition is what the API shows"
    adapter.apply(inv)
    assert adapter.verify(inv).ok
    assert adapter.probe(new.value).state == "revoked"
    assert adapter.probe(llm.value("openai", OPENAI_KEY)).state == "live"
    with pytest.raises(UndoUnsupported):
        adapter.inverse(c, {})
    secret_free(new.value, inv)


def test_an_account_whose_key_was_lost_is_replaced(adapter: OpenAIAdminAdapter,
                                                  llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    first = adapter.apply(c)
    lost = KEYRING.get(RUN, "support-bot")
    assert lost is not None
    KEYRING.discard(RUN)  # the answer was lost (a timeout, a crash): nobody holds the key
    assert adapter.read(c) == {"issued": True, "held": False}
    verdict = adapter.verify(c)
    assert not verdict.ok and "not in this process's memory" in verdict.detail
    [replan] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    assert replan.status == "observed" and "apply deletes it and issues again" in replan.note
    second = adapter.apply(c)
    assert second["service_account_id"] != first["service_account_id"]
    assert list(accounts(llm).values()).count(NAME) == 1
    assert adapter.probe(lost.value).state == "revoked"
    assert adapter.verify(c).ok


def test_a_pasted_key_in_memory_is_not_taken_for_an_issued_one(adapter: OpenAIAdminAdapter,
                                                              llm: LLMSandbox) -> None:
    KEYRING.put(RUN, "support-bot", NewKey("sk-pasted-by-mistake", source="pasted"))
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    assert c.before == {"issued": False, "held": False}
    adapter.apply(c)
    key = KEYRING.get(RUN, "support-bot")
    assert key is not None and key.source == "issued" and adapter.verify(c).ok


def test_provider_failure_is_typed_and_secret_free(adapter: OpenAIAdminAdapter,
                                                  llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    llm.openai.faults.error_rate = 1.0
    with pytest.raises(Unavailable) as err:
        adapter.apply(c)
    assert err.value.retryable and KEYRING.get(RUN, "support-bot") is None
    llm.openai.faults.error_rate = 0.0
    adapter.apply(c)  # the retry converges
    key = KEYRING.get(RUN, "support-bot")
    assert key is not None and list(accounts(llm).values()).count(NAME) == 1
    secret_free(key.value, err.value)


def test_permissions_name_the_create_call(adapter: OpenAIAdminAdapter) -> None:
    from adapters.specs.providers import OPENAI

    grants = OPENAI.grants_for(ISSUE, REF, adapter.opts)
    assert any(g.resource == f"POST /v1/organization/projects/{PROJECT}/service_accounts"
               for g in grants)
    assert OPENAI.actions[ISSUE].reversible and OPENAI.actions[ISSUE].inverse == \
        "credential.destroy"
    assert not OPENAI.actions[RETIRE].reversible


# -- the stand-in's create endpoints, driven by the official client ----------------------------

def test_sdk_creates_accounts_and_keys_in_the_documented_shape(llm: LLMSandbox) -> None:
    admin = openai.OpenAI(api_key="unused", admin_api_key=llm.admin_key("openai"),
                          base_url=llm.openai_url, max_retries=0)
    accts = admin.admin.organization.projects.service_accounts
    sa = accts.create(PROJECT, name="rotation-sdk")
    assert sa.object == "organization.project.service_account" and sa.role == "member"
    assert sa.name == "rotation-sdk" and sa.api_key is not None
    assert sa.api_key.object == "organization.project.service_account.api_key"
    assert sa.api_key.value.startswith("sk-") and sa.api_key.expires_at is None
    assert accts.retrieve(sa.id, project_id=PROJECT).name == "rotation-sdk"
    app = openai.OpenAI(api_key=sa.api_key.value, base_url=llm.openai_url, max_retries=0)
    assert {m.id for m in app.models.list()} == {"gpt-4o", "gpt-4o-mini"}
    listed = admin.admin.organization.projects.api_keys.retrieve(sa.api_key.id,
                                                                  project_id=PROJECT)
    assert listed.owner.type == "service_account" and sa.api_key.value not in str(listed)

    extra = accts.api_keys.create(sa.id, project_id=PROJECT, name="second",
                                  expires_in_seconds=3600)
    assert extra.name == "second" and extra.expires_at and extra.value != sa.api_key.value
    bare = accts.create(PROJECT, name="no-key", create_service_account_only=True)
    assert bare.api_key is None and bare.role == "none"
    with pytest.raises(openai.BadRequestError):
        accts.create(PROJECT, name="bad", create_service_account_only=True,
                     expires_in_seconds=60)
    with pytest.raises(openai.BadRequestError):
        accts.api_keys.create(sa.id, project_id=PROJECT, expires_in_seconds=0)
    with pytest.raises(openai.NotFoundError):
        accts.api_keys.create("svc_acct_nope", project_id=PROJECT)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="x", admin_api_key="sk-admin-wrong", base_url=llm.openai_url,
                      max_retries=0).admin.organization.projects.service_accounts.create(
            PROJECT, name="intruder")

    assert accts.delete(sa.id, project_id=PROJECT).deleted
    with pytest.raises(openai.AuthenticationError):
        app.models.list()  # the account's keys died with it
    app.close()
    admin.close()


def test_errors_never_quote_the_new_key(adapter: OpenAIAdminAdapter, llm: LLMSandbox) -> None:
    [c] = adapter.plan(ISSUE, REF, ctx("issue-key"))
    adapter.apply(c)
    key = KEYRING.get(RUN, "support-bot")
    assert key is not None
    llm.openai.faults.error_rate = 1.0
    verdict = adapter.verify(c)
    assert not verdict.ok and verdict.state == "unknown"
    with pytest.raises(AdapterError) as err:
        adapter.read(c)
    secret_free(key.value, verdict, err.value)


def test_cli_rotate_issues_a_new_account_and_deletes_the_old_key(llm: LLMSandbox) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILLSWITCH_")}
    env["KILLSWITCH_OPERATOR"] = "tester"
    argv = [sys.executable, "-m", "console", "--config", str(llm.root / "config.toml"), "run",
            "rotate", "support-bot", "--yes", "--reason", "CI variable exposed", "--json"]
    refused = subprocess.run(argv, capture_output=True, text=True, input="", cwd=llm.root,
                             env=env, timeout=120)
    assert refused.returncode == 3, refused.stderr[-2000:]  # deleting the old key: consent
    assert not any(n.startswith("killswitch-rotation-") for n in accounts(llm).values())
    run = subprocess.run([*argv, "--allow-irreversible"], capture_output=True, text=True,
                         input="", cwd=llm.root, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    verdicts = {o["op_id"].split("/")[1]: (o["outcome"], o["verdict"])
                for o in json.loads(run.stdout)["operations"]}
    assert verdicts == {"issue-key": ("applied", "works"), "retire-old": ("applied", "dead")}
    proj = llm.openai.state["projects"][PROJECT]
    assert OPENAI_KEY not in proj["api_keys"]
    [new] = [k for k in proj["api_keys"].values() if k["name"] == "Secret Key"]
    assert new["owner"]["service_account"]["name"].startswith("killswitch-rotation-")
    a = llm.openai_adapter()
    assert a.probe(new["value"]).state == "live"
    assert a.probe(llm.value("openai", OPENAI_KEY)).state == "revoked"
    a.close()
    assert new["value"] not in run.stdout + run.stderr
    assert new["value"].encode() not in (llm.root / "audit.db").read_bytes()
