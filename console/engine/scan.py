"""Find copies of an integration's key that the inventory does not list.

The key value is read from a listed store copy and fingerprinted (SHA-256 prefix) in memory;
every configured store that can be read is scanned and each stored value fingerprinted the
same way. Only fingerprints and references leave this module.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.engine.runtime import Runtime
from console.errors import AdapterError, ConsoleError

if TYPE_CHECKING:
    from console.config import Config
    from console.inventory import Integration

__all__ = ["Copy", "ScanReport", "scan_copies"]


@dataclass
class Copy:
    """One stored copy of an integration's key."""

    integration: str
    backend: str
    ref: dict[str, Any]
    target: str
    fingerprint: str
    listed: bool


@dataclass
class ScanReport:
    """What a scan found, and what it could not look at."""

    copies: list[Copy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def unlisted(self, integration: str) -> list[dict[str, Any]]:
        """References of the unlisted copies of ``integration``'s key."""
        return [c.ref for c in self.copies if c.integration == integration and not c.listed]


def _same(found: dict[str, Any], listed: dict[str, Any]) -> bool:
    keys = [k for k in found if k not in ("label",)]
    return all(str(found[k]).strip("/") == str(listed.get(k, "kv" if k == "kind" else
                                                          "")).strip("/") for k in keys)


def _target(ref: dict[str, Any]) -> str:
    parts = [str(v) for k, v in ref.items() if k not in ("backend", "kind", "label") and v]
    return f"{ref['backend']}:{'/'.join(parts)}"


async def scan_copies(config: Config, integrations: list[Integration]) -> ScanReport:
    """Fingerprint each integration's key and look for it in every readable store."""
    from console.scrub import fingerprint_secret

    rt = Runtime(config)
    report = ScanReport()
    try:
        keys: dict[str, str] = {}
        for integ in integrations:
            for ref in integ.credentials:
                fields = ref.fields()
                try:
                    adapter = rt.adapter(ref.backend)
                except ConsoleError:
                    continue
                if not adapter.CAN_REVEAL:
                    continue
                try:
                    value = await rt.read_call(ref.backend, lambda a, f=fields: a.reveal(f))
                except AdapterError as exc:
                    report.problems.append(f"{integ.id}: {_target(fields)}: {exc.msg}")
                    continue
                if value:
                    keys[integ.id] = fingerprint_secret(value)
                    break
            else:
                report.problems.append(f"{integ.id}: no readable listed copy of its key to "
                                       "fingerprint")

        async def scan_backend(name: str) -> list[tuple[dict[str, Any], str]]:
            def run(adapter: Any) -> list[tuple[dict[str, Any], str]]:
                return [(ref, fingerprint_secret(v)) for ref, v in adapter.scan()]
            return await rt.read_call(name, run, timeout=120)

        stores = []
        for name in config.backends:
            try:
                if rt.adapter(name).CAN_REVEAL:
                    stores.append(name)
            except ConsoleError as exc:
                report.problems.append(f"{name}: {exc.msg}")
        found = await asyncio.gather(*(scan_backend(n) for n in stores), return_exceptions=True)
        by_fp: dict[str, list[dict[str, Any]]] = {}
        for name, result in zip(stores, found, strict=True):
            if isinstance(result, BaseException):
                msg = getattr(result, "msg", str(result))
                report.problems.append(f"{name}: could not scan: {msg}")
                continue
            for ref, fp in result:
                by_fp.setdefault(fp, []).append(ref)
        for integ in integrations:
            fp = keys.get(integ.id)
            if fp is None:
                continue
            listed = [r.fields() for r in integ.credentials]
            for ref in by_fp.get(fp, []):
                is_listed = any(r.get("backend") == ref["backend"] and _same(ref, r)
                                for r in listed)
                report.copies.append(Copy(integ.id, ref["backend"], ref, _target(ref), fp,
                                          is_listed))
    finally:
        rt.close()
    return report
