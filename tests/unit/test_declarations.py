"""Adapter declarations are enforced where the config loads (issue 9, part 2).

Every guard has an adversarial case: a reference its adapter would refuse, a misspelt
option, a wrongly typed duration, a backend type naming no adapter. Each is refused by
every command (exit 2) with the ``file:line`` of the offending key, the bad value and the
allowed ones. A meta-test keeps every built-in adapter's declarations real and reachable
without importing its SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import console.declarations as declarations
from adapters.base import ActionSpec, Adapter, adapter_names, load_adapter_class
from adapters.options import AdapterOptions, FilePath, Seconds
from adapters.schema import compile_check, unsupported, validate
from adapters.specs import BUILTIN, builtin_spec, spec_of
from console.cli import main
from console.config import Config, load_config
from console.engine.runtime import Runtime
from console.errors import ConfigError
from console.inventory import lint

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"

HEAD = """\
[settings]
audit_db = "audit.db"

[backends.vault]
type = "vault"
url = "http://127.0.0.1:8200"

[backends.hook]
type = "slack"

[[integrations]]
id = "bot"
name = "Bot"
owner = "team"
environment = "prod"
provider = "openai"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
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


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


# --------------------------------------------------------------------------- references


def test_vault_kind_typo_without_path_is_refused_at_load(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD + '[[integrations.credentials]]\nbackend = "vault"\n'
                              'kind = "tokn"\n')
    err = refused(p)
    assert err.where == f"{p}:{line_of(p, 'tokn')}"
    assert "credentials[0] on vault backend 'vault'" in err.msg
    assert "kind must be one of kv, token, lease (got 'tokn')" in err.msg
    assert "did you mean 'token'?" in err.hint


def test_vault_reference_needs_the_field_of_its_kind(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD
              + '[[integrations.credentials]]\nbackend = "vault"\nmount = "secret"\n'
              + '[[integrations.credentials]]\nbackend = "vault"\nkind = "token"\n'
              + '[[integrations.credentials]]\nbackend = "vault"\nkind = "lease"\n'
              + 'prefix = "auth/x"\npaht = "a"\n')
    msg = str(refused(p))
    assert "3 problems" in msg
    header = line_of(p, "[[integrations.credentials]]")
    assert f"{p}:{header}: integration 'bot': credentials[0] on vault backend 'vault': " \
           "missing required field 'path'" in msg
    assert "path: secret path inside the mount (kind kv)" in msg
    assert "credentials[1] on vault backend 'vault': missing required field 'accessor'" in msg
    assert f"{p}:{line_of(p, 'paht')}: integration 'bot': credentials[2] on vault backend " \
           "'vault': unknown field 'paht'" in msg
    assert "did you mean 'path'?" in msg


def test_inventory_lint_no_longer_passes_a_bad_vault_reference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, HEAD + '[[integrations.credentials]]\nbackend = "vault"\n'
                              'kind = "tokn"\n')
    code, out, err = run_cli(capsys, "--config", str(p), "inventory", "lint")
    assert code == 2 and out == ""
    assert f"{p}:{line_of(p, 'tokn')}" in err and "(got 'tokn')" in err


def test_openai_reference_needs_exactly_one_key_id(tmp_path: Path) -> None:
    text = HEAD + '[backends.oa]\ntype = "openai"\n'
    p = write(tmp_path, text.replace("[[integrations]]", "\n[[integrations]]", 1)
              + '[[integrations.credentials]]\nbackend = "oa"\nproject = "proj_x"\n'
              + 'api_key_id = "key_a"\nservice_account_id = "sa_b"\n'
              + '[[integrations.credentials]]\nbackend = "oa"\napi_key_id = "key_c"\n')
    msg = str(refused(p))
    assert "must have exactly one of: field 'api_key_id' / field 'service_account_id'" in msg
    assert "credentials[1] on openai backend 'oa': missing required field 'project'" in msg


def test_reference_types_and_enums_are_checked(tmp_path: Path) -> None:
    text = HEAD.replace('[backends.hook]', '[backends.sm]\ntype = "aws-secrets"\n\n'
                        '[backends.ld]\ntype = "launchdarkly"\n\n[backends.hook]')
    p = write(tmp_path, text
              + '[[integrations.credentials]]\nbackend = "sm"\nsecret_id = "a/b"\n'
              + 'method = "shred"\nrecovery_window_days = 3\n'
              + '[[integrations.flags]]\nbackend = "ld"\nflag = "f"\n'
              + 'environments = "production"\n')
    msg = str(refused(p))
    assert "method must be one of schedule-deletion, tombstone (got 'shred')" in msg
    assert "recovery_window_days must be at least 7 (got 3)" in msg
    assert "environments must be an array (got 'production')" in msg
    assert f"{p}:{line_of(p, 'environments')}" in msg


