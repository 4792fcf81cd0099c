"""Faults for every sandbox backend: the one API exercises, tests and facilitators use.

Backend faults (the settings of :class:`~console.sandbox.standin.Faults`)::

    latency        seconds added to every call
    throttle_rate  share of calls answered 429, with ``Retry-After: retry_after`` seconds
    error_rate     share of calls answered ``error_status`` (5xx, default 503)
    timeout_rate   share of calls that hang ``hang`` seconds (client timeouts)
    down           the backend is unreachable: connection refused (real servers behind the
                   sandbox's fault proxy) or reset unanswered (stand-ins)

A backend is reached at its config URL (``endpoint_url`` / ``url`` / ``base_url`` /
``endpoint`` / ``regional_endpoint``; a Slack backend's ``webhook_file``). A stand-in
(:mod:`console.sandbox.standin`) obeys ``POST /_sandbox/faults`` itself; a real server
(moto, OpenBao, Unleash) sits behind a fault proxy (:mod:`console.sandbox.faultproxy`) whose
control port is recorded in the sandbox folder. Backends sharing a URL share its faults
(every ``aws-*`` backend of one moto server). Only backends marked ``sandbox = true`` whose
URL is on this machine are ever touched; anything else is refused (:class:`UsageError`,
exit 2). Setting faults replaces the backend's previous ones.

Special faults for exercises: :func:`hold_lock` (a lock held by another commander, in the
audit database's lock table, until its lease expires) and :func:`plant_copy` (a copy of an
integration's key in a store location the inventory does not list).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from console.errors import ConsoleError, UsageError
from console.sandbox.faultproxy import describe, proxy_state
from console.sandbox.seedkeys import integration_key_value, sandbox_dir
from console.sandbox.standin import Faults

__all__ = [
    "SETTINGS",
    "FaultTarget",
    "apply_fault",
    "clear_faults",
    "current_faults",
    "fault_target",
    "hold_lock",
    "plant_copy",
    "release_lock",
]

SETTINGS = tuple(f.name for f in fields(Faults))
"""The fault settings a backend accepts."""

LOCK_RUN_PREFIX = "EX-LOCK-"
"""Run id prefix of the locks :func:`hold_lock` plants (the only ones :func:`release_lock`
removes)."""

_URL_OPTIONS = ("endpoint_url", "url", "base_url", "endpoint", "regional_endpoint")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_PROXIED = {"moto": "aws-", "openbao": "vault", "unleash": "unleash"}
"""Real servers behind a fault proxy: service name -> backend type (prefix) it serves."""


@dataclass(frozen=True)
class FaultTarget:
    """Where a backend's faults are set.

    Attributes:
        backend: The backend name.
        urls: Its URLs (origins) from the config.
        controls: Base URLs answering ``/_sandbox/faults`` for it (one per server).
        shared_with: Other backends served by the same server(s): they get the same faults.
    """

    backend: str
    urls: tuple[str, ...]
    controls: tuple[str, ...]
    shared_with: tuple[str, ...] = ()


def _origin(url: str) -> str:
    s = urlsplit(url)
    return f"{s.scheme}://{s.hostname}:{s.port or (443 if s.scheme == 'https' else 80)}"


def _backend_urls(config: Any, name: str) -> list[str]:
    """The origins a backend talks to, from its options (no check)."""
    spec = config.backends[name]
    opts = spec.options
    urls = [str(opts[k]) for k in _URL_OPTIONS if opts.get(k)]
    if spec.type == "slack" and opts.get("webhook_file"):
        with contextlib.suppress(OSError):
            text = config.resolve(str(opts["webhook_file"])).read_text().strip()
            if text:
                urls.append(text)
    return [_origin(u) for u in urls if "://" in u]


def _proxy_ports(config: Any) -> dict[int, str]:
    """Public port -> name of every real sandbox server behind a fault proxy."""
    sb = getattr(config, "sandbox", None)
    ports = dict(getattr(sb, "ports", None) or {})
    return {int(getattr(sb, "moto_port", None) or 5055): "moto",
            int(getattr(sb, "openbao_port", None) or 8299): "openbao",
            int(ports.get("unleash", 4242)): "unleash"}


def _control(config: Any, backend: str, origin: str) -> str:
    """The base URL that takes ``/_sandbox/faults`` for ``origin`` of ``backend``."""
    port = urlsplit(origin).port or 80
    service = _proxy_ports(config).get(port)
    btype = str(config.backends[backend].type)
    if service and btype.startswith(_PROXIED[service]):
        state = proxy_state(sandbox_dir(config), service)
        if state is None:
            raise ConsoleError(f"the {service} sandbox behind {origin} is not running, so "
                               f"{backend} takes no faults", where=backend,
                               hint="start it: killswitch sandbox start")
        return f"http://127.0.0.1:{int(state['control'])}"
    return origin


def fault_target(config: Any, backend: str) -> FaultTarget:
    """Where ``backend``'s faults are set.

    Raises:
        UsageError: No such backend, not ``sandbox = true``, not on this machine, or no
            server to inject faults into (a flag file) (exit 2).
        ConsoleError: Its proxied server is not running.
    """
    spec = config.backends.get(backend)
    if spec is None:
        raise UsageError(f"no backend named {backend!r} in the config",
                         where=str(config.path),
                         hint="one of: " + ", ".join(config.backends) if config.backends
                         else "add [backends.NAME] tables to the config")
    if not spec.sandbox:
        raise UsageError(f"{backend} is not a sandbox backend; faults are injected only into "
                         "sandbox backends, never into a real system", where=str(config.path),
                         hint=f"mark it `sandbox = true` only if [backends.{backend}] is a "
                         "local stand-in")
    urls = _backend_urls(config, backend)
    if not urls:
        raise UsageError(f"{backend} ({spec.type}) has no server to inject faults into",
                         where=str(config.path),
                         hint="faults apply to backends reached over HTTP (endpoint_url, url, "
                         "base_url, endpoint); a flag file has none")
    far = [u for u in urls if urlsplit(u).hostname not in _LOOPBACK]
    if far:
        raise UsageError(f"{backend} is reached at {', '.join(far)}, not on this machine; "
                         "faults are injected only into local sandbox servers",
                         where=str(config.path), hint="point it at 127.0.0.1")
    controls = tuple(dict.fromkeys(_control(config, backend, u) for u in urls))
    shared = tuple(name for name, other in config.backends.items()
                   if name != backend and other.sandbox
                   and set(_backend_urls(config, name)) & set(urls))
    return FaultTarget(backend, tuple(urls), controls, shared)


def _settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """Validated fault settings (UsageError naming the bad one)."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise UsageError(f"unknown fault setting(s) {', '.join(unknown)}", where=where,
                         hint="use " + ", ".join(SETTINGS))
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "down":
            if not isinstance(value, bool):
                raise UsageError(f"down must be true or false, not {value!r}", where=where)
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{key} must be a number, not {value!r}", where=where)
        if key == "error_status":
            if not (isinstance(value, int) and 500 <= value <= 599):
                raise UsageError(f"error_status must be a 5xx status, not {value!r}",
                                 where=where, hint="e.g. 500, 502, 503 (429 is throttle_rate)")
        elif key.endswith("_rate"):
            if not 0 <= value <= 1:
                raise UsageError(f"{key} must be between 0 and 1, not {value!r}", where=where)
        elif value < 0:
            raise UsageError(f"{key} must not be negative, not {value!r}", where=where)
        out[key] = value
    total = sum(float(out.get(k, 0)) for k in ("throttle_rate", "error_rate", "timeout_rate"))
    if total > 1:
        raise UsageError(f"throttle_rate + error_rate + timeout_rate is {total:g}, more than 1",
                         where=where, hint="the rates are shares of the same calls")
    return out


