"""The real ``killswitch`` binary in a detached tmux session at 80x24.

Drives it as an operator would over SSH (send-keys) and reads the screen (capture-pane):
banner, filter as you type, mark, runbook picker, quit. Never skipped: tmux is a test
dependency (Debian package ``tmux``); a missing tmux fails loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "killswitch"


class Tmux:
    """One tmux server on a private socket, one session running the console."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=check, timeout=20)

    def send(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "ks", *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "ks").stdout

    def wait_for(self, *texts: str, timeout: float = 20.0) -> str:
        """The screen once every one of ``texts`` is on it (frames can be half drawn)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{texts!r} never all appeared; the screen was:\n{screen}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", "ks", check=False).returncode == 0


@pytest.fixture
def tmux(tui_config: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: apt-get install tmux (the TUI tests need it)")
    assert BIN.exists(), f"{BIN} missing: pip install -e ."
    t = Tmux(f"ks-test-{uuid.uuid4().hex[:8]}")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color",
           "LANG": "C.UTF-8", "HOME": str(tui_config.parent)}
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    t.run("-f", "/dev/null", "new-session", "-d", "-s", "ks", "-x", "80", "-y", "24",
          *env_args, f"{BIN} --config {tui_config}; sleep 0.5")
    try:
        yield t
    finally:
        t.run("kill-server", check=False)


def test_filter_mark_runbook_and_quit_in_tmux(tmux: Tmux) -> None:
    screen = tmux.wait_for("states: observed", "DRY-RUN", "space Mark", "search-embeddings")
    assert "op ic-tester" in screen and "INC-7" in screen and "support-bot" in screen
    assert "LIVE" not in screen
    tmux.send("/")
    tmux.send("env=staging", literal=True)
    screen = tmux.wait_for("2 of 5", "contract-drafter")
    assert "code-review-agent" in screen and "contract-drafter" in screen
    assert "support-bot" not in screen
    # Leave the filter with Enter (it moves to the table), not Escape: a terminal cannot tell
    # an Escape followed quickly by another key from an Alt chord, so the next key could be
    # read as alt+space. Then wait until the table has focus (its keys are in the footer:
    # with the filter focused the footer shows only "Detail / Filter ^l Mode").
    tmux.send("Enter")
    tmux.wait_for("2 of 5", "space Mark", "r Runbook")
    tmux.send("Space")
    screen = tmux.wait_for("1 marked: staging 1", "| 1 marked")
    tmux.send("r")
    screen = tmux.wait_for("kill-switch")  # the runbook picker lists the shipped runbooks
    assert "code-review-agent" in screen
    tmux.send("Escape")
    tmux.wait_for("space Mark")
    tmux.send("q")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tmux.alive(), tmux.screen()
