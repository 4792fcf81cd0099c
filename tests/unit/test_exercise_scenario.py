"""Exercise scenarios: the shipped ones load and fit the example config; bad input is refused
with file:line and a hint."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from console.config import load_config
from console.errors import ConfigError
from console.exercise.scenario import (
    SHIPPED_EXERCISES,
    ScenarioError,
    check_against,
    format_clock,
    list_scenarios,
    load_scenario,
    parse_duration,
    parse_time,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
SHIPPED = ("leaked-key", "personal-data", "runaway-batch")

GOOD = """\
title = "A test"
briefing = "Read this out."
integrations = ["support-bot"]

[[injects]]
at = "T+00:00"
message = "Something happened."

[[injects]]
at = "T+00:05"
fault = { backend = "openai-sandbox", latency = 1.5, for = "00:10" }

[[objectives]]
id = "off"
kind = "contained"
integration = "support-bot"
kill_points = ["credentials"]
within = "05:00"

[[response.steps]]
at = "T+00:03"
runbook = "revoke-credentials"
selectors = ["support-bot"]
allow_irreversible = true
"""


@pytest.fixture(scope="module")
def example():
    return load_config(EXAMPLE)


def write(tmp_path: Path, text: str, name: str = "drill") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def refused(path: Path, config=None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        scenario = load_scenario(str(path))
        if config is not None:
            check_against(scenario, config)
    err = info.value
    assert isinstance(err, ConfigError) and err.exit_code == 2
    return err


def line_of(path: Path, needle: str) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def loc(path: Path, needle: str) -> str:
    """``path:line`` of the first line holding ``needle``."""
    return f"{path}:{line_of(path, needle)}"


# --------------------------------------------------------------------------- shipped


def test_shipped_scenarios_load_and_fit_the_example_config(example):
    scenarios = list_scenarios(example)
    assert [s.name for s in scenarios] == list(SHIPPED)
    assert SHIPPED_EXERCISES.name == "exercises" and SHIPPED_EXERCISES.parent.name == "runbooks"
    for s in scenarios:
        check_against(s, example)
        assert s.title and s.briefing and s.integrations and s.objectives and s.response
        assert all(example.integration(i) for i in s.integrations)
        times = [i.at for i in s.injects] + [r.at for r in s.response]
        assert max(times) <= 40, f"{s.name}: keep the timeline short (--auto --speed 4)"
        assert [i.at for i in s.injects] == sorted(i.at for i in s.injects)
        assert all(i.line > 0 for i in s.injects)


def test_leaked_key_has_the_injects_and_response_of_the_brief(example):
    s = load_scenario("leaked-key", example)
    kinds = [(i.at, i.fault.kind if i.fault else None) for i in s.injects]
    assert kinds == [(0.0, None), (5.0, "unlisted-copy"), (8.0, "backend")]
    copy, slow = s.injects[1].fault, s.injects[2].fault
    assert copy is not None and copy.backend == "vault-sandbox" and copy.path
    assert slow is not None and slow.settings == {"latency": 1.0, "throttle_rate": 0.3,
                                                  "retry_after": 1.0}
    assert slow.duration == 20.0
    assert {o.kind for o in s.objectives} == {"contained", "proof", "no-live-copy",
                                              "no-unconsented-irreversible"}
    step = s.response[0]
    assert (step.at, step.runbook, step.include_unlisted, step.allow_irreversible) == (
        10.0, "revoke-credentials", True, True)


def test_personal_data_meets_a_lock_first(example):
    s = load_scenario("personal-data", example)
    lock = next(i for i in s.injects if i.fault and i.fault.kind == "lock")
    assert lock.fault is not None and lock.fault.integration == "search-embeddings"
    assert lock.fault.holder and lock.fault.duration == 15.0
    assert s.response[0].at < lock.at + 15.0 <= s.response[-1].at


def test_user_folder_overrides_a_shipped_scenario(tmp_path):
    folder = tmp_path / "drills"
    folder.mkdir()
    write(folder, GOOD.replace('title = "A test"', 'title = "Ours"'), "leaked-key")
    write(folder, GOOD, "extra")
    cfg = tmp_path / "config.toml"
    cfg.write_text(EXAMPLE.read_text().replace(
        "[settings]\n", '[settings]\nexercise_dirs = ["drills"]\n', 1))
    config = load_config(cfg)
    names = {s.name: s for s in list_scenarios(config)}
    assert set(names) == {*SHIPPED, "extra"}
    assert names["leaked-key"].title == "Ours"
    assert load_scenario("leaked-key", config).path == folder / "leaked-key.toml"
    assert load_scenario("leaked-key").title != "Ours"  # no config: shipped only


def test_a_missing_user_folder_is_named_at_its_line(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(EXAMPLE.read_text().replace(
        "[settings]\n", '[settings]\nexercise_dirs = ["nowhere"]\n', 1))
    with pytest.raises(ScenarioError) as info:
        list_scenarios(load_config(cfg))
    assert info.value.where == loc(cfg, "exercise_dirs")
    assert "relative to the config file" in info.value.hint


def test_times_and_durations():
    assert parse_time("T+00:00") == 0.0
    assert parse_time("T+01:30") == 90.0
    assert parse_time("T+1:02:03") == 3723.0
    assert parse_duration("10:00") == 600.0 and parse_duration("1:00:00") == 3600.0
    for bad in ("00:10", "T+1:5", "T+00:60", "T+1:60:00", "T-00:10", "soon", ""):
        with pytest.raises(ValueError, match="T\\+mm:ss"):
            parse_time(bad)
    with pytest.raises(ValueError, match="mm:ss"):
        parse_duration("T+05:00")
    assert format_clock(75) == "T+01:15" and format_clock(3723) == "T+1:02:03"
    assert format_clock(300, prefix="") == "05:00"


def test_unknown_scenario_name_suggests(example):
    with pytest.raises(ScenarioError) as info:
        load_scenario("leaked-keys", example)
    assert "did you mean 'leaked-key'" in info.value.hint


# --------------------------------------------------------------------------- bad input


def test_malformed_toml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace('at = "T+00:05"', 'at = "T+00:05'))
    err = refused(path)
    assert err.where == loc(path, 'at = \"T+00:05')
    assert "invalid TOML" in err.msg and err.hint


def test_unknown_field_is_refused_with_a_suggestion(tmp_path):
    path = write(tmp_path, GOOD.replace('kind = "contained"', 'kind = "contained"\nwithn = "1:00"'))
    err = refused(path)
    assert err.where == loc(path, 'withn')
    assert "unknown field 'withn'" in err.msg and "did you mean 'within'" in err.hint


def test_unknown_fault_field_lists_the_valid_ones(tmp_path):
    path = write(tmp_path, GOOD.replace("latency = 1.5", "latncy = 1.5"))
    err = refused(path)
    assert err.where == loc(path, 'latncy')
    assert "latency" in err.hint and "for_" not in err.hint and " for" in err.hint


def test_bad_time_says_the_format(tmp_path):
    path = write(tmp_path, GOOD.replace('at = "T+00:05"', 'at = "5s"'))
    err = refused(path)
    assert err.where == loc(path, 'at = \"5s\"')
    assert "T+mm:ss" in err.msg and "T+00:30" in err.hint


def test_bad_duration_says_the_format(tmp_path):
    path = write(tmp_path, GOOD.replace('within = "05:00"', 'within = "5 minutes"'))
    err = refused(path)
    assert err.where == loc(path, 'within')
    assert "mm:ss" in err.msg and "05:00" in err.hint


def test_unknown_objective_kind_suggests(tmp_path):
    path = write(tmp_path, GOOD.replace('kind = "contained"', 'kind = "contain"'))
    err = refused(path)
    assert err.where == loc(path, 'kind = \"contain\"')
    assert "contained" in err.msg and "did you mean 'contained'" in err.hint


@pytest.mark.parametrize(("fault", "words"), [
    ("latency = -1", "greater than or equal to 0"),
    ("throttle_rate = 1.5", "less than or equal to 1"),
    ("error_rate = 0.5, error_status = 404", "greater than or equal to 500"),
    ("down = 1", "valid boolean"),
    ("retry_after = 2", "retry_after applies to throttle_rate"),
    ("hang = 0, timeout_rate = 0.1", "greater than 0"),
    ("clear = true, latency = 1", "takes no other setting"),
])
def test_bad_backend_fault_values(tmp_path, fault, words):
    path = write(tmp_path, GOOD.replace('latency = 1.5, for = "00:10"', fault))
    err = refused(path)
    assert err.where == loc(path, 'fault =')
    assert words in err.msg and err.hint


@pytest.mark.parametrize(("fault", "words"), [
    ('kind = "lock", integration = "support-bot"', "needs 'holder'"),
    ('kind = "lock", integration = "support-bot", holder = "a", latency = 1',
     "'latency' does not apply to a lock fault"),
    ('kind = "unlisted-copy", integration = "support-bot", backend = "vault-sandbox"',
     "needs 'path'"),
    ('kind = "outage", backend = "x"', "must be one of backend, lock, unlisted-copy"),
    ('backend = "openai-sandbox"', "sets nothing"),
])
def test_bad_special_faults(tmp_path, fault, words):
    path = write(tmp_path, GOOD.replace('backend = "openai-sandbox", latency = 1.5, '
                                        'for = "00:10"', fault))
    err = refused(path)
    assert err.where == loc(path, 'fault =')
    assert words in err.msg and err.hint


def test_inject_needs_message_or_fault(tmp_path):
    path = write(tmp_path, GOOD.replace('message = "Something happened."\n', ""))
    err = refused(path)
    assert err.where == loc(path, '[[injects]]')
    assert "message, a fault or both" in err.msg


def test_objective_fields_follow_its_kind(tmp_path):
    path = write(tmp_path, GOOD + '\n[[objectives]]\nid = "c"\nkind = '
                 '"no-unconsented-irreversible"\nintegration = "support-bot"\n')
    err = refused(path)
    assert "'integration' does not apply" in err.msg
    path = write(tmp_path, GOOD.replace('integration = "support-bot"\nkill', 'integration = '
                                        '"code-review-agent"\nkill'))
    err = refused(path)
    assert "not one of the scenario's integrations" in err.msg


def test_several_problems_are_listed_in_file_order(tmp_path):
    path = write(tmp_path, GOOD.replace('at = "T+00:05"', 'at = "later"')
                 .replace('within = "05:00"', 'within = "soon"'))
    err = refused(path)
    assert "2 problems" in err.msg
    assert err.where == loc(path, 'later')


def test_name_must_match_the_file(tmp_path):
    path = write(tmp_path, 'name = "other"\n' + GOOD)
    err = refused(path)
    assert err.where == f"{path}:1" and "name = 'drill'" in err.hint


# --------------------------------------------------------------------------- config fit


def test_unknown_integration_backend_and_runbook_against_the_config(tmp_path, example):
    text = (GOOD.replace('integrations = ["support-bot"]', 'integrations = ["support-bot", '
                         '"suport-bot"]')
            .replace('backend = "openai-sandbox"', 'backend = "openai-sandbx"')
            .replace('runbook = "revoke-credentials"', 'runbook = "revoke-credential"'))
    path = write(tmp_path, text)
    err = refused(path, example)
    assert "3 problems" in err.msg
    assert loc(path, "integrations =") + ": integration 'suport-bot'" in err.msg
    assert loc(path, "openai-sandbx") + ": " in err.msg
    assert "did you mean 'openai-sandbox'" in err.msg
    assert loc(path, "revoke-credential") + ": " in err.msg
    assert "no runbook named 'revoke-credential'" in err.msg
    assert err.where == loc(path, 'integrations =')


def test_one_config_problem_carries_its_hint(tmp_path, example):
    path = write(tmp_path, GOOD.replace('runbook = "revoke-credentials"', 'runbook = "restore"'))
    err = refused(path, example)
    assert err.where == loc(path, 'runbook =')
    assert "restore runbook" in err.msg and "kill-switch" in err.hint


def test_unlisted_copy_goes_into_a_credential_store_at_an_unlisted_path(tmp_path, example):
    fault = ('fault = { kind = "unlisted-copy", integration = "support-bot", '
             'backend = "flags", path = "x" }')
    path = write(tmp_path, GOOD.replace(
        'fault = { backend = "openai-sandbox", latency = 1.5, for = "00:10" }', fault))
    err = refused(path, example)
    assert err.where == loc(path, 'unlisted-copy')
    assert "not a credential store" in err.msg and "vault-sandbox" in err.hint
    listed = fault.replace('"flags", path = "x"', '"vault-sandbox", path = '
                           '"ai/support-bot/provider-key"')
    path = write(tmp_path, GOOD.replace(
        'fault = { backend = "openai-sandbox", latency = 1.5, for = "00:10" }', listed))
    err = refused(path, example)
    assert "is listed in the inventory" in err.msg and err.hint


def test_selectors_that_match_nothing(tmp_path, example):
    path = write(tmp_path, GOOD.replace('selectors = ["support-bot"]', 'selectors = ["nobody"]'))
    err = refused(path, example)
    assert err.where == loc(path, 'selectors')
    assert "nobody" in err.msg
