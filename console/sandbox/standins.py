"""The stand-ins process: every SaaS stand-in of the sandbox, each on its own loopback port.

Stand-ins are discovered, not listed: every module ``console/sandbox/api_*.py`` defines

* ``STANDIN``: a :class:`~console.sandbox.standin.StandIn` subclass,
* ``DEFAULT_PORT``: its port unless ``[sandbox] ports`` names another,
* ``seed(config) -> dict``: its initial state from the inventory (fake values only),
* ``wanted(config) -> bool``: whether the config has a backend it serves,

and may define ``extra_standins(config) -> [(StandIn subclass, default port), ...]``: more
servers the config needs, seeded with the same ``seed(config)`` (the regional Secret Manager
endpoint of ``api_gcp``: a second host at Google, so a second port here). Each is named by
its class's ``name``, which is also its key in ``[sandbox] ports``.

``killswitch sandbox start`` runs ``python -m console.sandbox.standins --config FILE`` in the
background; it serves until terminated.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from console.sandbox import ServiceStatus
from console.sandbox.process import http_ok, ours, ports_taken, spawn, stop_process

__all__ = ["NAME", "modules", "port_of", "serve_all", "start", "status", "stop", "wanted"]

NAME = "standins"


def modules() -> list[ModuleType]:
    """Every stand-in module, by name."""
    import console.sandbox as pkg

    return [importlib.import_module(f"console.sandbox.{m.name}")
            for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
            if m.name.startswith("api_")]


def port_of(config: Any, module: ModuleType) -> int:
    """The port of a stand-in: ``[sandbox] ports`` or its default."""
    return _port(config, module.STANDIN.name, module.DEFAULT_PORT)


def _port(config: Any, name: str, default: int) -> int:
    ports = getattr(getattr(config, "sandbox", None), "ports", None) or {}
    return int(ports.get(name, default))


def _servers(config: Any) -> list[tuple[ModuleType, type[Any], int]]:
    """(module, stand-in class, port) of every server the config needs."""
    out: list[tuple[ModuleType, type[Any], int]] = []
    for m in _wanted(config):
        out.append((m, m.STANDIN, port_of(config, m)))
        for cls, default in getattr(m, "extra_standins", lambda _c: [])(config):
            out.append((m, cls, _port(config, cls.name, default)))
    return out


def wanted(config: Any) -> bool:
    """True when some backend needs a stand-in."""
    return bool(_wanted(config))


def _wanted(config: Any) -> list[ModuleType]:
    return [m for m in modules() if m.wanted(config)]


def _state_dir(config: Any) -> Path:
    sb = getattr(config, "sandbox", None)
    return Path(config.resolve(getattr(sb, "dir", None) or ".sandbox"))


def serve_all(config: Any) -> list[tuple[str, int]]:
    """Serve every wanted stand-in in this process (daemon threads)."""
    from console.sandbox.standin import serve

    out = []
    for module, cls, port in _servers(config):
        serve(cls(module.seed(config)), "127.0.0.1", port)
        out.append((cls.name, port))
    return out


def _urls(config: Any) -> list[str]:
    return [f"{cls.name}=http://127.0.0.1:{port}" for _, cls, port in _servers(config)]


def _healthy(config: Any) -> bool:
    return all(http_ok(f"http://127.0.0.1:{port}/_sandbox/health")
               for _, _, port in _servers(config))


def status(config: Any) -> ServiceStatus:
    """The stand-ins process as it is now."""
    pid = ours(_state_dir(config), NAME)
    urls = ", ".join(_urls(config)) or "none configured"
    if pid is None:
        return ServiceStatus(NAME, urls, None, False, "not running")
    return ServiceStatus(NAME, urls, pid, _healthy(config), "serving")


def start(config: Any) -> ServiceStatus:
    """Start the stand-ins process unless it runs (or nothing needs a stand-in)."""
    from console.errors import ConfigError

    wanted = _wanted(config)
    if not wanted:
        return ServiceStatus(NAME, "-", None, False, "no backend needs a stand-in")
    state_dir = _state_dir(config)
    pid = ours(state_dir, NAME)
    if pid is not None and _healthy(config):
        return ServiceStatus(NAME, ", ".join(_urls(config)), pid, True, "already running")
    if pid is not None:
        stop_process(state_dir, NAME)
    taken = ports_taken(*(port for _, _, port in _servers(config)))
    if taken:
        raise ConfigError(
            f"cannot start the stand-ins: port(s) {', '.join(map(str, taken))} on 127.0.0.1 "
            "are in use", hint="stop what listens there, or set [sandbox] ports = {...}")
    argv = [sys.executable, "-m", "console.sandbox.standins", "--config", str(config.path)]
    pid = spawn(state_dir, NAME, argv, dict(os.environ), lambda: _healthy(config),
                what="the SaaS stand-ins")
    return ServiceStatus(NAME, ", ".join(_urls(config)), pid, True,
                         f"started {', '.join(m.STANDIN.name for m in wanted)}")


def stop(config: Any) -> ServiceStatus:
    """Stop the stand-ins process if it is ours."""
    return ServiceStatus(NAME, ", ".join(_urls(config)), None, False,
                         stop_process(_state_dir(config), NAME))


def main(argv: list[str] | None = None) -> None:
    """Serve every wanted stand-in until SIGTERM."""
    from console.config import load_config

    ap = argparse.ArgumentParser(prog="python -m console.sandbox.standins")
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    served = serve_all(load_config(args.config))
    print("serving " + ", ".join(f"{n} on 127.0.0.1:{p}" for n, p in served), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()


if __name__ == "__main__":
    main()
