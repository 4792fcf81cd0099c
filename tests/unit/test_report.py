"""The postmortem report: a Markdown timeline built from the audit trail only."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.audit import KEY_ENV, AuditLog
from console.errors import UsageError
from console.report import render_report
from console.scrub import fingerprint_secret

OPENAI_KEY = "sk-proj-Q8x2Lm4Np7Rt1Vw9Yz3Bc6Df0Gh5Jk2Mn8Pq4St7Uv1Wx"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def ev(ts: str, **fields: object) -> dict[str, object]:
    base = {"run_id": "run-42", "incident": "INC-9", "operator": "alice", "host": "ir-box",
            "mode": "live", "ts": f"2024-05-01T10:{ts}Z"}
    return {**base, **fields}


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.db")
    log.append_many([
        ev("00:00.000000", phase="run", action="kill-switch", outcome="started"),
        ev("00:01.000000", integration="support-bot", step="flags-off", op_id="sb/flags-off/0",
           phase="apply", action="flag.disable", target="flags:support-bot-enabled",
           outcome="started"),
        ev("00:03.500000", integration="support-bot", step="flags-off", op_id="sb/flags-off/0",
           phase="apply", action="flag.disable", target="flags:support-bot-enabled",
           outcome="applied", detail={"message": ""}),
        ev("00:04.000000", integration="support-bot", step="revoke", op_id="sb/revoke/0",
           phase="apply", action="credential.disable", target="kv:secret/ai/support-bot",
           outcome="started"),
        ev("00:09.000000", integration="support-bot", step="revoke", op_id="sb/revoke/0",
           phase="apply", action="credential.disable", target="kv:secret/ai/support-bot",
           outcome="failed", detail={"message": f"403 permission denied for {OPENAI_KEY}"}),
        ev("00:10.000000", integration="support-bot", step="destroy", op_id="sb/destroy/0",
           phase="apply", action="credential.destroy", target="openai:key_abc",
           outcome="applied"),
        ev("00:11.000000", integration="batch-bot", step="cancel", op_id="bb/cancel/0",
           phase="apply", action="batch.cancel", target="openai:batch_123",
           outcome="unsupported", detail={"message": "no adapter for provider x"}),
        ev("00:12.000000", integration="batch-bot", step="egress", op_id="bb/egress/0",
           phase="apply", action="egress.block", target="nft:api.example.com",
           outcome="started"),
        ev("01:05.000000", phase="run", action="kill-switch", outcome="finished"),
        ev("00:00.000000", run_id="run-other", incident="INC-1", phase="plan",
           action="flags-off", outcome="planned"),
    ])
    yield log
    log.close()


def section(report: str, title: str) -> str:
    return report.split(f"### {title}\n", 1)[1].split("\n###", 1)[0]


def test_header_shows_run_context_and_chain_status(audit: AuditLog) -> None:
    report = render_report(audit, run_id="run-42")
    assert report.startswith("# Postmortem timeline: run run-42\n")
    for line in ("- **Run(s):** run-42", "- **Incident:** INC-9", "- **Operator:** alice",
                 "- **Host:** ir-box", "- **Mode:** live",
                 "- **Start (UTC):** 2024-05-01T10:00:00.000000Z",
                 "- **End (UTC):** 2024-05-01T10:01:05.000000Z",
                 "- **Duration:** 1m05s", "- **Events:** 9 (seq 1..9)",
                 "- **Audit chain:** verified (10 events in the trail)"):
        assert line in report, line
    assert "run-other" not in report


def test_outcome_summary_and_timeline_with_op_durations(audit: AuditLog) -> None:
    report = render_report(audit, run_id="run-42")
    assert "| applied | 2 |" in report and "| started | 4 |" in report
    rows = [r for r in report.splitlines() if r.startswith("| 10:")]
    assert len(rows) == 9
    flag_end = next(r for r in rows if "flag.disable" in r and "applied" in r)
    assert flag_end.startswith("| 10:00:03.500 | +00:03.500 | support-bot | flags-off |")
    assert flag_end.endswith("| 2.5 s |")
    revoke_end = next(r for r in rows if "credential.disable" in r and "failed" in r)
    assert revoke_end.endswith("| 5.0 s |")
    run_end = next(r for r in rows if "finished" in r)
    assert run_end.endswith("| 1m05s |")
    # An op without a start has no duration.
    destroy = next(r for r in rows if "credential.destroy" in r)
    assert destroy.endswith("|  |")


def test_attention_lists_failures_irreversible_and_not_done(audit: AuditLog) -> None:
    report = render_report(audit, run_id="run-42")
    failures = section(report, "Failures")
    assert "seq 5 support-bot revoke credential.disable" in failures
    assert "403 permission denied" in failures
    assert "openai:key_abc" in section(report, "Irreversible changes")
    assert "no adapter for provider x" in section(report, "Not done")
    assert "bb/egress/0" in section(report, "Started but never ended")
    assert "sb/flags-off/0" not in section(report, "Started but never ended")


def test_report_never_shows_planted_secrets(audit: AuditLog) -> None:
    report = render_report(audit, incident="INC-9")
    assert OPENAI_KEY not in report
    assert fingerprint_secret(OPENAI_KEY) in report


def test_incident_report_covers_all_its_runs(audit: AuditLog) -> None:
    audit.append(**ev("30:00.000000", run_id="run-43", phase="run", action="restore",
                      outcome="finished"))
    report = render_report(audit, incident="INC-9")
    assert report.startswith("# Postmortem timeline: incident INC-9\n")
    assert "- **Run(s):** run-42, run-43" in report
    assert "- **Duration:** 30m00s" in report


def test_unknown_run_or_incident_is_a_usage_error(audit: AuditLog) -> None:
    with pytest.raises(UsageError, match="no audit events for run nope"):
        render_report(audit, run_id="nope")
    with pytest.raises(UsageError):
        render_report(audit, incident="INC-404")
    with pytest.raises(UsageError):
        render_report(audit)


def test_report_shows_a_broken_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as log:
        log.append_many([ev("00:00.000000", outcome="started"),
                         ev("00:01.000000", outcome="finished")])
    subprocess.run(["sqlite3", str(path), "DROP TRIGGER events_no_update; "
                    "UPDATE events SET outcome = 'cancelled' WHERE seq = 2;"], check=True)
    with AuditLog(path) as log:
        report = render_report(log, run_id="run-42")
    assert "- **Audit chain:** BROKEN at seq 2:" in report


def test_report_carries_the_egress_and_batch_caveats(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "caveats.db")
    note = ("adds a drop rule for 10.0.0.1. DNS answers and already-open connections can "
            "outlive a block")
    log.append_many([
        {"run_id": "r-c", "phase": "plan", "action": "egress.block", "integration": "bot",
         "target": "fw:10.0.0.1", "outcome": "observed", "detail": {"note": note}},
        {"run_id": "r-c", "phase": "plan", "action": "egress.block", "integration": "bot",
         "target": "fw:10.0.0.2", "outcome": "observed", "detail": {"note": note}},
        {"run_id": "r-c", "phase": "plan", "action": "batch.cancel", "integration": "bot",
         "target": "oa:batch_1", "outcome": "observed",
         "detail": {"note": "cancelling cannot be undone; the unprocessed requests must be "
                            "resubmitted"}},
    ])
    text = render_report(log, run_id="r-c")
    caveats = text.split("### Caveats")[1].split("###")[0]
    assert "can outlive a block" in caveats and "`fw:10.0.0.1`, `fw:10.0.0.2`" in caveats
    assert "cannot be undone" in caveats and "oa:batch_1" in caveats


def test_an_applied_change_its_plan_called_irreversible_is_listed(tmp_path: Path) -> None:
    """The apply event of a batch cancel does not say it cannot be undone; its plan event
    does. The report lists the applied change (not the plan line) and counts it."""
    from console.report import build_report

    log = AuditLog(tmp_path / "audit.db")
    try:
        log.append_many([
            ev("00:00.000000", phase="plan", action="kill-switch", outcome="planned"),
            ev("00:00.100000", integration="bb", step="cancel", op_id="bb/cancel/0",
               phase="plan", action="batch.cancel", target="openai:batch_1",
               outcome="observed", detail={"reversible": False}),
            ev("00:01.000000", phase="run", action="kill-switch", outcome="started"),
            ev("00:02.000000", integration="bb", step="cancel", op_id="bb/cancel/0",
               phase="apply", action="batch.cancel", target="openai:batch_1",
               outcome="applied"),
            ev("00:03.000000", phase="run", action="kill-switch", outcome="finished"),
        ])
        text = section(render_report(log, run_id="run-42"), "Irreversible changes")
        assert "seq 4 bb cancel batch.cancel" in text and "applied" in text
        assert "seq 2" not in text
        report = build_report(log, run_id="run-42")
        applied = [t for t in report.timeline if t.irreversible and t.get("phase") == "apply"]
        assert [t.seq for t in applied] == [4]
    finally:
        log.close()


@pytest.mark.parametrize(("modes", "banner"), [
    (("plan", "live"), None),  # planned with `killswitch plan`, run live later
    (("live",), None),
    (("dry-run", "live"), None),  # planned in a dry-run console, then applied live
    (("plan", "dry-run"), "> **DRY-RUN: nothing was changed anywhere.**"),
    (("rehearsal",), "> **REHEARSAL: simulated; nothing real was changed.**"),
])
def test_a_run_that_touched_nothing_real_says_so_first(
        tmp_path: Path, modes: tuple[str, ...], banner: str | None) -> None:
    log = AuditLog(tmp_path / "audit.db")
    for i, mode in enumerate(modes):
        log.append(**ev(f"0{i}:00.000000", mode=mode, phase="plan" if mode == "plan" else "run",
                        action="kill-switch", outcome="planned" if mode == "plan" else "started"))
    lines = render_report(log, run_id="run-42").splitlines()
    log.close()
    if banner is None:
        assert not lines[2].startswith(">"), lines[:4]
    else:
        assert lines[2] == banner
