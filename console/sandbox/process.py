"""Background processes of the sandbox: spawn detached, record, check, stop only our own.

Each service keeps ``<dir>/<name>.pid`` holding ``{"pid", "argv"}``; a process counts as
ours only while ``/proc/<pid>/cmdline`` still equals that argv, so a recycled pid is never
signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from console.errors import ConsoleError

__all__ = ["http_ok", "ours", "ports_taken", "recorded", "spawn", "stop_process",
           "write_secret_file"]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def ports_taken(*ports: int) -> list[int]:
    """The ports among ``ports`` that a sandbox server could not listen on at 127.0.0.1.

    The probe binds with ``SO_REUSEADDR``, as every sandbox server does when it listens
    (Go's net package for OpenBao, Python's ``HTTPServer`` for moto and the stand-ins,
    PostgreSQL, node for Unleash). So connections a stopped server left in TIME-WAIT do not
    count, and a stopped sandbox starts again at once; a socket listening on the port, on
    127.0.0.1 or on every address, still does count (Linux refuses that bind even with
    ``SO_REUSEADDR``).

    Args:
        ports: TCP ports to check.

    Returns:
        The ports that are taken, in the order given.
    """
    taken = []
    for p in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                taken.append(p)
    return taken


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def recorded(state_dir: Path, name: str) -> tuple[int, list[str]] | None:
    """The pid and argv in ``<name>.pid``, if any."""
    try:
        data = json.loads((state_dir / f"{name}.pid").read_text())
        return int(data["pid"]), [str(a) for a in data["argv"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ours(state_dir: Path, name: str) -> int | None:
    """The pid from our pid file, if that process is alive and runs exactly what we started."""
    rec = recorded(state_dir, name)
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
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


def terminate(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; waits until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _reap(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + grace
        time.sleep(0.05)


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)


def spawn(state_dir: Path, name: str, argv: list[str], env: dict[str, str],
          healthy: Callable[[], bool], timeout: float = 10.0, what: str = "") -> int:
    """Start ``argv`` detached (own session, log in ``<name>.log``) and wait until healthy.

    Raises:
        ConsoleError: It exited or was not healthy within ``timeout`` (names the log and its
            last lines).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"{name}.log"
    with open(log, "ab") as fh, open(os.devnull, "rb") as null:
        pid = os.posix_spawn(argv[0], argv, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, null.fileno(), 0),
            (os.POSIX_SPAWN_DUP2, fh.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, fh.fileno(), 2),
        ])
    (state_dir / f"{name}.pid").write_text(json.dumps({"pid": pid, "argv": argv}))
    deadline = time.monotonic() + timeout
    while not healthy():
        if _reap(pid) or time.monotonic() > deadline:
            terminate(pid)
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise ConsoleError(
                f"{what or name} did not become healthy within {timeout:.0f} s",
                where=str(log),
                hint="last log lines: " + " | ".join(tail) if tail else "see the log")
        time.sleep(0.05)
    return pid


def stop_process(state_dir: Path, name: str, extra_files: tuple[str, ...] = ()) -> str:
    """Stop our process ``name`` if it runs; returns one line saying what happened."""
    rec = recorded(state_dir, name)
    pid = ours(state_dir, name)
    detail = "not running"
    if pid is not None:
        terminate(pid)
        detail = f"stopped pid {pid}"
    elif rec is not None:
        detail = (f"pid file named {rec[0]}, which no longer runs what the sandbox started; "
                  "left it alone")
    for f in (f"{name}.pid", *extra_files):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / f).unlink()
    return detail
