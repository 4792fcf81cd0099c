"""Remember which config texts passed the expensive whole-document checks.

Loading a 10,000-integration config spends most of its time checking every table (depth,
integer range) and every reference against the adapters' declarations: about 0.3 s of the
0.5 s the console may take to show its first screen. Those checks depend only on the text
and on the code that checks it, so a text that passed once passes again. This module
keeps the SHA-256 digests of texts that passed (with the checking code's identity folded
in) in ``checked-configs`` in the state folder (file ``0600``), newest 64 kept. The
console records what passed; every command reads it.

What is never skipped: reading and parsing the TOML, the model validation that builds the
objects, the file-path checks (they depend on the file system), and every check of a text
whose digest is not recorded. Only successes are recorded, so an edited file (any byte) or
an upgraded console (any checking module changed) is checked in full again. Set
``KILLSWITCH_NO_CHECK_CACHE=1`` to check everything every time.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__all__ = ["ENV_DISABLE", "digest", "record", "vouched"]

ENV_DISABLE = "KILLSWITCH_NO_CHECK_CACHE"
"""Environment variable: set to 1 to turn the cache off."""
KEEP = 64
"""Digests kept (the newest)."""

_ROOT = Path(__file__).resolve().parent.parent
_CHECKERS = ("console/config.py", "console/declarations.py", "console/tomlsrc.py",
             "console/inventory.py", "console/checkcache.py", "adapters/schema.py",
             "adapters/specs")
_code_key: bytes | None = None
_seen: set[str] | None = None


def _code() -> bytes:
    """The identity of the checking code: the interpreter, and each checking module's size
    and modification time (an edited or upgraded checker invalidates every digest)."""
    global _code_key  # noqa: PLW0603 - computed once per process
    if _code_key is None:
        parts = [sys.version]
        for rel in _CHECKERS:
            path = _ROOT / rel
            files = sorted(path.glob("*.py")) if path.is_dir() else [path]
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    parts.append(f"{f.name}:missing")
                    continue
                parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
        _code_key = "\n".join(parts).encode()
    return _code_key


def digest(kind: str, *texts: str) -> str:
    """The digest of ``texts`` passing the checks named ``kind`` with this code."""
    h = hashlib.sha256(kind.encode() + b"\0" + _code())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _enabled() -> bool:
    return os.environ.get(ENV_DISABLE, "") in ("", "0")


def _file() -> Path | None:
    from console.errors import ConsoleError
    from console.locations import state_dir

    try:
        return state_dir()[0] / "checked-configs"
    except ConsoleError:
        return None


def _load() -> set[str]:
    global _seen  # noqa: PLW0603 - read once per process
    if _seen is None:
        _seen = set()
        path = _file()
        if path is not None:
            try:
                _seen = {line.strip() for line in path.read_text().splitlines()
                         if len(line.strip()) == 64}
            except (OSError, UnicodeDecodeError):
                _seen = set()
    return _seen


def vouched(key: str) -> bool:
    """True when a text with this digest passed before (and the cache is on)."""
    return _enabled() and key in _load()


def record(*keys: str) -> None:
    """Remember digests that passed; a cache that cannot be written is simply not kept."""
    if not _enabled():
        return
    seen = _load()
    new = [k for k in keys if k not in seen]
    if not new:
        return
    path = _file()
    if path is None:
        return
    from console.privfile import make_private_dirs, write_private

    try:
        old = path.read_text().splitlines() if path.exists() else []
    except (OSError, UnicodeDecodeError):
        old = []
    lines = [ln for ln in old if len(ln.strip()) == 64][-(KEEP - len(new)):] + new
    try:
        make_private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        write_private(tmp, "\n".join(lines) + "\n")
        os.replace(tmp, path)
    except OSError:
        return
    seen.update(new)