def _call(base: str, method: str, body: dict[str, Any] | None = None,
          timeout: float = 5.0) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/_sandbox/faults", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        raise ConsoleError(f"{base} refused the faults: HTTP {exc.code} "
                           f"{exc.read()[:200].decode(errors='replace')}", where=base,
                           hint="is this a sandbox stand-in? (killswitch sandbox status)"
                           ) from exc
    except (OSError, ValueError) as exc:
        raise ConsoleError(f"nothing that takes faults answers at {base}: {exc}", where=base,
                           hint="start the sandbox: killswitch sandbox start") from exc


def _phrase(target: FaultTarget, what: str) -> str:
    shared = f"; shared with {', '.join(target.shared_with)}" if target.shared_with else ""
    return f"{target.backend} ({', '.join(target.urls)}{shared}): {what}"


def apply_fault(config: Any, backend: str, settings: dict[str, Any]) -> str:
    """Set ``backend``'s faults to ``settings`` (the ones not named are off).

    Args:
        config: The loaded config.
        backend: A backend marked ``sandbox = true`` with a local server.
        settings: Any of :data:`SETTINGS`; ``{"clear": True}`` clears instead.

    Returns:
        One line saying what is now in effect on that backend.

    Raises:
        UsageError: Not a sandbox backend, no server, or a bad setting (exit 2).
        ConsoleError: The sandbox server does not answer.
    """
    settings = dict(settings)
    if settings.pop("clear", False):
        if settings:
            raise UsageError("clear cannot be combined with other fault settings",
                             where=backend)
        return clear_faults(config, backend)
    target = fault_target(config, backend)
    values = _settings(settings, where=backend)
    for control in target.controls:
        _call(control, "POST", values)
    return _phrase(target, describe(values))


