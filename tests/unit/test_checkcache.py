"""The check cache skips only what a byte-identical text passed before (console/checkcache).

Adversarial cases: an edited file, a damaged cache file, a changed checker, the cache
turned off, a third-party adapter type. Each must still be refused or checked in full.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import console.checkcache as checkcache
import console.config as config_module
from console.config import load_config
from console.errors import ConfigError

GOOD = """\
[settings]
audit_db = "audit.db"

[backends.vault]
type = "vault"
url = "http://127.0.0.1:8200"

[[integrations]]
id = "bot"
name = "Bot"
owner = "team"
environment = "prod"
provider = "openai"

[[integrations.credentials]]
backend = "vault"
path = "secret/bot"
"""


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache of its own for every test (the state folder), read afresh."""
    state = tmp_path / "state"
    monkeypatch.setenv("KILLSWITCH_STATE_DIR", str(state))
    monkeypatch.delenv(checkcache.ENV_DISABLE, raising=False)
    monkeypatch.setattr(checkcache, "_seen", None)
    yield state / "checked-configs"
    checkcache._seen = None


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the reference checks ran."""
    calls: list[int] = []
    real = config_module._check_references

    def spy(*a: object, **kw: object) -> object:
        calls.append(1)
        return real(*a, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(config_module, "_check_references", spy)
    return calls


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_a_text_that_passed_is_not_checked_again(tmp_path: Path, counted: list[int],
                                                 private_state: Path) -> None:
    path = write(tmp_path, GOOD)
    first = load_config(path, remember=True)
    second = load_config(path, remember=True)
    assert counted == [1], "the second load of the same bytes skips the reference checks"
    assert [i.id for i in second.integrations] == [i.id for i in first.integrations]
    assert private_state.stat().st_mode & 0o777 == 0o600


def test_one_edited_byte_is_checked_in_full_and_refused(tmp_path: Path,
                                                        counted: list[int]) -> None:
    path = write(tmp_path, GOOD)
    load_config(path, remember=True)
    write(tmp_path, GOOD.replace('path = "secret/bot"', 'paht = "secret/bot"'))
    with pytest.raises(ConfigError) as err:
        load_config(path, remember=True)
    assert "paht" in str(err.value)
    assert len(counted) == 2


def test_a_damaged_cache_file_is_ignored(tmp_path: Path, private_state: Path,
                                         counted: list[int]) -> None:
    private_state.parent.mkdir(parents=True)
    private_state.write_bytes(b"\xff\xfe not digests\n" + b"z" * 64 + b"\n")
    path = write(tmp_path, GOOD)
    load_config(path, remember=True)
    assert counted == [1]
    bad = write(tmp_path, GOOD.replace('backend = "vault"', 'backend = "nowhere"'))
    with pytest.raises(ConfigError) as err:
        load_config(bad, remember=True)
    assert "nowhere" in str(err.value)


def test_a_changed_checker_checks_everything_again(tmp_path: Path, counted: list[int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    load_config(path, remember=True)
    monkeypatch.setattr(checkcache, "_code_key", b"another version of the checks")
    load_config(path, remember=True)
    assert counted == [1, 1]


def test_the_cache_can_be_turned_off(tmp_path: Path, counted: list[int],
                                     monkeypatch: pytest.MonkeyPatch,
                                     private_state: Path) -> None:
    monkeypatch.setenv(checkcache.ENV_DISABLE, "1")
    path = write(tmp_path, GOOD)
    load_config(path, remember=True)
    load_config(path, remember=True)
    assert counted == [1, 1]
    assert not private_state.exists()


def test_only_the_console_records(tmp_path: Path, private_state: Path,
                                  counted: list[int]) -> None:
    """Other commands read the cache but never write it (completion, `inventory list`...)."""
    path = write(tmp_path, GOOD)
    load_config(path)
    load_config(path)
    assert counted == [1, 1] and not private_state.exists()
    load_config(path, remember=True)
    load_config(path)
    assert counted == [1, 1, 1], "a command reads what the console recorded"


def test_an_invalid_config_is_never_recorded(tmp_path: Path, private_state: Path,
                                             counted: list[int]) -> None:
    path = write(tmp_path, GOOD.replace('backend = "vault"', 'backend = "nowhere"'))
    for _ in range(2):
        with pytest.raises(ConfigError):
            load_config(path, remember=True)
    assert len(counted) == 2
    assert not private_state.exists()
