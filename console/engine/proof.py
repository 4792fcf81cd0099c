"""Proof of death: is the integration's key really dead where it matters, at the provider?

Before a run touches credentials, the key value is read from a listed store copy (in memory
only: never journaled, logged or shown) and the provider that can test it is found. After
the run's verify, the provider gets one cheap authenticated call with that value, exactly as
an application would make it, expecting 401/403. A key that still works is rechecked every
``proof_interval`` seconds for ``proof_window`` seconds (revocation can take time to
propagate) and then reported as STILL LIVE.

States: ``revoked`` (proven), ``propagating`` (still accepted, rechecking), ``STILL LIVE``
(accepted after the window), ``unknown`` (no readable copy, no provider that can test it, or
the provider did not answer), with a detail line saying which.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import Adapter, Change, Verdict
from console.engine.runtime import Runtime
from console.errors import AdapterError, ConsoleError

__all__ = ["KeyProof", "Proof", "revealer"]


@dataclass
class Proof:
    """The proof-of-death outcome for one integration."""

    integration: str
    state: str
    detail: str
    checks: int = 0
    fingerprint: str = ""


def revealer(ref: Mapping[str, Any]) -> Callable[[Adapter], str | None]:
    """A call that reads the stored value ``ref`` points at (for ``Runtime.read_call``)."""
    def call(adapter: Adapter) -> str | None:
        return adapter.reveal(ref)
    return call


class KeyProof:
    """Captures key values before a run and proves their death after it."""

    def __init__(self, rt: Runtime, window: float, interval: float) -> None:
        self.rt = rt
        self.window = window
        self.interval = interval
        self._values: dict[str, tuple[str, str]] = {}  # integration -> (value, provider)
        self._why: dict[str, str] = {}

    def _backend_can(self, backend: str, flag: str) -> bool:
        try:
            return bool(getattr(self.rt.adapter(backend), flag, False))
        except ConsoleError:
            return False

    async def capture(self, integration: str, changes: list[Change]) -> None:
        """Read the key value of ``integration`` from a store copy, before it is disabled."""
        creds = [c for c in changes if c.action.startswith("credential.")]
        if not creds:
            return
        providers = [c.backend for c in creds if self._backend_can(c.backend, "CAN_PROBE")]
        stores = [c for c in creds if self._backend_can(c.backend, "CAN_REVEAL")]
        if not providers or not stores:
            # nothing to test with: no provider that can test keys, or no store copy that
            # holds the value; the provider's own verify stands (no proof line)
            return
        for change in stores:
            try:
                value = await self.rt.read_call(change.backend, revealer(change.ref))
            except AdapterError:
                continue
            if value:
                self._values[integration] = (value, providers[0])
                return
        self._why[integration] = "no readable store copy of the key to test it with"

    def wants(self, integration: str) -> bool:
        """True when capture found something to say about this integration."""
        return integration in self._values or integration in self._why

    async def prove(self, integration: str,
                    update: Callable[[Proof], None] | None = None) -> Proof:
        """Test the captured key at its provider until revoked or the window ends."""
        from console.scrub import fingerprint_secret

        if integration not in self._values:
            return Proof(integration, "unknown", self._why.get(integration, "not captured"))
        value, provider = self._values[integration]
        fp = fingerprint_secret(value)
        deadline = time.monotonic() + self.window
        checks = 0
        while True:
            checks += 1
            try:
                verdict = await self.rt.read_call(provider, lambda a: a.probe(value))
            except AdapterError as exc:
                verdict = Verdict(False, "unknown", exc.msg)
            if verdict.ok:
                return Proof(integration, "revoked",
                             f"{provider} rejects the key ({verdict.detail or '401/403'})",
                             checks, fp)
            if verdict.state != "live":
                # no answer about the key (429, 5xx, timeout): ask again until the window
                # ends; only then is it unknown
                if time.monotonic() >= deadline:
                    return Proof(integration, "unknown", f"{provider}: {verdict.detail} "
                                 f"({checks} checks in {self.window:g}s)", checks, fp)
                if update is not None:
                    update(Proof(integration, "unknown", f"{provider}: {verdict.detail}; "
                                 "rechecking", checks, fp))
                await asyncio.sleep(self.interval)
                continue
            if time.monotonic() >= deadline:
                return Proof(integration, "STILL LIVE",
                             f"{provider} still accepts the key after {self.window:g}s "
                             f"({checks} checks)", checks, fp)
            if update is not None:
                update(Proof(integration, "propagating",
                             f"{provider} still accepts the key; rechecking", checks, fp))
            await asyncio.sleep(self.interval)

    def forget(self) -> None:
        """Drop every captured value."""
        self._values.clear()
