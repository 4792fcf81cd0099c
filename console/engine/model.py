"""Plans and run results: plain, serialisable data shared by planner, executor and CLI."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.base import UNSUPPORTED, Change
from adapters.canonical import legacy_json
from console.errors import EXIT_FAILED, EXIT_OK, EXIT_VERIFY, PlanUntrusted, UsageError
from console.vocab import DEFAULT_CAUSE, NOT_DONE, Outcome

__all__ = ["PLAN_VERSION", "Plan", "StepInfo", "OpResult", "RunResult", "new_run_id",
           "plan_counts", "utcnow"]

PLAN_VERSION = 2
"""2: hashed over RFC 8785 (JCS) canonical JSON; 1: Python's sorted-keys JSON (still read)."""


def _canonical_plan(body: dict[str, Any]) -> bytes:
    """The bytes a plan's hash and signature cover, by the plan's own version. The default
    cause is not covered (plans saved before causes existed keep their hash): a body that
    says ``"cause": "other"`` hashes as one that does not say it."""
    if body.get("cause") == DEFAULT_CAUSE:
        body = {k: v for k, v in body.items() if k != "cause"}
    if body.get("version") == 1:
        return legacy_json(body).encode()
    from console.engine.planfile import canonical_plan_bytes  # the same bytes, faster

    return canonical_plan_bytes(body)


