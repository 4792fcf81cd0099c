"""Config loading: models, file:line errors, the TOML key locator."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from console.config import Backend, Config, TomlLocator, load_config
from console.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

HEAD = """\
[settings]
max_targets = 5

[backends.flags]
type = "flagfile"
path = "flags.json"

[backends."vault-a"]
type = "vault"
url = "http://127.0.0.1:8200"
"""


def integ(id_: str, extra: str = "") -> str:
    return (
        "\n[[integrations]]\n"
        f'id = "{id_}"\n'
        'name = "Some integration"\n'
        'owner = "team-x"\n'
        'environment = "prod"\n'
        'provider = "openai"\n' + extra
    )


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    seen = 0
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"{needle!r} not in {path}")


def test_example_config_loads() -> None:
    cfg = load_config(REPO / "config.example.toml")
    assert cfg.path == (REPO / "config.example.toml").resolve()
    assert cfg.settings.audit_db == ".sandbox/audit.db"
    assert cfg.settings.max_targets == 10
    assert cfg.sandbox is not None and cfg.sandbox.openbao_port == 8299
    assert cfg.backends["vault-sandbox"].type == "vault"
    assert cfg.backends["vault-sandbox"].options["token_env"] == "KILLSWITCH_SANDBOX_VAULT_TOKEN"
    assert cfg.backends["flags"].options == {"path": ".sandbox/flags.json"}
    assert 4 <= len(cfg.integrations) <= 5
    envs = {i.environment for i in cfg.integrations}
    assert envs == {"prod", "staging", "dev"}
    assert any(i.status == "suspended" for i in cfg.integrations)
    for i in cfg.integrations:
        assert i.kill_switch_owner is not None and i.kill_switch_owner.how
        assert i.credentials[0].fields()["path"] == f"ai/{i.id}/provider-key"
        assert i.flags and i.approval_record and i.review_due
    assert cfg.resolve(".sandbox/audit.db") == REPO / ".sandbox/audit.db"


def test_valid_config_and_defaults(tmp_path: Path) -> None:
    flag = '[[integrations.flags]]\nbackend = "flags"\nflag = "x"\n'
    p = write(tmp_path, HEAD + integ("a", flag))
    cfg = load_config(p)
    assert cfg.settings.max_targets == 5
    assert cfg.settings.default_timeout == 30.0
    assert cfg.sandbox is None
    assert cfg.integrations[0].status == "approved"
    assert cfg.integrations[0].flags[0].fields() == {"backend": "flags", "flag": "x"}
    assert cfg.resolve("/abs/x") == Path("/abs/x")
    assert cfg.resolve("rel/x") == tmp_path / "rel/x"
    assert cfg.integration("a") is cfg.integrations[0]
    assert cfg.integration("nope") is None
    assert cfg.locate(("integrations", 0, "flags", 0, "flag")) == f"{p}:{line_of(p, 'flag = ')}"


def test_malformed_toml_reports_line(tmp_path: Path) -> None:
    p = write(tmp_path, '[settings]\nmax_targets = 5\naudit_db = "unterminated\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{p}:3"
    assert "invalid TOML" in ei.value.msg and "column" in ei.value.msg
    assert ei.value.hint


def test_unknown_field_in_third_integration(tmp_path: Path) -> None:
    text = HEAD + integ("a") + integ("b") + integ("c", 'credntials = []\n')
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    err = ei.value
    assert err.where == f"{p}:{line_of(p, 'credntials')}"
    assert "unknown field 'credntials'" in err.msg
    assert "integration 'c'" in err.msg
    assert "did you mean 'credentials'" in err.hint


def test_unknown_field_in_nested_kill_point_table(tmp_path: Path) -> None:
    text = HEAD + integ("a") + integ(
        "b",
        '[integrations.kill_switch_owner]\nname = "x"\nhwo = "slack:#x"\n',
    )
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{p}:{line_of(p, 'hwo')}"
    assert "did you mean 'how'" in ei.value.hint


def test_enum_and_type_errors_say_what_is_allowed(tmp_path: Path) -> None:
    text = HEAD.replace("max_targets = 5", 'max_targets = "ten"') + integ("a").replace(
        '"prod"', '"production"'
    )
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "2 problems" in msg
    assert ei.value.where == f"{p}:{line_of(p, 'max_targets')}"
    assert f"{p}:{line_of(p, 'environment')}" in msg
    assert "prod, staging, dev" in msg and "'production'" in msg
    assert "did you mean 'prod'" in msg
    assert "max_targets" in msg and "'ten'" in msg


def test_missing_required_field_points_at_header(tmp_path: Path) -> None:
    text = HEAD + integ("a").replace('provider = "openai"\n', "")
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{p}:{line_of(p, '[[integrations]]')}"
    assert "missing required field 'provider'" in ei.value.msg


def test_undefined_backend_names_the_defined_ones(tmp_path: Path) -> None:
    text = HEAD + integ("a", '[[integrations.credentials]]\nbackend = "vault-b"\npath = "p"\n')
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    err = ei.value
    assert err.where == f"{p}:{line_of(p, 'backend = ')}"
    assert "undefined backend 'vault-b'" in err.msg
    assert "flags, vault-a" in err.hint
    assert "did you mean 'vault-a'" in err.hint


def test_duplicate_ids(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD + integ("a") + integ("b") + integ("a"))
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    err = ei.value
    assert err.where == f"{p}:{line_of(p, '[[integrations]]', 3)}"
    assert f"first defined at {p}:{line_of(p, '[[integrations]]', 1)}" in err.msg


def test_all_problems_in_one_message(tmp_path: Path) -> None:
    text = (
        HEAD.replace("max_targets = 5", "max_targets = 5\nbogus = 1")
        + integ("a", 'tags = "not-a-list"\n')
        + integ("b", '[[integrations.flags]]\nbackend = "nope"\nflag = "f"\n')
        + integ("Bad Id")
    )
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "4 problems" in msg
    for needle in ("bogus", "tags =", 'backend = "nope"', 'id = "Bad Id"'):
        assert f"{p}:{line_of(p, needle)}" in msg, needle


def test_unknown_top_level_and_backend_type_errors(tmp_path: Path) -> None:
    p = write(tmp_path, '[setings]\nmax_targets = 3\n[backends.x]\nmax_concurrency = "many"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert ei.value.where == f"{p}:1"
    assert "did you mean 'settings'" in msg
    assert f"{p}:3: backend 'x': missing required field 'type'" in msg
    assert f"{p}:4: backend 'x': max_concurrency" in msg


def test_separate_inventory_file(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    inv = write(tmp_path / "inv", integ("a") + integ("b", "colour = 'red'\n"), "inventory.toml")
    p = write(tmp_path, HEAD.replace("[settings]", '[settings]\ninventory = "inv/inventory.toml"'))
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{inv}:{line_of(inv, 'colour')}"
    inv.write_text(integ("a") + integ("b"))
    cfg = load_config(p)
    assert [i.id for i in cfg.integrations] == ["a", "b"]
    assert cfg.locate(("integrations", 1)) == f"{inv}:{line_of(inv, '[[integrations]]', 2)}"


def test_inline_and_file_inventory_merge_and_check_duplicates(tmp_path: Path) -> None:
    inv = write(tmp_path, integ("a"), "inventory.toml")
    p = write(tmp_path, HEAD.replace("[settings]", '[settings]\ninventory = "inventory.toml"')
              + integ("a"))
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{inv}:2"
    assert f"first defined at {p}:" in ei.value.msg


def test_missing_inventory_file(tmp_path: Path) -> None:
    p = write(tmp_path, '[settings]\nmax_targets = 3\ninventory = "missing.toml"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{p}:3"
    assert "missing.toml" in ei.value.msg


def test_inventory_file_only_holds_integrations(tmp_path: Path) -> None:
    write(tmp_path, "[backends.x]\ntype='fake'\n" + integ("a"), "inventory.toml")
    p = write(tmp_path, '[settings]\ninventory = "inventory.toml"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{tmp_path / 'inventory.toml'}:1"


def test_missing_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KILLSWITCH_CONFIG", raising=False)
    with pytest.raises(ConfigError) as ei:
        load_config()
    err = ei.value
    assert "config.toml" in err.msg and "default location" in err.msg
    assert "--config" in err.hint and "$KILLSWITCH_CONFIG" in err.hint
    assert "~/.config/killswitch/config.toml" in err.hint

    monkeypatch.setenv("KILLSWITCH_CONFIG", str(tmp_path / "env.toml"))
    with pytest.raises(ConfigError) as ei:
        load_config()
    assert "$KILLSWITCH_CONFIG" in ei.value.msg and "env.toml" in ei.value.msg

    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "given.toml")
    assert "--config" in ei.value.msg and ei.value.where == str(tmp_path / "given.toml")

    good = write(tmp_path, HEAD, "env.toml")
    assert load_config().path == good.resolve()
    default = tmp_path / ".config/killswitch/config.toml"
    default.parent.mkdir(parents=True)
    default.write_text(HEAD)
    monkeypatch.delenv("KILLSWITCH_CONFIG")
    assert load_config().path == default.resolve()


def test_backend_options_are_the_extras() -> None:
    b = Backend.model_validate({"type": "vault", "url": "u", "timeout": 5})
    assert b.options == {"url": "u"}
    assert b.timeout == 5.0 and b.max_concurrency == 8


def test_config_can_be_built_in_code() -> None:
    cfg = Config(path=Path("/x/config.toml"))
    assert cfg.locate(("integrations", 0)) == ""
    assert cfg.resolve("a") == Path("/x/a")


def test_operator_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILLSWITCH_OPERATOR", "ic-alice")
    assert Config(path=Path("/c")).settings.resolved_operator() == "ic-alice"
    cfg = Config.model_validate({"path": "/c", "settings": {"operator": "bob"}})
    assert cfg.settings.resolved_operator() == "bob"


# --------------------------------------------------------------------------- locator

LOCATOR_DOC = '''\
title = "x"            # 1
[backends."vault-a"]   # 2
type = "vault"         # 3
[[integrations]]       # 4
id = "a"               # 5
tags = [               # 6
  "one",               # 7
  [ "nested" ],        # 8
]                      # 9
notes = """            # 10
[[integrations]]
fake = 1
"""                    # 13
owner.team = "t"       # 14
[[integrations.credentials]]  # 15
backend = "v"          # 16
[[integrations.credentials]]  # 17
'path' = "p"           # 18
[[integrations]]       # 19
id = "b"               # 20
[integrations.kill_switch_owner]  # 21
name = "n"             # 22
[[integrations.credentials]]  # 23
"back.end" = "x"       # 24
'''


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("title",), 1),
        (("backends", "vault-a"), 2),
        (("backends", "vault-a", "type"), 3),
        (("integrations", 0), 4),
        (("integrations", 0, "id"), 5),
        (("integrations", 0, "tags"), 6),
        (("integrations", 0, "tags", 1), 6),
        (("integrations", 0, "owner", "team"), 14),
        (("integrations", 0, "owner"), 14),
        (("integrations", 0, "credentials", 0), 15),
        (("integrations", 0, "credentials", 0, "backend"), 16),
        (("integrations", 0, "credentials", 1, "path"), 18),
        (("integrations", 0, "credentials", 1, "unknown"), 17),
        (("integrations", 1), 19),
        (("integrations", 1, "id"), 20),
        (("integrations", 1, "kill_switch_owner", "name"), 22),
        (("integrations", 1, "credentials", 0, "back.end"), 24),
        (("integrations", 1, "fake"), 19),
        (("integrations", 2), 4),
    ],
)
def test_locator(loc: tuple[str | int, ...], line: int) -> None:
    import tomllib

    tomllib.loads(LOCATOR_DOC)  # the document itself is valid TOML
    assert TomlLocator(LOCATOR_DOC).line_of(loc) == line


def test_locator_unknown_and_where() -> None:
    loc = TomlLocator("a = 1\n")
    assert loc.line_of(("b",)) is None
    assert loc.where("f.toml", ("b",)) == "f.toml"
    assert loc.where("f.toml", ("a",)) == "f.toml:1"


def test_contact_backend_reference_checked(tmp_path: Path) -> None:
    text = HEAD + integ("a", 'kill_switch_owner = { name = "A", backend = "pager" }\n')
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.where == f"{p}:{line_of(p, 'pager')}"
    assert "kill_switch_owner names undefined backend 'pager'" in ei.value.msg


def test_backend_sandbox_mark_is_the_consoles_not_the_adapters(tmp_path: Path) -> None:
    """``sandbox = true`` is a backend field: accepted for every adapter, never an option."""
    text = HEAD.replace('path = "flags.json"', 'path = "flags.json"\nsandbox = true')
    cfg = load_config(write(tmp_path, text + integ("a")))
    assert cfg.backends["flags"].sandbox is True and "sandbox" not in cfg.backends["flags"].options
    assert cfg.backends["vault-a"].sandbox is False
    assert cfg.real_backends == ["vault-a"]


def test_backend_sandbox_mark_must_be_a_boolean(tmp_path: Path) -> None:
    text = HEAD.replace('path = "flags.json"', 'path = "flags.json"\nsandbox = "maybe"')
    with pytest.raises(ConfigError, match="sandbox"):
        load_config(write(tmp_path, text + integ("a")))
