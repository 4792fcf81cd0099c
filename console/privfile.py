"""Private files: what Killswitch writes is readable by its owner only, whatever the umask.

The audit database and its WAL, exports, reports, saved plans and witness files name
operators, targets and key fingerprints, so they are created ``0600`` and the folders
Killswitch creates for them ``0700``. The mode is given to ``open``/``mkdir`` *and* set
again with ``fchmod``/``chmod``, because the process umask (``umask 000``) would otherwise
widen it. Existing folders are left as they are (``/tmp``, a home directory); an existing
regular file that is overwritten is narrowed to ``0600`` before anything is written to it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from console.errors import UsageError

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "make_private_dirs", "open_private",
           "open_private_text", "write_private"]

PRIVATE_FILE = 0o600
"""Mode of every file Killswitch creates."""
PRIVATE_DIR = 0o700
"""Mode of every folder Killswitch creates."""


def make_private_dirs(path: str | Path) -> None:
    """Create ``path`` and its missing parents, each ``0700``; existing folders are kept.

    Raises:
        OSError: A folder cannot be created (a file is in the way, no permission).
    """
    missing: list[Path] = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:  # created by someone else meanwhile: not ours to narrow
            continue
        os.chmod(folder, PRIVATE_DIR)


def open_private(path: str | Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """Open (creating if need be) ``path`` as a ``0600`` file and return its descriptor.

    Missing parent folders are created ``0700``. A regular file is narrowed to ``0600`` with
    ``fchmod`` right after opening, before anything is written to it; character devices and
    pipes (``/dev/stdout``) are left alone.

    Args:
        path: The file.
        flags: ``os.open`` flags; ``O_CREAT`` is added.

    Raises:
        OSError: It cannot be opened.
    """
    path = Path(path).expanduser()
    make_private_dirs(path.parent)
    fd = os.open(path, flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_text(path: str | Path, newline: str | None = None) -> IO[str]:
    """Open ``path`` for writing text (truncated), created ``0600``; see :func:`open_private`.

    Raises:
        UsageError: It cannot be opened (the message names the file and the reason).
    """
    try:
        fd = open_private(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="check the folder exists and is writable") from exc
    return os.fdopen(fd, "w", encoding="utf-8", newline=newline)


def write_private(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8, replacing it), created ``0600`` in ``0700`` folders.

    Raises:
        UsageError: It cannot be written (the message names the file and the reason).
    """
    with open_private_text(path) as fh:
        try:
            fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
