"""Rehearsals: the whole run against a simulated copy of the observed state, touching nothing.

The first test runs the shipped ``kill-switch`` runbook as a rehearsal over real backends
(the fake, a flagd flag file, OpenBao, moto for Secrets Manager, SSM and IAM) with every
registered adapter class's ``apply`` (and ``inverse``, ``reveal``, ``probe``) replaced by a
recorder that raises, and checks that none was called and every real target is unchanged,
read without the adapters.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from adapters.base import adapter_names, load_adapter_class
from adapters.fake import FakeAdapter
from console.config import Config, load_config
from console.engine.limits import RetryPolicy
from console.engine.locks import LockTable
from console.engine.rehearsal import (
    BackendFaults,
    RehearsalResult,
    parse_fault_option,
    parse_faults,
)
from console.engine.service import Session
from console.errors import UsageError
from tests.adapters.aws.conftest import client, moto, moto_url  # noqa: F401 - fixtures
from tests.servers import BaoServer

FORBIDDEN = ("apply", "inverse", "reveal", "probe", "preserve")
"""Adapter methods a rehearsal must never call: the side effect, the undo, the two calls
that handle a key value (proof of death is simulated) and evidence (nothing is written)."""


@pytest.fixture
def forbid(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every registered adapter class's side-effecting methods replaced by a recorder that
    raises; returns the calls made."""
    calls: list[str] = []

    def recorder(cls_name: str, method: str) -> Callable[..., Any]:
        def called(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(f"{cls_name}.{method}")
            raise AssertionError(f"a rehearsal called {cls_name}.{method}")
        return called

    names = adapter_names()
    assert {"fake", "flagfile", "vault", "aws-secrets", "aws-ssm", "aws-iam"} <= set(names)
    for name in names:
        cls = load_adapter_class(name)
        for method in FORBIDDEN:
            monkeypatch.setattr(cls, method, recorder(cls.__name__, method))
    return calls


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("console.engine.runtime.RetryPolicy",
                        functools.partial(RetryPolicy, base=0.01, cap=0.05))


# -- every adapter, real backends ------------------------------------------------------------
USER = "rehearsed-bedrock"

WORLD = """
[settings]
audit_db = "audit.db"
max_targets = 5

[backends.sim]
type = "fake"
latency = 0.02
probe = "switch"

[backends.flags]
type = "flagfile"
path = "flags.json"

[backends.vault]
type = "vault"
url = "{bao}"
token_env = "KS_TEST_VAULT_TOKEN"

[backends.aws-sm]
type = "aws-secrets"
{aws}
[backends.aws-ssm]
type = "aws-ssm"
{aws}
[backends.aws-iam]
type = "aws-iam"
{aws}
[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "cx-platform"
environment = "prod"
status = "approved"
provider = "openai"

[[integrations.flags]]
backend = "flags"
flag = "support-bot-enabled"

[[integrations.credentials]]
backend = "sim"
key = "support-bot-key"

[[integrations.credentials]]
backend = "vault"
mount = "{mount}"
path = "ai/support-bot/openai"

[[integrations.credentials]]
backend = "aws-iam"
user = "{user}"

[[integrations.credentials]]
backend = "aws-sm"
secret_id = "ai/support-bot/openai"

[[integrations.credentials]]
backend = "aws-ssm"
name = "/ai/support-bot/openai"
"""


@pytest.fixture
def world(tmp_path: Path, bao: BaoServer, moto: str,  # noqa: F811 - the moto fixture
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Config, dict[str, Any]]]:
    """A config whose one integration has a key in each real backend, and the test's own
    clients to read them."""
    FakeAdapter.reset()
    monkeypatch.setenv("KS_TEST_VAULT_TOKEN", bao.token)
    vault = hvac.Client(url=bao.url, token=bao.token)
    mount = "rh-" + secrets.token_hex(4)
    vault.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    value = "sk-proj-" + secrets.token_urlsafe(24)
    vault.secrets.kv.v2.create_or_update_secret(path="ai/support-bot/openai",
                                                secret={"api_key": value}, mount_point=mount)
    sm, ssm, iam = (client(moto, s) for s in ("secretsmanager", "ssm", "iam"))
    sm.create_secret(Name="ai/support-bot/openai", SecretString=json.dumps({"api_key": value}))
    ssm.put_parameter(Name="/ai/support-bot/openai", Value=value, Type="SecureString")
    iam.create_user(UserName=USER)
    iam.create_access_key(UserName=USER)
    (tmp_path / "flags.json").write_text(json.dumps({"flags": {"support-bot-enabled": {
        "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on",
        "targeting": {}}}}, indent=2))
    aws = (f'endpoint_url = "{moto}"\nregion = "us-east-1"\n'
           'access_key_env = "KS_TEST_AWS_KEY"\nsecret_key_env = "KS_TEST_AWS_SECRET"\n')
    path = tmp_path / "config.toml"
    path.write_text(WORLD.format(bao=bao.url, mount=mount, aws=aws, user=USER))
    clients = {"vault": vault, "mount": mount, "sm": sm, "ssm": ssm, "iam": iam,
               "flags": tmp_path / "flags.json"}
    try:
        yield load_config(path), clients
    finally:
        vault.sys.disable_secrets_engine(mount)
        vault.adapter.close()
        FakeAdapter.reset()