def utcnow() -> str:
    """Current UTC time, ISO-8601 with a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """A short, sortable, unique run id: ``r-YYYYMMDD-HHMMSS-xxxx``."""
    return datetime.now(UTC).strftime("r-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclass
class StepInfo:
    """The part of a runbook step the executor needs."""

    id: str
    action: str
    needs: list[str] = field(default_factory=list)
    on_error: str = "stop"
    timeout: float | None = None


@dataclass
class Plan:
    """The full list of changes one run would make. Hashed; savable; applied verbatim.

    Attributes:
        run_id: Id the run will have when applied.
        runbook: Runbook name (``restore`` for undo plans).
        selectors: What the operator selected.
        integrations: Ids of the selected integrations.
        steps: Step DAG of the runbook.
        changes: Every planned change.
        notes: Lines for the operator (steps skipped by ``when``, kill points not listed...).
        restore_of: For restore plans, the run being undone.
        created: UTC time of planning.
        config: Path of the config the plan was made with.
        cause: Why the run happens (:data:`console.vocab.CAUSES`). Part of the hash, so a
            plan approved for a cost spike cannot be run as something else; left out of the
            hashed body when it is the default ``other`` (plans saved before causes existed
            keep their hash).
    """

    run_id: str
    runbook: str
    selectors: list[str]
    integrations: list[str]
    steps: list[StepInfo]
    changes: list[Change]
    notes: list[str] = field(default_factory=list)
    restore_of: str = ""
    created: str = field(default_factory=utcnow)
    config: str = ""
    version: int = PLAN_VERSION
    cause: str = DEFAULT_CAUSE

    def body(self) -> dict[str, Any]:
        """The plan without its hash, as JSON-ready data."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if data["cause"] == DEFAULT_CAUSE:
            del data["cause"]
        data["steps"] = [asdict(s) for s in self.steps]
        data["changes"] = [c.to_dict() for c in self.changes]
        return data

    @staticmethod
    def hash_of(body: dict[str, Any]) -> str:
        """SHA-256 over a canonical plan body."""
        return hashlib.sha256(_canonical_plan(body)).hexdigest()

    @property
    def hash(self) -> str:
        """SHA-256 over the canonical plan body."""
        return self.hash_of(self.body())

    def to_json(self, key: bytes | None = None, plan_hash: str | None = None) -> str:
        """The plan with its hash (and, with an audit key, its HMAC ``signature``).

        ``plan_hash``: :attr:`hash`, when the caller has just computed it for this very plan
        (it is not checked)."""
        body = self.body()
        data: dict[str, Any] = {**body, "cause": self.cause,
                                "hash": plan_hash or self.hash_of(body)}
        if key:
            data["signature"] = self.signature_of(body, key)
        from console.engine.planfile import plan_text  # json.dumps(indent=2, sort_keys), faster

        return plan_text(data)

    @staticmethod
    def signature_of(body: dict[str, Any], key: bytes) -> str:
        """HMAC-SHA-256 over a canonical plan body, with the audit key."""
        return "hmac-sha256:" + hmac.new(key, _canonical_plan(body), hashlib.sha256).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan (no hash check)."""
        body = {k: v for k, v in data.items() if k not in ("hash", "signature")}
        body["steps"] = [StepInfo(**s) for s in body.get("steps", [])]
        body["changes"] = [Change.from_dict(c) for c in body.get("changes", [])]
        return cls(**body)

    @classmethod
    def load(cls, path: str | Path, key: bytes | None = None) -> Plan:
        """Read a saved plan and check its hash, and its signature when ``key`` is given.

        A hash only shows the file was not damaged or edited carelessly (anyone can
        recompute it); a signature shows it was written by someone holding the audit key.
        Neither makes the plan trusted: ``Session.rederive`` checks it against a fresh plan.

        Raises:
            UsageError: The file is missing, not a plan, or does not match its hash.
            PlanUntrusted: An audit key is configured and the plan is unsigned or its
                signature does not match.
        """
        from console.engine.planfile import read_plan_file

        p = Path(path)
        data = read_plan_file(p)
        try:
            plan = cls.from_dict(data)
        except (TypeError, KeyError, ValueError) as exc:
            raise UsageError(f"plan file has an unexpected shape: {exc}", where=str(p),
                             hint="save a fresh plan with `killswitch plan ... --out FILE`"
                             ) from exc
        body = plan.body()
        if data.get("hash") != cls.hash_of(body):
            raise UsageError("plan file does not match its hash: it was edited after saving",
                             where=str(p), hint="plan again instead of editing a plan")
        if key:
            sig = data.get("signature")
            if not isinstance(sig, str) or not sig:
                raise PlanUntrusted(
                    "the saved plan is not signed, and an audit key is configured: refused",
                    where=str(p), hint="save the plan again with the audit key set "
                    "(`killswitch plan ... --out FILE`)")
            if not hmac.compare_digest(sig, cls.signature_of(body, key)):
                raise PlanUntrusted(
                    "the saved plan's signature does not match: it was edited, or signed "
                    "with another key; refused", where=str(p),
                    hint="plan again with this trail's audit key and review the new plan")
        return plan

    @property
    def irreversible(self) -> list[Change]:
        """Changes that would be applied and cannot be undone."""
        return [c for c in self.changes if c.actionable and not c.reversible]

    def step(self, step_id: str) -> StepInfo | None:
        """The step with this id."""
        return next((s for s in self.steps if s.id == step_id), None)

    def not_restored(self) -> dict[str, list[str]]:
        """Restore plans: per integration, what stays dead because it cannot be undone."""
        out: dict[str, list[str]] = {}
        batches: dict[str, int] = {}
        for c in self.changes:
            if not c.inverse_of or c.status != UNSUPPORTED:
                continue
            if c.action == "batch.cancel":
                batches[c.integration] = batches.get(c.integration, 0) + 1
                continue
            out.setdefault(c.integration, []).append(
                f"{c.target}: {c.note.removeprefix('cannot be restored: ')}")
        for integ, n in batches.items():
            out.setdefault(integ, []).append(
                f"{n} batch job{'s stay' if n != 1 else ' stays'} cancelled: resubmit "
                "the unprocessed requests as new jobs")
        return dict(sorted(out.items()))


def plan_counts(plan: Plan) -> dict[str, int]:
    """What a plan would do, in numbers, for its summary lines (plan review, confirmation).

    Args:
        plan: Any plan (a runbook's, a restore's, a saved one).

    Returns:
        ``targets`` (integrations), ``changes`` (changes that would be applied),
        ``irreversible`` (of those, the ones that cannot be undone), then one entry per
        status of the changes that would not be applied (``noop``, ``unsupported``,
        ``error``...), in the order first met. The first three are always present.
    """
    counts = {"targets": len(plan.integrations),
              "changes": sum(1 for c in plan.changes if c.actionable),
              "irreversible": len(plan.irreversible)}
    for c in plan.changes:
        if not c.actionable:
            counts[c.status] = counts.get(c.status, 0) + 1
    return counts


@dataclass
class OpResult:
    """What happened to one change in a run.

    Attributes:
        op_id: The change's id.
        outcome: applied / noop / failed / refused / skipped / unsupported / pending.
        message: Provider message or reason.
        attempts: How many apply attempts were made.
        duration: Seconds from start to end.
        undo: Undo data returned by apply.
        verdict: Verify word (dead / live / restored / STILL LIVE / unknown), if verified.
        verified: True, False, or None when not verified.
    """

    op_id: str
    outcome: str = Outcome.PENDING
    message: str = ""
    attempts: int = 0
    duration: float = 0.0
    undo: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    verified: bool | None = None


@dataclass
class RunResult:
    """The outcome of applying (or resuming) a plan."""

    run_id: str
    plan: Plan
    results: dict[str, OpResult]
    cancelled: bool = False
    elapsed: float = 0.0
    proofs: dict[str, Any] = field(default_factory=dict)
    """Proof of death per integration (``console.engine.proof.Proof``)."""

    def count(self, outcome: str) -> int:
        """How many operations ended with ``outcome``."""
        return sum(1 for r in self.results.values() if r.outcome == outcome)

    @property
    def failed(self) -> list[OpResult]:
        """Operations that did not end as planned."""
        return [r for r in self.results.values()
                if r.outcome in NOT_DONE]

    @property
    def verify_failed(self) -> list[OpResult]:
        """Operations whose verification did not prove the change."""
        return [r for r in self.results.values() if r.verified is False]

    @property
    def still_live(self) -> list[Any]:
        """Integrations whose key the provider still accepts after the proof window."""
        return [p for p in self.proofs.values() if p.state == "STILL LIVE"]

    @property
    def unchecked(self) -> list[Any]:
        """Integrations whose key could not be tested at its provider (proof ``unknown``)."""
        return [p for p in self.proofs.values() if p.state == "unknown"]

    @property
    def not_done(self) -> list[OpResult]:
        """Operations that were in the plan and did not happen (no adapter can do them)."""
        return [r for r in self.results.values() if r.outcome == Outcome.UNSUPPORTED]

    def exit_code(self) -> int:
        """The CLI's exit code for this run (the table in ``console.errors``).

        4 wins whenever a key is still live or could not be checked: that must never hide
        behind 1. Then 1 for anything not done (failed, skipped, cancelled, unsupported:
        a restore that cannot undo everything), then 4 for a change that did not verify.
        """
        if self.still_live or self.unchecked:
            return EXIT_VERIFY
        if self.failed or self.cancelled or self.not_done:
            return EXIT_FAILED
        if self.verify_failed:
            return EXIT_VERIFY
        return EXIT_OK
