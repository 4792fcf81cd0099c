"""Inventory: models, selectors, free-text filter and lint."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

import console.declarations as declarations
from adapters.base import ActionSpec, Adapter
from console.config import Config, load_config
from console.errors import UsageError
from console.inventory import Finding, Integration, KillPointRef, lint, matches_text, select

REPO = Path(__file__).resolve().parents[2]


def mk(id_: str, **kw: object) -> Integration:
    data: dict[str, object] = {
        "id": id_,
        "name": kw.pop("name", id_.title()),
        "owner": "team-x",
        "environment": "prod",
        "provider": "openai",
    }
    data.update(kw)
    return Integration.model_validate(data)


ITEMS = [
    mk("support-bot", data_classes=["customer", "personal"], tags=["chat"], owner="team-support"),
    mk("code-review", environment="staging", provider="anthropic", data_classes=["source-code"]),
    mk("claims", provider="bedrock", data_classes=["regulated"], tags=["batch", "chat"]),
    mk("embed", environment="dev", provider="vertex", status="prototype", name="Search Vectors"),
]


def ids(items: list[Integration]) -> list[str]:
    return [i.id for i in items]


# --------------------------------------------------------------------------- select


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        ([], ["support-bot", "code-review", "claims", "embed"]),
        (["claims"], ["claims"]),
        (["claims", "embed"], ["claims", "embed"]),
        (["provider=openai"], ["support-bot"]),
        (["provider=OpenAI"], ["support-bot"]),
        (["env=prod"], ["support-bot", "claims"]),
        (["environment=staging"], ["code-review"]),
        (["env=prod", "tag=chat"], ["support-bot", "claims"]),
        (["env=prod", "tag=chat", "data_class=regulated"], ["claims"]),
        (["data_class=customer"], ["support-bot"]),
        (["owner=team-support"], ["support-bot"]),
        (["status=prototype"], ["embed"]),
        (["provider=openai,vertex"], ["support-bot", "embed"]),
        (["support-bot", "claims", "tag=batch"], ["claims"]),
        (["env=dev", "provider=openai"], []),
    ],
)
def test_select(selectors: list[str], expected: list[str]) -> None:
    assert ids(select(ITEMS, selectors)) == expected


def test_select_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(UsageError) as ei:
        select(ITEMS, ["providr=openai"])
    assert "unknown selector key 'providr'" in ei.value.msg
    assert "did you mean 'provider'" in ei.value.hint
    for key in ("provider", "env", "environment", "data_class", "owner", "status", "tag"):
        assert key in ei.value.hint


def test_select_unknown_id() -> None:
    with pytest.raises(UsageError) as ei:
        select(ITEMS, ["suport-bot"])
    assert ei.value.msg == "no integration with id 'suport-bot'"
    assert "did you mean 'support-bot'" in ei.value.hint


def test_select_bad_values() -> None:
    with pytest.raises(UsageError, match="env cannot be production"):
        select(ITEMS, ["env=production"])
    with pytest.raises(UsageError, match="has no value"):
        select(ITEMS, ["tag="])


def test_matches_text() -> None:
    embed = ITEMS[3]
    assert matches_text(embed, "")
    assert matches_text(embed, "VECTORS")  # name
    assert matches_text(embed, "emb")  # id
    assert matches_text(embed, "vert")  # provider
    assert matches_text(embed, "team-")  # owner
    assert not matches_text(embed, "openai")


def test_kill_point_ref_fields_and_helpers() -> None:
    ref = KillPointRef.model_validate({"backend": "v", "path": "ai/x", "mount": "secret"})
    assert ref.fields() == {"backend": "v", "path": "ai/x", "mount": "secret"}
    assert ref.extra == {"path": "ai/x", "mount": "secret"}
    labelled = KillPointRef(backend="f", label="main flag")
    assert labelled.fields() == {"backend": "f", "label": "main flag"}
    owner = {"name": "A", "how": "slack:#a"}
    i = mk("x", flags=[{"backend": "f", "flag": "x"}], kill_switch_owner=owner,
           contacts=[{"name": "Vendor", "role": "vendor support"}])
    assert i.has_kill_points and not ITEMS[0].has_kill_points
    assert i.refs("flags")[0].extra == {"flag": "x"}
    assert i.refs("contacts") == []
    assert [c.name for c in i.all_contacts()] == ["A", "Vendor"]


# --------------------------------------------------------------------------- lint

PROPS = {"properties": {"backend": {}, "label": {}, "path": {}, "mount": {}}}


class ReversibleCreds(Adapter):
    name = "revcreds"
    OPTIONS = {"url": "server address"}
    ACTIONS = {
        "credential.disable": ActionSpec("credential.disable", "credentials", True, schema=PROPS),
        "credential.destroy": ActionSpec("credential.destroy", "credentials", False, schema=PROPS),
    }


class IrreversibleCreds(Adapter):
    name = "irrevcreds"
    ACTIONS = {
        "credential.destroy": ActionSpec("credential.destroy", "credentials", False, schema=PROPS)
    }


class SchemalessFlags(Adapter):
    name = "flagsnoschema"
    ACTIONS = {"flag.disable": ActionSpec("flag.disable", "flags", True)}


STUBS: dict[str, type[Adapter]] = {
    "revcreds": ReversibleCreds,
    "irrevcreds": IrreversibleCreds,
    "flagsnoschema": SchemalessFlags,
}


@pytest.fixture
def stub_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(name: str) -> type[Adapter]:
        if name == "broken":
            raise ImportError("No module named 'hvac_missing'")
        return STUBS[name]

    # the config loader and lint read adapters through console.declarations
    monkeypatch.setattr(declarations, "adapter_names", lambda: sorted([*STUBS, "broken"]))
    monkeypatch.setattr(declarations, "load_adapter_class", load)


LINT_CONFIG = """\
[backends.vault]
type = "revcreds"
url = "http://x"

