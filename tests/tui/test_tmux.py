"""The real ``killswitch`` binary in a detached tmux session at 80x24.

Drives it as an operator would over SSH (send-keys) and reads the screen (capture-pane):
banner, filter as you type, mark, runbook picker, quit; and the whole walk-through of issue
10 (mark, kill-switch plan, LIVE, confirm, run, restore, report, audit, quit) by keyboard
alone. Never skipped: tmux is a test dependency (Debian package ``tmux``); a missing tmux
fails loudly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
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

    def wait_until(self, check: Callable[[str], object], what: str,
                   timeout: float = 20.0) -> str:
        """The screen once ``check(screen)`` is true (``what`` says what was awaited)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"never {what}; the screen was:\n{screen}")

    def styled(self) -> str:
        """The screen with its colours (SGR escapes): what plain text cannot say."""
        return self.run("capture-pane", "-p", "-e", "-t", "ks").stdout

    def wait_for_focus(self, placeholder: str, below: str, timeout: float = 20.0) -> None:
        """Until the empty text field showing ``placeholder``, under the line ``below``, has
        the focus.

        Plain text cannot tell which field has the focus; colours can: the focused field is
        painted on its own background (the cursor, which blinks, on its first cell), an
        unfocused one is not. Keys typed before the focus moved would land in the previous
        field, so a test types only once this returns.
        """
        sgr = r"(?:\x1b\[[\d;]*m)*"
        painted = re.compile(r"\x1b\[48;[\d;]*m" + sgr + re.escape(placeholder[0]) + sgr
                             + re.escape(placeholder[1:]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.styled().splitlines()
            plain = [re.sub(r"\x1b\[[\d;]*m", "", line) for line in lines]
            at = next((n for n, line in enumerate(plain) if below in line), None)
            if at is not None and any(painted.search(line) for line in lines[at + 1:at + 4]):
                return
            time.sleep(0.1)
        raise AssertionError(f"the field {placeholder!r} under {below!r} never got the "
                             f"focus; the screen was:\n{self.screen()}")

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


RUN_ID = re.compile(r"\br-\d{8}-\d{6}-[0-9a-f]{4}\b")
"""A run id as the console shows it (``r-20260301-120000-ab12``)."""
CLOCK = re.compile(r"\d\d:\d\d:\d\d")
"""A timeline's time cell."""
COUNT = re.compile(r"\d+")
"""A number cell."""
LIVE_MODE = re.compile(r"(?:\S+/)?live")
"""The audit's mode cell of a run applied in LIVE (``live``, or ``dry-run/live`` when it
was planned in DRY-RUN)."""


def row(*cells: str | re.Pattern[str]) -> Callable[[str], bool]:
    """True for a screen with one line holding ``cells`` in order, apart only by spaces:
    a table row as shown (the column widths are the console's business). A compiled pattern
    stands for a cell whose exact value does not matter."""
    pattern = re.compile(r"\s+".join(c.pattern if isinstance(c, re.Pattern) else re.escape(c)
                                      for c in cells))
    return lambda screen: any(pattern.search(line) for line in screen.splitlines())


def banner(screen: str) -> str:
    """The first line: the mode banner."""
    return (screen.splitlines() or [""])[0]


def shows(*texts: str, rows: tuple[tuple[str | re.Pattern[str], ...], ...] = (),
          top: tuple[str, ...] = (), absent: tuple[str, ...] = (),
          also: Callable[[str], object] = lambda s: True) -> Callable[[str], bool]:
    """True for a screen with every text and row on it, every ``top`` text in the banner,
    none of ``absent``, and ``also`` true (every check in one frame: frames can be half
    drawn, so what is checked after a wait is only what must not be there)."""
    checks = [row(*r) for r in rows]
    return lambda s: (all(t in s for t in texts) and all(c(s) for c in checks)
                      and all(t in banner(s) for t in top)
                      and not any(t in s for t in absent) and bool(also(s)))


def runbooks_listed(screen: str) -> list[str]:
    """The runbook picker's list, top to bottom."""
    return [m[1] for m in re.finditer(r"^▊ ([a-z-]+) +▎", screen, re.MULTILINE)]


def runs_listed(screen: str) -> list[tuple[str, int]]:
    """The audit trail's runs table: (run id, events), newest first."""
    return [(m[1], int(m[2])) for m in re.finditer(
        r"^ (r-\S+)\s+\S+\s+(\d+)\s+finished", screen, re.MULTILINE)]


def chain_holds_both_runs(screen: str) -> bool:
    """The chain status counts exactly the events of the two runs listed."""
    chain = re.search(r"Chain OK: (\d+) events verified", screen)
    runs = runs_listed(screen)
    return chain is not None and len(runs) == 2 and sum(n for _, n in runs) == int(chain[1])


def test_walkthrough_by_keyboard_alone_in_tmux(tmux: Tmux) -> None:
    """Issue 10: mark, kill-switch plan, LIVE, confirm, run, restore, report, audit, quit.

    At 80x24, send-keys only; after every step the values that decide the next one are on
    the screen. The integration is search-embeddings (a batch job and egress, both live): its
    batch cancel cannot be undone, so the walk-through meets IRREVERSIBLE, the consent and,
    on restore, what cannot come back. Escape is always followed by a wait for the next
    screen's words before the next key (Escape then a key, too fast, reads as an Alt chord).
    """
    # 1. inventory: highlight search-embeddings (the last row), mark it, open the picker
    tmux.wait_for("states: observed", "DRY-RUN", "space Mark", "search-embeddings")
    tmux.send("End")
    tmux.wait_for("search-embeddings: batches live · egress live")
    tmux.send("Space")
    tmux.wait_until(shows("| 1 marked", top=("DRY-RUN changes nothing anywhere",
                                             "1 marked: dev 1", "INC-7")), "the mark")
    tmux.send("r")
    # the picker is on kill-switch: listed first, its description and steps beside it
    tmux.wait_until(shows(
        "Runbooks for 1 integration(s): search-embeddings",
        "Full containment of one or more integrations",
        "Enter plans the highlighted runbook", "⏎ Plan",
        rows=(("cancel-batches", "batch.cancel"), ("block-egress", "egress.block"),
              ("notify", "notify")),
        also=lambda s: runbooks_listed(s)[:1] == ["kill-switch"]), "the runbook picker")
    tmux.send("Enter")

    # 2. the plan at 80 columns: undo, status, target; DRY-RUN refuses to apply and says why
    plan_rows = (("undo", "status", "action / target"),
                 ("search-embeddings / preserve-evidence: evidence.pr",),
                 ("reversible", "observed", "sim:search-batch"),  # its evidence, first
                 ("search-embeddings / cancel-batches: batch.cancel",),
                 ("IRREVERSIBLE", "observed", "sim:search-batch"),
                 ("search-embeddings / block-egress: egress.block",),
                 ("reversible", "observed", "sim:search-egress"))
    screen = tmux.wait_until(shows(
        "nothing was changed. runbook kill-switch",
        "To apply it, switch to LIVE (ctrl+l, type LIVE).",
        "1 integration(s), 3 change(s) to apply; 1 IRREVERSIBLE (cannot be undone)",
        "a Apply", rows=plan_rows, top=("DRY-RUN",)), "the kill-switch plan")
    assert "LIVE" not in banner(screen)
    tmux.send("a")
    tmux.wait_for("Apply: not now", "with ctrl+l (type LIVE) to apply")

    # 3. LIVE: ctrl+l, type the mode's word (the incident is already INC-7: not asked)
    tmux.send("C-l")
    tmux.wait_for("Switch to LIVE?", "Type LIVE and press Enter", "Escape keeps DRY-RUN.")
    tmux.wait_for_focus("type LIVE", below="Escape keeps DRY-RUN.")
    assert "Next: the incident id" not in tmux.screen()
    tmux.send("LIVE", literal=True)
    tmux.wait_until(row("▊", "LIVE", "▎"), "LIVE typed in the field")
    tmux.send("Enter")
    screen = tmux.wait_until(shows(
        "LIVE PLAN — runbook kill-switch", "Nothing runs until you confirm (a).",
        rows=plan_rows, top=(" LIVE applies to real systems ", "1 marked: dev 1", "INC-7"),
        absent=("Switch to LIVE?",)), "the plan in LIVE")
    assert "DRY-RUN" not in banner(screen)

    # 4. apply: type the integration id, a reason, consent to the irreversible cancel, run
    tmux.send("a")
    tmux.wait_for("Confirm LIVE run: LIVE applies to real systems",
                  "runbook kill-switch: 3 change(s) on 1 integration(s): search-embeddings",
                  "Incident: INC-7",
                  "Type the integration id (search-embeddings) to confirm:",
                  "IRREVERSIBLE changes: 1 — consent: NOT GIVEN",
                  "I understand 1 change(s) cannot be undone", "Run LIVE",
                  "^r Run", "^t Consent")
    id_label = "Type the integration id (search-embeddings) to confirm:"
    tmux.wait_for_focus("search-embeddings", below=id_label)  # the placeholder is the id
    tmux.send("search-embeddings", literal=True)
    tmux.send("Enter")
    reason_label = "Reason (recorded in the audit trail):"
    tmux.wait_for_focus("why this run, now", below=reason_label)  # Enter moved on to it
    tmux.send("contain leak", literal=True)
    tmux.wait_for("contain leak")
    tmux.send("C-t")
    tmux.wait_for("IRREVERSIBLE changes: 1 — consent: GIVEN (ctrl+t withdraws it)")
    tmux.send("Enter")
    screen = tmux.wait_until(shows(
        "— runbook kill-switch — reason: contain leak",
        "OK — every change applied and verified:",
        "Run ended (exit code 0, as the CLI reports this run):",
        "search-embeddings: 2 now off · 0 STILL LIVE · 0 not checked · 1 cannot come",
        "now off: sim:search-batch; sim:search-egress",
        "cannot come back: sim:search-batch (batch.cancel)",
        rows=(("state", "verify", "target"),
              ("done (applied)", "preserved", "sim:search-batch"),
              ("done (applied)", "dead", "sim:search-batch"),
              ("done (applied)", "dead", "sim:search-egress"),
              ("3/3 done",))), "the end of the run")
    assert "STILL LIVE:" not in screen and "FAILED" not in screen
    found = re.search(r"RUN (\S+) — runbook kill-switch", screen)
    assert found and RUN_ID.fullmatch(found[1]), screen
    run_id = found[1]

    # 5. restore: the audit trail (A), the run is highlighted (the only one), u, confirm
    tmux.send("A")
    tmux.wait_until(shows(
        "Chain OK:", f"{run_id} · finished", "u: restore it",
        rows=(("run", "mode", "events", "status"), (run_id, LIVE_MODE, COUNT, "finished")),
        also=lambda s: [r for r, _ in runs_listed(s)] == [run_id]), "the audit trail")
    tmux.send("u")
    restore_rows = (("IRREVERSIBLE", "UNSUPPORTED", "sim:search-batch"),
                    ("reversible", "observed", "sim:search-egress"))
    screen = tmux.wait_until(shows(
        "LIVE PLAN — RESTORE of run", "Nothing", "a Apply",
        "1 integration(s), 1 change(s) to apply", "note: search-embeddings: stays dead",
        rows=restore_rows, also=lambda s: len(set(RUN_ID.findall(s)) - {run_id}) == 1),
        "the restore plan, its own run id beside the run it undoes")
    assert run_id in screen
    restore_id = (set(RUN_ID.findall(screen)) - {run_id}).pop()
    tmux.send("a")
    tmux.wait_for("Confirm LIVE run", f"restore of run {run_id}: 1 change(s) on 1",
                  "not applied: 1 unsupported", "Incident: INC-7",
                  "Type the integration id (search-embeddings) to confirm:",
                  "IRREVERSIBLE changes: none", "Run LIVE")
    tmux.wait_for_focus("search-embeddings", below=id_label)
    tmux.send("search-embeddings", literal=True)
    tmux.send("Enter")
    tmux.wait_for_focus("why this run, now", below=reason_label)
    tmux.send("incident over", literal=True)
    tmux.wait_for("incident over")
    tmux.send("Enter")
    screen = tmux.wait_until(shows(
        f"RUN {restore_id} — restore of run {run_id}",
        "INCOMPLETE — restored what could be undone; stays dead:",
        "Restore ended (exit code 1, as the CLI reports this run):",
        "search-embeddings: 1 back on · 0 STILL OFF · 0 not checked · 1 cannot come",
        "back on: sim:search-egress", "cannot come back: 1 batch job",
        rows=(("unsupported", "sim:search-batch"),
              ("done (applied)", "restored", "sim:search-egress"))), "the end of the restore")

    # 6. report: back to the audit trail (both runs, newest first), the run, o, its timeline
    tmux.send("Escape")
    tmux.wait_until(shows("Chain OK:", "/ filter: run=",
                          rows=((restore_id, LIVE_MODE, COUNT, "finished"),
                                (run_id, LIVE_MODE, COUNT, "finished")),
                          absent=("Restore ended",)), "the audit trail with both runs")
    tmux.send("Down")
    tmux.wait_for(f"{run_id} · finished", "o: its report")
    tmux.send("o")
    screen = tmux.wait_until(shows(
        f"run {run_id} — finished", "INC-7", "ic-tester", "chain verified", "needs attention:",
        "seq 1 ·", "f Full report", rows=(("time", "outcome", "what"),
              (CLOCK, "planned", "kill-switch"),
              (CLOCK, "applied", "search-embeddings evidence.preserve sim:search-batch"),
              (CLOCK, "applied", "search-embeddings batch.cancel sim:search-batch"),
              (CLOCK, "applied", "search-embeddings egress.block sim:search-egress"))),
        "the report's timeline")
    assert "Chain OK" not in screen
    # its end, below the fold at 24 lines: the verdicts and the run's end
    tmux.send("C-End")
    tmux.wait_until(shows("f Full report", rows=(
        (CLOCK, "verified", "search-embeddings batch.cancel sim:search-batch"),
        (CLOCK, "verified", "search-embeddings egress.block sim:search-egress"),
        (CLOCK, "finished", "run kill-switch"))), "the end of the report's timeline")
    tmux.send("Escape")

    # 7. audit: the chain status and the runs; the chain holds every event of both runs
    tmux.wait_until(shows(
        "/ filter: run=", "o Report", "u Restore",
        rows=((restore_id, LIVE_MODE, COUNT, "finished"), (run_id, LIVE_MODE, COUNT, "finished")),
        top=(" LIVE applies to real systems ", "INC-7"), absent=("f Full report",),
        also=lambda s: [r for r, _ in runs_listed(s)] == [restore_id, run_id]
        and chain_holds_both_runs(s)), "the audit trail again, its chain over both runs")

    # 8. quit: no run in progress, so q quits at once and the session ends
    tmux.send("q")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tmux.alive(), tmux.screen()