def real_state(c: dict[str, Any]) -> dict[str, Any]:
    """Every target, read without the adapters."""
    meta = c["vault"].secrets.kv.v2.read_secret_metadata(path="ai/support-bot/openai",
                                                          mount_point=c["mount"])["data"]
    d = c["sm"].describe_secret(SecretId="ai/support-bot/openai")
    param = c["ssm"].get_parameter(Name="/ai/support-bot/openai", WithDecryption=True)
    return {
        "flags": c["flags"].read_bytes(),
        "fake": (dict(FakeAdapter._memory.get("sim", {}).get("switches", {})),
                 list(FakeAdapter._memory.get("sim", {}).get("applied", []))),
        "vault": {v: (m.get("deletion_time"), m.get("destroyed"))
                  for v, m in meta["versions"].items()} | {"current": meta["current_version"],
                                                            "custom": meta["custom_metadata"]},
        "sm": ({k: sorted(v) for k, v in d["VersionIdsToStages"].items()},
               "DeletedDate" in d, d.get("Tags")),
        "ssm": (param["Parameter"]["Value"], param["Parameter"]["Version"]),
        "iam": {k["AccessKeyId"]: k["Status"]
                for k in c["iam"].list_access_keys(UserName=USER)["AccessKeyMetadata"]},
    }


def test_rehearsal_calls_no_adapter_apply_and_changes_no_real_target(
        world: tuple[Config, dict[str, Any]], forbid: list[str]) -> None:
    config, clients = world
    before = real_state(clients)
    assert set(before["iam"].values()) == {"Active"}
    session = Session(config, operator="tester", incident="IR-rehearsal")
    try:
        result = session.sync(session.rehearse("kill-switch", ["support-bot"], seed=1))
    finally:
        session.close()
    assert forbid == []
    assert real_state(clients) == before
    assert isinstance(result, RehearsalResult)
    changes = [c for c in result.plan.changes if c.actionable]
    backends = {c.backend for c in changes}
    assert backends == {"sim", "flags", "vault", "aws-sm", "aws-ssm", "aws-iam"}
    kills = [c for c in changes if c.action != "evidence.preserve"]
    assert result.count("applied") == len(changes) > len(kills) == result.simulated_applies
    assert not (config.resolve(config.settings.audit_db).parent / "evidence").exists()
    assert all(result.results[c.op_id].verified for c in changes)
    proof = result.proofs["support-bot"]
    assert proof.state == "revoked" and "simulated" in proof.detail
    assert result.exit_code() == 0
    assert set(result.measured) == backends and result.latency["sim"] >= 0.02
    events = session.audit.events(run_id=result.run_id)
    assert {e["mode"] for e in events} == {"rehearsal"}
    phases = {(e["phase"], e["outcome"]) for e in events}
    assert {("plan", "planned"), ("run", "started"), ("apply", "applied"), ("verify", "ok"),
            ("verify", "revoked"), ("run", "finished")} <= phases
    start = next(e for e in events if e["phase"] == "run" and e["outcome"] == "started")
    assert start["detail"]["rehearsal"] is True and start["detail"]["latency"]["sim"] >= 0.02
    assert LockTable(config.resolve(config.settings.audit_db)).held() == []


# -- faults through the real executor -------------------------------------------------------
FAULTS = """
[settings]
audit_db = "audit.db"
max_attempts = 4

[backends.flags]
type = "fake"
latency = 0.005

[backends.keys]
type = "fake"
latency = 0.005
"""