def test_contacts_on_a_notification_backend_are_checked(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD + '[[integrations.contacts]]\nname = "IC"\nbackend = "hook"\n'
                              '[[integrations.credentials]]\nbackend = "vault"\npath = "p"\n')
    load_config(p)  # a contact is name, role, how, backend: nothing more to refuse


def test_reference_on_a_backend_with_no_such_list_is_left_to_lint(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD + '[[integrations.flags]]\nbackend = "vault"\nflag = "x"\n')
    config = load_config(p)
    [finding] = [f for f in lint(config) if f.level == "error"]
    assert "flags[0] is on backend 'vault' (type 'vault'), which offers no action on flags" \
        in finding.message


# --------------------------------------------------------------------------- options


def test_misspelt_option_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD.replace('url = "http://127.0.0.1:8200"',
                                     'url = "http://127.0.0.1:8200"\ntokn_file = "t"'))
    err = refused(p)
    assert err.where == f"{p}:{line_of(p, 'tokn_file')}"
    assert err.msg == "backend 'vault' (vault): unknown option 'tokn_file'"
    assert err.hint.startswith("did you mean 'token_file'? options: namespace, token_env, ")


@pytest.mark.parametrize("value", ['"10s"', '"30"', "true", "0", "-5", "[10]"])
def test_wrongly_typed_duration_is_refused(tmp_path: Path, value: str) -> None:
    p = write(tmp_path, HEAD.replace('type = "slack"', f'type = "slack"\nrequest_timeout = '
                                     f'{value}'))
    err = refused(p)
    assert err.where == f"{p}:{line_of(p, 'request_timeout')}"
    assert err.msg.startswith("backend 'hook' (slack): option request_timeout must be ")
    assert ("a number of seconds" in err.msg) or ("> 0" in err.msg)


def test_durations_and_files_are_typed_fields_not_key_suffixes() -> None:
    from adapters.specs.egress import NftablesOptions, SquidOptions
    from adapters.specs.fake import FakeOptions

    # typed by declaration: a file option named without a *_file suffix is resolved...
    typed = SquidOptions.parse("s", {"path": "deny.txt"}, base_dir=Path("/etc/cfg"))
    assert typed.to_options() == {"denylist": "/etc/cfg/deny.txt"}
    # ...and a duration named without *timeout is still a number of seconds
    with pytest.raises(Exception, match="option latency must be a number of seconds"):
        FakeOptions.parse("sim", {"latency": "1s"})
    assert NftablesOptions.parse("fw", {"probe_timeout": 2}).probe_timeout == 2.0
    assert Seconds is not FilePath  # distinct types, not spellings


def test_env_options_refuse_a_pasted_secret_without_echoing_it(tmp_path: Path) -> None:
    secret = "hvs.CAESIJlWh3bVqz1xS2nUu9xJjY0a"
    p = write(tmp_path, HEAD.replace('url = "http://127.0.0.1:8200"',
                                     f'url = "http://127.0.0.1:8200"\ntoken_env = "{secret}"'))
    err = refused(p)
    assert "token_env must be the NAME of an environment variable" in err.msg
    assert secret not in str(err) and secret not in err.hint


def test_url_and_enum_options_say_what_is_allowed(tmp_path: Path) -> None:
    text = HEAD.replace('url = "http://127.0.0.1:8200"', 'url = "127.0.0.1:8200"').replace(
        '[backends.hook]', '[backends.pd]\ntype = "pagerduty"\nseverity = "loud"\n\n'
        '[backends.hook]')
    msg = str(refused(write(tmp_path, text)))
    assert "option url must be an http:// or https:// URL (got '127.0.0.1:8200')" in msg
    assert "option severity must be one of critical, error, warning, info (got 'loud')" in msg


def test_missing_required_option_points_at_the_backend(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD.replace('url = "http://127.0.0.1:8200"\n', ""))
    err = refused(p)
    assert err.where == f"{p}:{line_of(p, '[backends.vault]')}"
    assert err.msg == "backend 'vault' (vault): option url is required"


