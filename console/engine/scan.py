"""Find copies of an integration's key that the inventory does not list.

The key value is read from a listed store copy and fingerprinted in memory (keyed: see
``console.scrub.fingerprint_secret``); every configured store that can be read is scanned
and each stored value fingerprinted the same way. Only fingerprints and references leave
this module.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.engine.proof import revealer
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


_NOT_IDENTITY = ("backend", "label", "field", "method")
"""Reference keys that do not say which stored secret is meant.

``field`` picks the key inside a JSON secret (see ``Adapter.reveal``), ``method`` is how to
disable it, ``label`` is for people. Every store's kill action acts on the whole secret
(KV soft-delete of the version, scheduled deletion or a tombstone, disabling the versions),
so a key in any field of a listed secret dies with it: that copy is listed.
"""

_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


def _text(value: Any) -> str:
    return str(value if value is not None else "").strip()


def _aws_secret_names(secret_id: Any) -> set[str]:
    """The secret names a Secrets Manager ``SecretId`` (name, full or partial ARN) can mean."""
    sid = _text(secret_id)
    if sid.startswith("arn:") and ":secret:" in sid:
        name = sid.split(":secret:", 1)[1]
        # a full ARN ends with "-" and 6 random characters; a partial ARN does not
        return {name, _ARN_SUFFIX.sub("", name)}
    return {sid}


def _ssm_name(ref: Mapping[str, Any]) -> str:
    name = _text(ref.get("name") or ref.get("parameter"))
    if name.startswith("arn:") and ":parameter" in name:
        name = name.split(":parameter", 1)[1]
    return name.strip("/")


def _gcp_secret(ref: Mapping[str, Any], project: str) -> tuple[str, str, str]:
    """(project, location, secret id) of a Secret Manager reference."""
    sid = _text(ref.get("name") or ref.get("secret")).strip("/")
    parts = sid.split("/")
    if sid.startswith("projects/") and len(parts) in (4, 6):
        return parts[1], parts[3] if len(parts) == 6 else "", parts[-1]
    return _text(ref.get("project")) or project, "", sid


def _same(found: Mapping[str, Any], listed: Mapping[str, Any], kind: str,
          options: Mapping[str, Any]) -> bool:
    """Whether a found copy and a listed reference denote the same stored secret.

    Both are on the same backend, whose adapter is ``kind`` with ``options``. References
    are normalised the way the adapter reads them: Vault ``mount`` defaults to ``secret``
    and slashes around paths do not count; a Secrets Manager ``secret_id`` may be a name or
    a full or partial ARN; a Secret Manager ``name`` may be ``projects/P/secrets/S`` (P the
    project id or, as the API lists it, its number) or the bare id with ``project`` from
    the reference or the backend. The field inside the secret never counts (see
    ``_NOT_IDENTITY``). Other adapters: every identifying key of the found reference must
    be equal.
    """
    if kind == "vault":
        def kv(ref: Mapping[str, Any]) -> tuple[str, str, str]:
            return (_text(ref.get("kind")) or "kv", _text(ref.get("mount")).strip("/")
                    or "secret", _text(ref.get("path")).strip("/"))
        return kv(found) == kv(listed)
    if kind == "aws-secrets":
        return _text(found.get("secret_id")) in _aws_secret_names(listed.get("secret_id"))
    if kind == "aws-ssm":
        return _ssm_name(found) == _ssm_name(listed)
    if kind == "gcp-secrets":
        project = _text(options.get("project"))
        f_project, f_location, f_secret = _gcp_secret(found, project)
        l_project, l_location, l_secret = _gcp_secret(listed, project)
        return (f_secret, f_location) == (l_secret, l_location) and \
            l_project in (f_project, project)
    keys = [k for k in found if k not in _NOT_IDENTITY]
    return all(_text(found[k]).strip("/") == _text(listed.get(k)).strip("/") for k in keys)


def _target(ref: Mapping[str, Any]) -> str:
    parts = [str(v) for k, v in ref.items() if k not in (*_NOT_IDENTITY, "kind") and v]
    field = f"#{ref['field']}" if ref.get("field") else ""
    return f"{ref['backend']}:{'/'.join(parts)}{field}"


async def scan_copies(config: Config, integrations: list[Integration]) -> ScanReport:
    """Fingerprint each integration's key and look for it in every readable store.

    A found copy is *listed* when one of the integration's credential references on the
    same backend denotes the same stored secret (see :func:`_same`). Every store or key
    that could not be looked at is a problem (``could not scan ...``): the report is then
    incomplete, and ``credentials scan`` exits 1.
    """
    from adapters.base import load_adapter_class
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
                    continue  # reported below, with the stores
                if not adapter.CAN_REVEAL:
                    continue
                try:
                    value = await rt.read_call(ref.backend, revealer(fields))
                except AdapterError as exc:
                    report.problems.append(f"could not scan {_target(fields)}, a listed copy "
                                           f"of {integ.id}'s key: {exc.msg}")
                    continue
                if value:
                    keys[integ.id] = fingerprint_secret(value)
                    break
            else:
                report.problems.append(f"could not scan for {integ.id}'s key: no listed copy "
                                       "in a store could be read to fingerprint it")

        async def scan_backend(name: str) -> list[tuple[dict[str, Any], str]]:
            def run(adapter: Any) -> list[tuple[dict[str, Any], str]]:
                return [(ref, fingerprint_secret(v)) for ref, v in adapter.scan()]
            return await rt.read_call(name, run, timeout=120)

        stores = []
        for name, spec in config.backends.items():
            try:
                if load_adapter_class(spec.type).CAN_REVEAL and rt.adapter(name).CAN_REVEAL:
                    stores.append(name)
            except (ConsoleError, ImportError) as exc:
                report.problems.append(
                    f"could not scan {name}: {getattr(exc, 'msg', None) or exc}")
        scanned = await asyncio.gather(*(scan_backend(n) for n in stores),
                                       return_exceptions=True)
        by_fp: dict[str, list[dict[str, Any]]] = {}
        for name, result in zip(stores, scanned, strict=True):
            if isinstance(result, BaseException):
                msg = getattr(result, "msg", None) or str(result) or type(result).__name__
                report.problems.append(f"could not scan {name}: {msg}")
                continue
            for stored, stored_fp in result:
                by_fp.setdefault(stored_fp, []).append(stored)
        for integ in integrations:
            key_fp = keys.get(integ.id)
            if key_fp is None:
                continue
            listed = [r.fields() for r in integ.credentials]
            for found in by_fp.get(key_fp, []):
                where = config.backends.get(found["backend"])
                kind, options = (where.type, where.options) if where else ("", {})
                is_listed = any(r.get("backend") == found["backend"] and
                                _same(found, r, kind, options) for r in listed)
                report.copies.append(Copy(integ.id, found["backend"], found, _target(found),
                                          key_fp, is_listed))
    finally:
        rt.close()
    return report