def fault_config(root: Path, n: int = 2) -> Config:
    FakeAdapter.reset()
    lines = [FAULTS]
    for i in range(n):
        lines += ["[[integrations]]", f'id = "app-{i}"', f'name = "App {i}"',
                  'owner = "team"', 'environment = "prod"', 'status = "approved"',
                  'provider = "openai"', "[[integrations.flags]]", 'backend = "flags"',
                  f'key = "app-{i}-flag"', "[[integrations.credentials]]",
                  'backend = "keys"', f'key = "app-{i}-key"', ""]
    (root / "config.toml").write_text("\n".join(lines))
    return load_config(root / "config.toml")


def test_faults_make_retries_and_failures_in_the_result_and_the_trail(
        tmp_path: Path, forbid: list[str], fast_backoff: None) -> None:
    config = fault_config(tmp_path)
    session = Session(config, operator="tester")
    faults = {"flags": {"throttle_rate": 0.4, "retry_after": 0.001},
              "keys": {"error_rate": 1.0, "error_status": 502}}
    result = session.sync(session.rehearse("kill-switch", ["app-0", "app-1"], faults=faults,
                                           seed=11))
    session.close()
    assert forbid == [] and FakeAdapter._memory.get("keys", {}).get("applied", []) == []
    flags = [r for op, r in result.results.items() if "/flags-off/" in op]
    keys = [r for op, r in result.results.items() if "/disable-credentials/" in op]
    assert flags and all(r.outcome == "applied" and r.verified for r in flags)
    assert all(r.attempts == 2 for r in flags)  # throttled, retried, then through
    assert keys and all(r.outcome == "failed" and r.attempts == 4 for r in keys)
    assert all("502 (rehearsal fault)" in r.message for r in keys)
    assert result.exit_code() == 1
    # 4 attempts x 2 integrations x (the evidence call and the disable) on the failing backend
    evidence = [r for op, r in result.results.items() if "/preserve-evidence/" in op]
    assert len(evidence) == 2 and all(r.outcome == "failed" for r in evidence)
    assert result.fault_counts["keys"]["error"] == 16
    assert result.fault_counts["flags"]["throttle"] >= 1
    events = session.audit.events(run_id=result.run_id)
    assert {e["mode"] for e in events} == {"rehearsal"}
    retrying = [e for e in events if e["outcome"] == "retrying"]
    assert any("429" in e["detail"]["message"] for e in retrying)
    assert any("502" in e["detail"]["message"] for e in retrying)
    failed = [e for e in events if e["phase"] == "apply" and e["outcome"] == "failed"]
    assert len(failed) == 4
    finished = next(e for e in events if e["outcome"] == "finished")
    assert finished["detail"]["summary"]["failed"] == 4 and finished["detail"]["exit_code"] == 1


def test_a_timeout_lands_and_the_retry_reads_it_back(tmp_path: Path, forbid: list[str],
                                                     fast_backoff: None) -> None:
    config = fault_config(tmp_path, n=1)
    session = Session(config, operator="tester")
    result = session.sync(session.rehearse(
        "revoke-credentials", ["app-0"], seed=3,
        faults={"keys": {"timeout_rate": 0.5, "hang": 0.01}}))
    session.close()
    (res,) = result.results.values()
    # the first apply timed out after it landed; the retry read it back instead of re-applying
    assert (res.outcome, res.attempts, res.verified) == ("applied", 2, True)
    assert res.message == "applied: confirmed by reading back before retrying"
    assert result.simulated_applies == 1 and forbid == []
    retry = next(e for e in session.audit.events(run_id=result.run_id)
                 if e["outcome"] == "retrying")
    assert "outcome unknown (rehearsal fault)" in retry["detail"]["message"]


def test_a_seed_replays_the_same_rehearsal(tmp_path: Path, fast_backoff: None) -> None:
    config = fault_config(tmp_path)
    runs = []
    for _ in range(2):
        session = Session(config, operator="tester")
        result = session.sync(session.rehearse(
            "kill-switch", ["app-0", "app-1"], seed=5,
            faults={"flags": {"throttle_rate": 0.5, "retry_after": 0.001}}))
        session.close()
        runs.append(([(op, r.outcome, r.attempts) for op, r in sorted(result.results.items())],
                     result.fault_counts))
    assert runs[0] == runs[1]


def test_down_backend_fails_and_a_simulated_proof_says_unknown(
        tmp_path: Path, fast_backoff: None) -> None:
    config = fault_config(tmp_path, n=1)
    text = (tmp_path / "config.toml").read_text().replace(
        '[backends.keys]\ntype = "fake"', '[backends.keys]\ntype = "fake"\nprobe = "switch"\n'
        'reveal = true')
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml")
    session = Session(config, operator="tester")
    result = session.sync(session.rehearse("revoke-credentials", ["app-0"], seed=1,
                                           faults={"keys": {"down": True}}))
    session.close()
    assert result.proofs["app-0"].state == "unknown"
    assert "backend down" in result.proofs["app-0"].detail
    assert result.exit_code() == 4  # a key that could not be checked wins, as in a live run