def test_runtime_builds_adapters_from_typed_resolved_options(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    p = write(tmp_path, HEAD.replace('type = "slack"', 'type = "slack"\nrequest_timeout = 5\n'
                                     'webhook_file = "hooks/url"').replace(
        'url = "http://127.0.0.1:8200"', 'url = "http://127.0.0.1:8200"\n'
        'token_file = "~/vault.token"'))
    rt = Runtime(load_config(p))
    try:
        hook = rt.adapter("hook")
        assert hook.options["webhook_file"] == str(tmp_path / "hooks" / "url")
        assert hook.options["request_timeout"] == 5.0
        assert rt.adapter("vault").options["token_file"] == str(tmp_path / "home/vault.token")
    finally:
        rt.close()


# --------------------------------------------------------------------------- backend types


def test_unknown_backend_type_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD.replace('type = "vault"', 'type = "valt"'))
    err = refused(p)
    assert err.where == f"{p}:{line_of(p, 'valt')}"
    assert err.msg == ("backend 'vault' has unknown type 'valt': no adapter of that name is "
                       "installed")
    assert err.hint.startswith("did you mean 'vault'? installed adapters: ")


@pytest.mark.parametrize("command", [("plan", "kill-switch", "bot"), ("inventory", "list"),
                                     ("inventory", "lint"), ("permissions", "restore", "bot")])
def test_every_command_refuses_an_unknown_backend_type(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]) -> None:
    p = write(tmp_path, HEAD.replace('type = "vault"', 'type = "valt"'))
    code, out, err = run_cli(capsys, "--config", str(p), *command)
    assert code == 2 and out == ""
    assert f"error: {p}:{line_of(p, 'valt')}: backend 'vault' has unknown type 'valt'" in err
    assert "did you mean 'vault'?" in err


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD.replace('type = "vault"', 'type = "valt"').replace(
        'type = "slack"', 'type = "slack"\nrequest_timout = 3')
        + '[[integrations.contacts]]\nname = "IC"\nbackend = "hook"\nrol = "x"\n')
    msg = str(refused(p))
    assert "3 problems" in msg
    for needle in ("valt", "request_timout", "rol ="):
        assert f"{p}:{line_of(p, needle)}" in msg, needle


# --------------------------------------------------------------------------- third-party


class LooseCreds(Adapter):
    name = "loose"
    OPTIONS = {"url": "server address"}
    ACTIONS = {"credential.disable": ActionSpec(
        "credential.disable", "credentials", True,
        schema={"properties": {"backend": {}, "label": {}, "path": {}}})}


class Broken(Adapter):
    name = "broken"


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(name: str) -> type[Adapter]:
        if name == "broken":
            raise ImportError("No module named 'hvac_missing'")
        return LooseCreds

    monkeypatch.setattr(declarations, "adapter_names", lambda: ["broken", "loose"])
    monkeypatch.setattr(declarations, "load_adapter_class", load)


THIRD = """\
[backends.v]
type = "loose"
url = "http://x"
{option}

[backends.b]
type = "broken"
anything = 1

[[integrations]]
id = "a"
name = "A"
owner = "t"
environment = "prod"
provider = "openai"
[[integrations.credentials]]
backend = "v"
{field} = "ai/a"
[[integrations.credentials]]
backend = "b"
y = 2
"""


@pytest.mark.usefixtures("third_party")
def test_third_party_declarations_are_enforced_too(tmp_path: Path) -> None:
    p = write(tmp_path, THIRD.format(option='urll = "typo"', field="paht"))
    msg = str(refused(p))
    assert "2 problems" in msg
    assert f"{p}:{line_of(p, 'urll')}: backend 'v' (loose): unknown option 'urll'" in msg
    assert "did you mean 'url'?" in msg
    assert f"{p}:{line_of(p, 'paht')}: integration 'a': credentials[0] on loose backend " \
           "'v': unknown field 'paht'" in msg
    # a schema that lists properties is closed; an adapter that cannot be imported is not
    # a load error (its references cannot be checked: lint warns)
    config = load_config(write(tmp_path, THIRD.format(option="", field="path")))
    [warning] = [f for f in lint(config) if "could not be loaded" in f.message]
    assert warning.level == "warning" and "(ImportError" in warning.message


def test_lint_reports_declaration_errors_of_a_config_built_in_code() -> None:
    from console.config import Backend
    from console.inventory import Integration

    config = Config(path=Path("/c.toml"),
                    backends={"v": Backend.model_validate({"type": "vault", "url": "x"}),
                              "w": Backend(type="valt")},
                    integrations=[Integration.model_validate({
                        "id": "x", "name": "X", "owner": "o", "environment": "dev",
                        "provider": "p", "kill_switch_owner": {"name": "A"},
                        "credentials": [{"backend": "v", "kind": "tokn"}]})])
    errors = {f.message for f in lint(config) if f.level == "error"}
    assert "backend 'v' (vault): option url must be an http:// or https:// URL (got 'x')" \
        in errors
    assert "backend 'w' has unknown type 'valt': no adapter of that name is installed" in errors
    assert "credentials[0] on vault backend 'v': kind must be one of kv, token, lease " \
           "(got 'tokn')" in errors


