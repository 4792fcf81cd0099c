"""Installs like a real tool: the built wheel, installed in a fresh venv, gives a `killswitch`
that plans with the shipped runbooks (package data) from any folder.

Offline: the wheel is built with the test venv's setuptools (``--no-build-isolation``,
``--no-index``) from a copy of the tree (the repository is left untouched), the fresh venv is
made ``--without-pip`` and the test venv's pip installs the wheel into it (``--python``,
``--no-index --no-deps``). The project's dependencies are made visible to the fresh venv
through a ``.pth`` file naming a folder of links to the test venv's installed packages,
minus Killswitch itself (its editable install would otherwise shadow the wheel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = ("console", "adapters", "runbooks", "killswitch", "__editable__", "_distutils_hack",
        "__pycache__")
SHIPPED = {"kill-switch", "flags-off", "cancel-batches", "block-egress", "revoke-credentials",
           "restore", "evidence", "rotate"}

CONFIG = """\
[settings]
operator = "tester"

[backends.sim]
type = "fake"
state_file = "{state}"

[[integrations]]
id = "support-bot"
name = "Support bot"
owner = "team"
environment = "prod"
provider = "openai"
[[integrations.flags]]
backend = "sim"
key = "support-bot-flag"
"""


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]
    assert r.returncode == 0, f"{argv}\n{r.stdout}\n{r.stderr}"
    return r  # type: ignore[no-any-return]


def build_wheel(tmp: Path) -> Path:
    """Build the wheel offline from a copy of the tree; return its path."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("console", "adapters", "runbooks"):
        shutil.copytree(REPO / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", str(tmp / "dist"), str(src)], env=_clean_env(tmp))
    (wheel,) = (tmp / "dist").glob("killswitch-*.whl")
    return wheel


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KILLSWITCH_", "PYTHON", "PIP_", "VIRTUAL_ENV", "XDG_"))}
    env.update(HOME=str(tmp / "home"), PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    (tmp / "home").mkdir(exist_ok=True)
    return env


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv with only the wheel installed; the dependencies come from the test venv."""
    venv = tmp / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
          "--no-index", "--no-deps", str(wheel)], env=_clean_env(tmp))
    deps = tmp / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(OURS) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                    "['purelib'])"]).stdout.strip()
    Path(purelib, "test-venv-deps.pth").write_text(f"{deps}\n")
    return venv


def test_wheel_installs_and_plans_from_anywhere(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {f"runbooks/{n}.toml" for n in SHIPPED} | {"runbooks/__init__.py",
                                                     "console/tui/app.tcss"} <= names
    assert not any(n.startswith("tests/") for n in names)

    venv = fresh_venv(tmp_path, wheel)
    site_packages = _run([str(venv / "bin" / "python"), "-c",
                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                         ).stdout.strip()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.toml").write_text(CONFIG.format(state=tmp_path / "fake-state.json"))
    anywhere = tmp_path / "anywhere"  # no runbooks/, no config, not the repository
    anywhere.mkdir()
    env = _clean_env(tmp_path, KILLSWITCH_STATE_DIR=str(tmp_path / "state"),
                     KILLSWITCH_CONFIG=str(conf / "config.toml"))

    # the installed code and the shipped runbooks are the wheel's, not the repository's
    r = _run([str(venv / "bin" / "python"), "-c",
              "import console, console.runbook as rb\n"
              "print(console.__file__)\nprint(rb.SHIPPED_DIR)\n"
              "print(' '.join(sorted(rb.runbook_paths())))"], cwd=anywhere, env=env)
    code, shipped_dir, names_line = r.stdout.splitlines()
    assert code.startswith(site_packages) and not code.startswith(str(REPO))
    assert shipped_dir == str(Path(site_packages, "runbooks").resolve())
    assert set(names_line.split()) == SHIPPED

    killswitch = str(venv / "bin" / "killswitch")
    r = _run([killswitch, "plan", "flags-off", "support-bot"], cwd=anywhere, env=env)
    assert "support-bot-flag" in r.stdout
    r = _run([killswitch, "plan", "kill-switch", "support-bot", "--json"], cwd=anywhere,
             env=env)
    assert '"runbook": "kill-switch"' in r.stdout
    # the default audit trail went to $KILLSWITCH_STATE_DIR; nothing was written elsewhere
    assert (tmp_path / "state" / "audit.db").is_file()
    assert sorted(p.name for p in anywhere.iterdir()) == []
    r = _run([killswitch, "config", "show"], cwd=anywhere, env=env)
    (audit_db,) = [line.split() for line in r.stdout.splitlines()
                   if line.startswith("settings.audit_db ")]
    assert audit_db[1:] == [str(tmp_path / "state" / "audit.db"), "$KILLSWITCH_STATE_DIR"]
    r = _run([killswitch, "--version"], cwd=anywhere, env=env)
    assert "0.1.0" in r.stdout


def test_runbooks_found_inside_a_zip(tmp_path: Path) -> None:
    """A package that is not on the file system (zipimport) still ships its runbooks."""
    archive = tmp_path / "runbooks.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(REPO / "runbooks" / "__init__.py", "runbooks/__init__.py")
        for p in (REPO / "runbooks").glob("*.toml"):
            zf.write(p, f"runbooks/{p.name}")
    env = _clean_env(tmp_path, PYTHONPATH=str(archive))
    r = _run([sys.executable, "-c",
              "import runbooks, console.runbook as rb\n"
              "print(runbooks.__file__)\nprint(rb.SHIPPED_DIR)\n"
              "print(' '.join(sorted(rb.runbook_paths())))\n"
              "print(rb.load_runbook('flags-off').steps[0].action)"],
             cwd=tmp_path, env=env)
    origin, shipped_dir, names_line, action = r.stdout.splitlines()
    assert origin.startswith(str(archive))
    assert not shipped_dir.startswith(str(REPO)) and "killswitch-runbooks-" in shipped_dir
    assert set(names_line.split()) == SHIPPED and action == "flag.disable"
    assert not Path(shipped_dir).exists()  # removed at exit