# -- what a rehearsal is not ------------------------------------------------------------------
def test_no_lock_is_taken_or_waited_for(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    locks = LockTable(config.resolve(config.settings.audit_db))
    locks.acquire(["app-0"], "r-someone-else", "alice", "2026-01-01T00:00:00Z")
    session = Session(config, operator="tester")
    result = session.sync(session.rehearse("kill-switch", ["app-0"]))
    session.close()
    assert result.exit_code() == 0
    assert [lock.run_id for lock in locks.held()] == ["r-someone-else"]


def test_a_rehearsal_is_never_resumed_restored_or_listed_as_interrupted(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    session = Session(config, operator="tester")
    result = session.sync(session.rehearse("kill-switch", ["app-0"]))
    run_id = result.run_id
    with pytest.raises(UsageError, match="was a rehearsal"):
        session.sync(session.resume(run_id))
    with pytest.raises(UsageError, match="nothing to restore"):
        session.restore_plan(run_id)
    # a rehearsal that stopped half way (no finished event) is not an interrupted live run
    session.audit.append(run_id="r-half", incident="", operator="tester", mode="rehearsal",
                         phase="run", action="kill-switch", outcome="started",
                         detail={"plan": result.plan.body()})
    assert session.interrupted_runs() == []
    session.close()


def test_a_plan_made_for_a_live_run_is_rehearsed_under_its_own_id(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    session = Session(config, operator="tester")
    plan = session.sync(session.plan("kill-switch", ["app-0"]))
    result = session.sync(session.rehearse(plan=plan))
    assert result.run_id != plan.run_id
    assert result.latency == {"flags": 0.05, "keys": 0.05}  # not measured: the default
    assert FakeAdapter._memory.get("keys", {}).get("applied", []) == []
    live = session.sync(session.apply(plan, reason="for real"))  # its id is still free
    assert live.exit_code() == 0 and len(FakeAdapter._memory["keys"]["applied"]) == 1
    session.close()


def test_a_rehearsal_plan_keeps_its_id_and_timings(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    session = Session(config, operator="tester")
    plan = session.sync(session.plan("kill-switch", ["app-0"], record_mode="rehearsal"))
    result = session.sync(session.rehearse(plan=plan))
    session.close()
    assert result.run_id == plan.run_id
    assert set(result.measured) == {"flags", "keys"} and result.latency["keys"] >= 0.005


def test_guards_are_noted_not_enforced(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    session = Session(config, operator="tester")
    result = session.sync(session.rehearse("kill-switch", ["app-0"], max_targets=0))
    session.close()
    assert result.exit_code() == 0
    assert any("a live run would be refused" in n and "limit is 0" in n for n in result.notes)


def test_bad_faults_are_refused_before_anything_is_observed(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    session = Session(config, operator="tester")
    for faults, words in ([{"nope": {"down": True}}, "does not define"],
                          [{"keys": {"throttle": 1}}, "unknown fault field"],
                          [{"keys": {"error_rate": 2}}, "from 0 to 1"],
                          [{"keys": {"error_status": 404}}, "5xx"],
                          [{"keys": {"down": "yes"}}, "true or false"]):
        with pytest.raises(UsageError, match=words):
            session.sync(session.rehearse("kill-switch", ["app-0"], faults=faults))
    assert not config.resolve(config.settings.audit_db).exists() or \
        session.audit.events() == []
    session.close()


def test_fault_parsing() -> None:
    assert parse_fault_option("vault:throttle_rate=0.3,retry_after=1,down") == (
        "vault", {"throttle_rate": 0.3, "retry_after": 1, "down": True})
    for bad in ("vault", ":x=1", "vault:", "vault:=1"):
        with pytest.raises(UsageError):
            parse_fault_option(bad)
    assert BackendFaults.parse("b", {"clear": True}) == BackendFaults()
    assert BackendFaults.parse("b", {"latency": 2}).describe() == {"latency": 2.0}


def test_parse_faults_drops_cleared(tmp_path: Path) -> None:
    config = fault_config(tmp_path, n=1)
    assert parse_faults({"keys": {"clear": True}}, config) == {}