# --------------------------------------------------------------------------- meta


@pytest.mark.parametrize("name", adapter_names())
def test_builtin_declarations_are_the_adapter_class_and_real(name: str) -> None:
    spec = builtin_spec(name)
    assert spec is not None, f"{name}: no light spec in adapters/specs"
    cls = load_adapter_class(name)
    assert cls.ACTIONS is spec.actions and cls.Options is spec.options
    assert spec_of(cls).actions is spec.actions
    assert dict(cls.OPTIONS) == spec.options.help()
    assert all(spec.options.help().values()), f"{name}: an option has no docstring"
    assert spec.iam or name == "fake", f"{name}: how its permissions are granted is not declared"
    for kind, action in spec.actions.items():
        schema = action.schema
        assert not unsupported(schema), f"{name} {kind}: {unsupported(schema)}"
        assert schema.get("type") == "object" and schema.get("additionalProperties") is False
        assert "backend" in schema["properties"]
        for field, sub in schema["properties"].items():
            if field not in ("backend", "label", "role"):
                assert sub.get("description"), f"{name} {kind}: {field} has no description"


def test_config_load_imports_no_sdk() -> None:
    code = textwrap.dedent(f"""
        import sys
        from console.cli import main
        try:
            main(["--config", {str(EXAMPLE)!r}, "inventory", "list"])
        except SystemExit:
            pass
        heavy = ("hvac", "boto3", "botocore", "google", "httpx", "requests", "textual")
        print([m for m in sys.modules if m.split(".")[0] in heavy])
        print(sorted(m for m in sys.modules if m.startswith("adapters.")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=60).stdout.splitlines()
    assert out[-2] == "[]"
    assert not [m for m in json.loads(out[-1].replace("'", '"'))
                if not m.startswith(("adapters.specs", "adapters.options", "adapters.schema",
                                     "adapters.base", "adapters.canonical",
                                     "adapters.evidence"))]


def _variants(schema: Mapping[str, Any], good: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The good reference, then each field removed, mistyped, emptied; an unknown field."""
    yield dict(good)
    for key in good:
        yield {k: v for k, v in good.items() if k != key}
        for bad in (3, "", [], {}, ["x"], True, "tokn"):
            yield {**good, key: bad}
    for key in schema["properties"]:
        for value in ("x", 7, ["a"], {"k": "v"}):
            yield {**good, key: value}
    yield {**good, "typo_field": "x"}


def _example_refs() -> dict[str, list[dict[str, Any]]]:
    config = load_config(EXAMPLE)
    out: dict[str, list[dict[str, Any]]] = {}
    for integ in config.integrations:
        for kind in ("credentials", "flags", "batches", "egress"):
            for ref in integ.refs(kind):
                out.setdefault(config.backends[ref.backend].type, []).append(ref.fields())
        for c in integ.contacts:
            if c.backend:
                out.setdefault(config.backends[c.backend].type, []).append(
                    c.model_dump(exclude_none=True))
    return out


EXTRA_REFS = {
    "fake": [{"backend": "sim", "key": "k"}],
    "nftables": [{"backend": "fw", "destinations": ["10.0.0.1"]}],
    "squid": [{"backend": "proxy", "destinations": [".openai.com"]}],
    "vault": [{"backend": "v", "kind": "token", "accessor": "hAbC"},
              {"backend": "v", "kind": "lease", "prefix": "auth/token/create/x"}],
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_fast_check_agrees_with_the_validator(name: str) -> None:
    spec = builtin_spec(name)
    assert spec is not None
    refs = _example_refs().get(name, []) + EXTRA_REFS.get(name, [])
    assert refs, f"no sample reference for {name}"
    schemas = {id(a.schema): a.schema for a in spec.actions.values()}.values()
    for schema in schemas:
        check = compile_check(schema)
        for good in refs:
            assert not validate(good, schema), (name, good, validate(good, schema))
            for variant in _variants(schema, good):
                assert check(variant) == (not validate(variant, schema)), (name, variant)


def test_options_model_ignores_unknown_keys_but_the_loader_does_not() -> None:
    class Opts(AdapterOptions):
        wait: Seconds = 1.0
        """Seconds."""

    assert Opts.parse("b", {"wait": 2, "other": 1}).to_options() == {"wait": 2.0}
    model, problems = Opts.problems({"wiat": 2})
    assert model is None
    assert problems == [("wiat", "unknown option 'wiat'", "did you mean 'wait'? options: wait")]


def test_console_backend_fields_are_not_taken_for_adapter_options() -> None:
    from console.config import Backend

    assert set(declarations.BACKEND_FIELDS) == set(Backend.model_fields)
