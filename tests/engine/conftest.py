"""Engine test fixtures: a config on the fake backend, in tmp_path, with a real audit DB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.fake import FakeAdapter
from console.config import Config, load_config

KILL = """
name = "contain"
description = "flags off, then credentials"
[[steps]]
id = "flags-off"
action = "flag.disable"
[[steps]]
id = "revoke"
action = "credential.disable"
needs = ["flags-off"]
"""

DESTROY = """
name = "destroy"
description = "irreversible"
[[steps]]
id = "destroy"
action = "credential.destroy"
"""


def write_config(root: Path, n: int = 3, backend: str = "", max_targets: int = 10) -> Path:
    """Write config.toml with ``n`` integrations (one flag + one key each) on backend sim."""
    rb = root / "runbooks"
    rb.mkdir(exist_ok=True)
    (rb / "contain.toml").write_text(KILL)
    (rb / "destroy.toml").write_text(DESTROY)
    lines = ["[settings]", 'audit_db = "audit.db"', 'runbook_dirs = ["runbooks"]',
             f"max_targets = {max_targets}", "max_attempts = 6", "",
             "[backends.sim]", 'type = "fake"', backend or "", ""]
    for i in range(n):
        lines += ["[[integrations]]", f'id = "app-{i}"', f'name = "App {i}"', 'owner = "team"',
                  'environment = "prod"', 'status = "approved"', 'provider = "openai"',
                  "[[integrations.flags]]", 'backend = "sim"', f'key = "app-{i}-flag"',
                  "[[integrations.credentials]]", 'backend = "sim"', f'key = "app-{i}-key"', ""]
    path = root / "config.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a config; the fake's in-memory switches start fresh."""
    FakeAdapter.reset()

    def build(**kw: object) -> Config:
        return load_config(write_config(tmp_path, **kw))  # type: ignore[arg-type]

    return build


def switches(backend: str = "sim") -> dict[str, str]:
    """The fake backend's switches."""
    return dict(FakeAdapter._memory.get(backend, {}).get("switches", {}))


def applied(backend: str = "sim") -> list[dict[str, str]]:
    """Every side effect the fake backend saw."""
    return list(FakeAdapter._memory.get(backend, {}).get("applied", []))
