"""Declarations of the in-process ``fake`` adapter (tests, benchmarks, exercises)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from adapters.base import ActionSpec
from adapters.options import AdapterOptions, FilePath, Wait
from adapters.specs import AdapterSpec

__all__ = ["FAKE", "FakeOptions"]


class FakeOptions(AdapterOptions):
    """Options of a ``fake`` backend: latency and faults to inject."""

    latency: Wait = 0.0
    """Seconds each call sleeps."""
    apply_latency: Wait = 0.0
    """Extra seconds apply sleeps after flipping (outcome-unknown tests)."""
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of calls failing with a 503."""
    throttle_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of calls failing with a 429."""
    retry_after: Wait = 0.05
    """Retry-After of throttled calls, seconds."""
    state_file: FilePath = ""
    """JSON file holding the switches (shared across processes)."""
    gate_file: FilePath = ""
    """Tests: apply waits until this file exists (``<gate_file>.entered`` marks one waiting)."""
    simulate: bool = False
    """Plan without reading state."""
    probe: Literal["", "switch", "live", "revoked", "unknown"] = ""
    """Proof of death: switch / live / revoked / unknown (acts as a provider)."""
    reveal: bool = False
    """True: acts as a secret store whose copies can be read (proof, scan)."""
    evidence: Literal["", "fail-source", "raise"] = ""
    """Evidence (``preserve``): "" every source is written; ``fail-source``: the usage
    source fails (recorded in the manifest); ``raise``: preserve itself fails (403)."""


REFERENCE: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key"],
    "properties": {"backend": {"type": "string"}, "label": {"type": "string"},
                   "key": {"type": "string", "minLength": 1,
                           "description": "the switch's name"}},
}
"""JSON Schema of a fake reference."""

_INVERSE = {
    "credential.disable": "credential.enable", "credential.enable": "credential.disable",
    "flag.disable": "flag.enable", "flag.enable": "flag.disable",
    "egress.block": "egress.unblock", "egress.unblock": "egress.block",
}


def _spec(kind: str, kill_point: str, reversible: bool = True) -> ActionSpec:
    return ActionSpec(kind, kill_point, reversible, _INVERSE.get(kind, ""), (f"fake:{kind}",),
                      REFERENCE)


FAKE = AdapterSpec(
    name="fake",
    options=FakeOptions,
    actions={
        "credential.disable": _spec("credential.disable", "credentials"),
        "credential.enable": _spec("credential.enable", "credentials"),
        "credential.destroy": _spec("credential.destroy", "credentials", reversible=False),
        "flag.disable": _spec("flag.disable", "flags"),
        "flag.enable": _spec("flag.enable", "flags"),
        "batch.cancel": _spec("batch.cancel", "batches", reversible=False),
        "egress.block": _spec("egress.block", "egress"),
        "egress.unblock": _spec("egress.unblock", "egress"),
    },
)
"""The fake adapter's declarations."""
