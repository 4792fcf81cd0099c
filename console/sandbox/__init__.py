"""Local stand-ins for the systems the console acts on: the embedded sandbox.

Public API (used by ``killswitch sandbox start|status|stop`` and ``make run``)::

    start(config) -> list[ServiceStatus]    # idempotent; seeds what the inventory references
    status(config) -> list[ServiceStatus]
    stop(config) -> list[ServiceStatus]     # kills only what start started
    reset(config) -> list[ServiceStatus]    # stop, drop the inventory's flags, start again

Services today: the OpenBao dev server (:mod:`console.sandbox.openbao`) on
``[sandbox] openbao_port`` (default 8299; the port after it must be free too) and the flagd
flag files of every ``flagfile`` backend the inventory references. State (pid file, log,
root token in ``openbao.token``, mode 0600) lives in ``[sandbox] dir`` (default
``.sandbox`` next to the config). Seeded secret values are fake and sandbox-only.

Errors: a taken port raises :class:`~console.errors.ConfigError`; a server that does not
become healthy raises :class:`~console.errors.ConsoleError` naming its log file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ServiceStatus", "flag_refs", "reset", "start", "status", "stop"]


@dataclass(frozen=True)
class ServiceStatus:
    """One sandbox service as seen by start / status / stop.

    Attributes:
        name: Service name (``openbao``, ``flagfile:<backend>``).
        url: Where it is reached (``http://127.0.0.1:8299``, ``file:///...``).
        pid: Process id, when it is a process.
        running: Whether it is up.
        detail: One line for the operator (seeded items, why it is down, ...).
    """

    name: str
    url: str
    pid: int | None
    running: bool
    detail: str = ""


def flag_refs(config: Any) -> dict[str, tuple[Path, list[str]]]:
    """Flag files of ``flagfile`` backends and the flag keys the inventory names in them."""
    out: dict[str, tuple[Path, list[str]]] = {}
    for integ in config.integrations:
        for ref in integ.flags:
            backend = config.backends.get(ref.backend)
            if backend is None or backend.type != "flagfile":
                continue
            path = config.resolve(str(backend.options.get("path") or ""))
            key = str(ref.fields().get("flag") or "")
            entry = out.setdefault(ref.backend, (path, []))
            if key and key not in entry[1]:
                entry[1].append(key)
    return out


def _seed_flags(config: Any) -> list[ServiceStatus]:
    from adapters.flagfile import update_flag_file

    statuses = []
    for backend, (path, keys) in flag_refs(config).items():
        added: list[str] = []

        def mutate(data: dict[str, Any], keys: list[str] = keys, added: list[str] = added) -> bool:
            for key in keys:
                if key not in data["flags"]:
                    data["flags"][key] = {"state": "ENABLED",
                                          "variants": {"on": True, "off": False},
                                          "defaultVariant": "on", "targeting": {}}
                    added.append(key)
            return bool(added)

        path.parent.mkdir(parents=True, exist_ok=True)
        data = update_flag_file(path, mutate, create=True)
        statuses.append(ServiceStatus(
            f"flagfile:{backend}", path.as_uri(), None, True,
            f"{len(data['flags'])} flag(s); seeded {', '.join(added) or 'nothing new'}"))
    return statuses


SERVICES = ("openbao", "moto", "unleash", "standins")
"""Process services, in start order; each module has start / status / stop(config)."""


def _services(config: Any) -> list[Any]:
    """The service modules the config needs (a module without ``wanted`` always is)."""
    import importlib

    out = []
    for name in SERVICES:
        module = importlib.import_module(f"console.sandbox.{name}")
        if getattr(module, "wanted", lambda _c: True)(config):
            out.append(module)
    return out


def start(config: Any) -> list[ServiceStatus]:
    """Start (or keep) every sandbox service and seed what the inventory references."""
    return [*(svc.start(config) for svc in _services(config)), *_seed_flags(config)]


def status(config: Any) -> list[ServiceStatus]:
    """Report every sandbox service without changing anything."""
    out = [svc.status(config) for svc in _services(config)]
    for backend, (path, keys) in flag_refs(config).items():
        out.append(ServiceStatus(f"flagfile:{backend}", path.as_uri(), None, path.exists(),
                                 f"{len(keys)} flag(s) referenced"
                                 if path.exists() else "not created yet"))
    return out


def stop(config: Any) -> list[ServiceStatus]:
    """Stop the processes this sandbox started (flag files are left in place)."""
    return [svc.stop(config) for svc in reversed(_services(config))]


def reset(config: Any) -> list[ServiceStatus]:
    """Put every sandbox backend back to its seeded state (between exercise rounds).

    Stops the sandbox services (in-memory servers lose their state: deleted provider keys,
    cancelled batch jobs and faults come back as seeded), has each service forget what a
    restart keeps (``forget(config)``: Unleash's database), drops the inventory's flags from
    the flag files, then starts everything again: servers come back empty and are seeded
    from the inventory, flags are seeded ``on``. Blocking.

    Raises:
        UsageError: A backend of the config is not marked ``sandbox = true`` (exit 2):
            resetting would drop real flags; nothing was changed.
        ConsoleError: A service could not be stopped or started.
    """
    from adapters.flagfile import update_flag_file
    from console.errors import UsageError

    real = list(config.real_backends)
    if real:
        raise UsageError("sandbox reset resets only sandbox backends, and these are not: "
                         f"{', '.join(real)}; nothing was changed", where=str(config.path),
                         hint="run it on a config whose every backend has `sandbox = true`")
    stop(config)
    for svc in _services(config):  # state a restart keeps (Unleash's database) is dropped
        getattr(svc, "forget", lambda _c: None)(config)
    for path, keys in flag_refs(config).values():
        if not path.exists():
            continue

        def drop(data: dict[str, Any], keys: list[str] = keys) -> bool:
            flags = data.setdefault("flags", {})
            return bool([flags.pop(key) for key in keys if key in flags])

        update_flag_file(path, drop)
    return start(config)