def _fault_capable(config: Any) -> list[str]:
    """Sandbox backends with a local server (candidates for faults)."""
    out = []
    for name, spec in config.backends.items():
        urls = _backend_urls(config, name)
        if spec.sandbox and urls and all(urlsplit(u).hostname in _LOOPBACK for u in urls):
            out.append(name)
    return out


def clear_faults(config: Any, backend: str | None = None) -> str:
    """Turn faults off on ``backend``, or on every sandbox backend (``None``).

    With ``None``, servers that are not running are skipped (they have no faults).

    Raises:
        UsageError: ``backend`` is not a sandbox backend with a server, or (``None``) the
            config has no such backend at all (exit 2).
        ConsoleError: ``backend``'s server does not answer.
    """
    if backend is not None:
        target = fault_target(config, backend)
        for control in target.controls:
            _call(control, "POST", {})
        return _phrase(target, "no faults")
    names = _fault_capable(config)
    if not names:
        raise UsageError("the config has no sandbox backend with a server to clear faults on",
                         where=str(config.path), hint="faults apply to `sandbox = true` "
                         "backends reached over HTTP on 127.0.0.1")
    done: set[str] = set()
    cleared = []
    for name in names:
        try:
            target = fault_target(config, name)
        except ConsoleError:
            continue  # its server is not running: nothing to clear
        for control in target.controls:
            if control in done:
                continue
            done.add(control)
            with contextlib.suppress(ConsoleError):
                _call(control, "POST", {}, timeout=2)
        cleared.append(name)
    return f"faults cleared on {', '.join(cleared) or 'nothing (no sandbox server runs)'}"


def current_faults(config: Any) -> dict[str, dict[str, Any]]:
    """The faults in effect, by backend: only backends with a fault on, and only the
    settings that matter (e.g. ``{"openai-sandbox": {"latency": 2.0}}``). Servers that do
    not run or answer are left out."""
    seen: dict[str, dict[str, Any] | None] = {}
    out: dict[str, dict[str, Any]] = {}
    default = asdict(Faults())
    for name in _fault_capable(config):
        try:
            target = fault_target(config, name)
        except ConsoleError:
            continue
        merged: dict[str, Any] = {}
        for control in target.controls:
            if control not in seen:
                try:
                    seen[control] = _call(control, "GET", timeout=2)
                except ConsoleError:
                    seen[control] = None
            state = seen[control]
            if state:
                merged.update({k: v for k, v in state.items()
                               if k in default and v != default[k]})
        active = _active(merged)
        if active:
            out[name] = active
    return out