[backends.hsm]
type = "irrevcreds"

[backends.flags]
type = "flagsnoschema"

[backends.broken]
type = "broken"

[[integrations]]
id = "good"
name = "Good"
owner = "t"
environment = "prod"
provider = "openai"
review_due = 2030-01-01
kill_switch_owner = { name = "A", how = "slack:#a" }
[[integrations.credentials]]
backend = "vault"
path = "ai/good"
[[integrations.flags]]
backend = "flags"
anything = "goes"

[[integrations]]
id = "typo"
name = "Typo"
owner = "t"
environment = "dev"
provider = "openai"
kill_switch_owner = { name = "A" }
[[integrations.credentials]]
backend = "vault"
path = "ai/typo"
[[integrations.flags]]
backend = "vault"

[[integrations]]
id = "bare"
name = "Bare"
owner = "t"
environment = "staging"
provider = "openai"
review_due = 2020-01-01

[[integrations]]
id = "oneway"
name = "One way"
owner = "t"
environment = "prod"
provider = "openai"
kill_switch_owner = { name = "A" }
[[integrations.credentials]]
backend = "hsm"
path = "k"

[[integrations]]
id = "broken-type"
name = "Broken"
owner = "t"
environment = "prod"
provider = "openai"
kill_switch_owner = { name = "A" }
[[integrations.credentials]]
backend = "broken"
y = 2
"""


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    seen = 0
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(needle)


def find(findings: list[Finding], level: str, integration: str | None, text: str) -> Finding:
    for f in findings:
        if f.level == level and f.integration == integration and text in f.message:
            return f
    raise AssertionError(f"no {level} for {integration} with {text!r} in:\n" + "\n".join(
        str(f) for f in findings))


@pytest.mark.usefixtures("stub_adapters")
def test_lint_findings(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text(textwrap.dedent(LINT_CONFIG))
    cfg = load_config(p)
    findings = lint(cfg, today=date(2026, 6, 1))

    # an unknown type, option or reference field no longer reaches lint: loading refuses
    # it (tests/unit/test_declarations.py)
    f = find(findings, "error", "typo", "flags[0] is on backend 'vault'")
    vault_line = line_of(p, 'backend = "vault"', 3)
    assert f.where == f"{p}:{vault_line}"
    f = find(findings, "warning", None, "adapter 'broken' of backend 'broken' could not be loaded")
    assert "ImportError" in f.message

    f = find(findings, "warning", "bare", "no kill points")
    assert f.where == f"{p}:{line_of(p, '[[integrations]]', 3)}"
    find(findings, "warning", "bare", "no kill_switch_owner")
    f = find(findings, "warning", "bare", "review was due on 2020-01-01")
    assert f.where == f"{p}:{line_of(p, 'review_due = 2020')}"
    find(findings, "warning", "oneway", "all irreversible")

    # the good integration: schemaless flag fields are not checked, review not yet due
    assert not [f for f in findings if f.integration == "good"]
    # broken adapters: field checks skipped, no irreversibility guess
    assert not [f for f in findings if f.integration == "broken-type"]
    levels = [f.level for f in findings]
    assert levels == sorted(levels)  # errors first
    assert len([f for f in findings if f.level == "error"]) == 1
    assert "error: typo" in str(find(findings, "error", "typo", "flags[0]"))
    assert find(findings, "error", "typo", "flags[0]").to_dict()["level"] == "error"


@pytest.mark.usefixtures("stub_adapters")
def test_lint_undefined_backend_on_config_built_in_code() -> None:
    cfg = Config(
        path=Path("/c.toml"),
        integrations=[mk("x", credentials=[{"backend": "ghost"}], kill_switch_owner={"name": "A"})],
    )
    findings = lint(cfg)
    f = find(findings, "error", "x", "undefined backend 'ghost'")
    assert f.where == "" and "defined backends: none" in f.hint


def test_example_config_lints_without_errors() -> None:
    cfg = load_config(REPO / "config.example.toml")
    errors = [f for f in lint(cfg) if f.level == "error"]
    assert errors == []


def test_example_config_lints_clean_with_real_adapters() -> None:
    import adapters.flagfile  # noqa: F401
    import adapters.vault  # noqa: F401
    cfg = load_config(REPO / "config.example.toml")
    assert lint(cfg, today=date(2026, 11, 1)) == []