def _active(values: dict[str, Any]) -> dict[str, Any]:
    """Drop the settings that do nothing (a retry_after without throttling...)."""
    keep = dict(values)
    if not keep.get("throttle_rate"):
        keep.pop("retry_after", None)
    if not keep.get("error_rate"):
        keep.pop("error_status", None)
    if not keep.get("timeout_rate"):
        keep.pop("hang", None)
    return {k: v for k, v in keep.items() if v not in (0, 0.0, False)}


# -- special faults ------------------------------------------------------------------------

def _sandbox_only(config: Any, what: str) -> None:
    real = list(config.real_backends)
    if real:
        raise UsageError(f"{what} only runs on a sandbox config, and these backends are not "
                         f"sandbox backends: {', '.join(real)}; nothing was changed",
                         where=str(config.path),
                         hint="use a config whose every backend has `sandbox = true`")


def _integration(config: Any, integration: str) -> Any:
    integ = config.integration(integration)
    if integ is None:
        raise UsageError(f"no integration {integration!r} in the inventory",
                         where=str(config.path),
                         hint="one of: " + ", ".join(i.id for i in config.integrations))
    return integ


def _other_host(holder: str) -> str:
    """A host name for the holder that is not this host (so it cannot be proven dead)."""
    from console.identity import host_name

    here = host_name()
    base = holder.rpartition("@")[2] if "@" in holder else "bridge"
    host = f"{base}.exercise" if base else "bridge.exercise"
    return host if host != here else f"{host}-elsewhere"


def hold_lock(config: Any, integration: str, holder: str, seconds: float) -> str:
    """Lock ``integration`` as held by another commander for ``seconds`` (an exercise inject).

    Writes a row in the store's lock table (:func:`console.store.open_locks`: the SQLite
    audit database or the shared PostgreSQL store), under a new fencing token, held by
    ``holder`` on another host with a lease of ``seconds`` and no renewal: a live run on the
    integration is refused with ``LockHeld`` naming the holder until the lease expires, and is
    then allowed to take the lock over (a dead holder on another host).

    Returns:
        One line describing the lock.

    Raises:
        UsageError: Not a sandbox config, unknown integration, ``seconds`` not positive, or
            a real run holds the lock now (exit 2).
    """
    from console.engine.locks import Lock
    from console.engine.model import utcnow
    from console.store import open_locks

    _sandbox_only(config, "a held-lock fault")
    _integration(config, integration)
    if not seconds > 0:
        raise UsageError(f"the lock must be held for a positive time, not {seconds!r}",
                         where=integration)
    who = holder.strip() or "another-commander"
    table = open_locks(config)
    run_id = f"{LOCK_RUN_PREFIX}{secrets.token_hex(4)}"
    host = _other_host(who)
    lease_until = time.time() + float(seconds)
    busy = table.plant(Lock(integration, run_id, who, host, 1, utcnow(), "", lease_until),
                       lambda lock: lock.run_id.startswith(LOCK_RUN_PREFIX)
                       or table.holder_gone(lock))
    if busy is not None:
        raise UsageError(f"a run holds the lock already: {busy.describe()}",
                         where=integration, hint="let it finish first")
    return (f"{integration} locked by {who} on {host} (run {run_id}) for {seconds:g} s, "
            "lease not renewed")


def release_lock(config: Any, integration: str) -> str:
    """Drop the exercise lock :func:`hold_lock` put on ``integration`` (never a run's lock).

    Raises:
        UsageError: Not a sandbox config, or unknown integration (exit 2).
    """
    from console.store import open_locks

    _sandbox_only(config, "releasing a held-lock fault")
    _integration(config, integration)
    gone = open_locks(config).drop(integration, LOCK_RUN_PREFIX)
    return f"{integration}: exercise lock released" if gone else \
        f"{integration}: no exercise lock was held"


def _listed(config: Any, backend: str, ref: dict[str, str]) -> bool:
    """True when an inventory reference on ``backend`` names this location."""
    for integ in config.integrations:
        for cred in integ.credentials:
            if cred.backend != backend:
                continue
            listed = cred.fields()
            if all(str(listed.get(k) or ("secret" if k == "mount" else "")).strip("/")
                   == v.strip("/") for k, v in ref.items()):
                return True
    return False


def plant_copy(config: Any, integration: str, backend: str, path: str) -> str:
    """Write ``integration``'s sandbox key into a store location the inventory does not list.

    Backends: ``vault`` (KV v2; ``path`` is ``ci/leaked`` in mount ``secret``, or
    ``mount:path``), ``aws-secrets`` (``path`` is the secret name), ``aws-ssm`` (the
    parameter name). The stored value is ``{"api_key": <key>}`` (a plain SecureString for
    SSM), like the seeded copies, so ``killswitch credentials scan`` and planning with
    ``include_unlisted`` find it.

    Returns:
        Where the copy was written (never the value).

    Raises:
        UsageError: Not a sandbox config or backend, unsupported backend type, unknown
            integration without a sandbox provider key, or a listed location (exit 2).
        ConsoleError: The store refused the write.
    """
    from console.engine.runtime import Runtime
    from console.errors import AdapterError

    _sandbox_only(config, "an unlisted-copy fault")
    _integration(config, integration)
    spec = config.backends.get(backend)
    if spec is None:
        raise UsageError(f"no backend named {backend!r} in the config", where=str(config.path))
    fault_target(config, backend)  # sandbox, local, running
    value = integration_key_value(config, integration)
    if value is None:
        raise UsageError(f"{integration} has no sandbox provider key to leak",
                         where=integration, hint="pick an integration with an OpenAI or "
                         "Anthropic sandbox key")
    where = f"{backend} {path}"
    rt = Runtime(config)
    try:
        adapter: Any = rt.adapter(backend)
        if spec.type == "vault":
            mount, _, sub = path.rpartition(":") if ":" in path else ("secret", "", path)
            mount, sub = mount.strip("/") or "secret", sub.strip("/")
            if _listed(config, backend, {"mount": mount, "path": sub}):
                raise UsageError(f"{mount}/{sub} on {backend} is listed in the inventory",
                                 where=where, hint="plant the copy somewhere unlisted")
            adapter.open()
            adapter.client.secrets.kv.v2.create_or_update_secret(
                path=sub, mount_point=mount, secret={"api_key": value})
            where = f"{backend} {mount}/{sub}"
        elif spec.type == "aws-secrets":
            if _listed(config, backend, {"secret_id": path}):
                raise UsageError(f"secret {path} on {backend} is listed in the inventory",
                                 where=where, hint="plant the copy somewhere unlisted")
            sm = adapter.aws.client("secretsmanager")
            body = json.dumps({"api_key": value})
            try:
                sm.create_secret(Name=path, SecretString=body)
            except sm.exceptions.ResourceExistsException:
                sm.put_secret_value(SecretId=path, SecretString=body)
            where = f"{backend} secret {path}"
        elif spec.type == "aws-ssm":
            if _listed(config, backend, {"name": path}):
                raise UsageError(f"parameter {path} on {backend} is listed in the inventory",
                                 where=where, hint="plant the copy somewhere unlisted")
            adapter.aws.client("ssm").put_parameter(Name=path, Value=value, Type="SecureString",
                                                Overwrite=True)
            where = f"{backend} parameter {path}"
        else:
            raise UsageError(f"cannot plant a key copy in {backend} ({spec.type})",
                             where=where, hint="use a vault, aws-secrets or aws-ssm backend")
    except (AdapterError, OSError) as exc:
        raise ConsoleError(f"planting the copy in {where} failed: "
                           f"{getattr(exc, 'msg', None) or exc}", where=where) from exc
    except Exception as exc:
        if isinstance(exc, ConsoleError):
            raise
        raise ConsoleError(f"planting the copy in {where} failed: {exc}", where=where) from exc
    finally:
        rt.close()
    return f"an unlisted copy of {integration}'s key now sits in {where}"
