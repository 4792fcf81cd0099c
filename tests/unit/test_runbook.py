"""Runbook loading and validation: file:line errors, DAG checks, discovery."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import console.runbook as runbook_mod
from adapters.base import ActionSpec, Adapter
from console.config import Config, load_config
from console.errors import (
    ConfigError,
    RunbookError,
    RunbookSyntaxError,
    RunbookValidationError,
)
from console.inventory import Integration
from console.runbook import (
    SHIPPED_DIR,
    list_runbooks,
    load_runbook,
    runbook_paths,
    served_actions,
)

REPO = Path(__file__).resolve().parents[2]

SERVED = {
    "flag.disable": ["flagfile"],
    "flag.enable": ["flagfile"],
    "credential.disable": ["vault"],
    "credential.enable": ["vault"],
    "credential.destroy": ["vault"],
    "batch.cancel": ["openai-batch"],
    "egress.block": ["nftables"],
    "egress.unblock": ["nftables"],
    "notify": ["slack"],
    "evidence.preserve": ["fake"],
    "credential.issue": ["aws-iam"],  # the shipped `rotate` runbook's kinds
    "credential.write": ["vault"],
    "credential.retire": ["aws-iam"],
}


@pytest.fixture(autouse=True)
def stub_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed set of served actions, whatever is installed."""
    monkeypatch.setattr(runbook_mod, "served_actions", lambda: dict(SERVED))


def write(tmp_path: Path, text: str, name: str = "my-book.toml") -> Path:
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
    raise AssertionError(needle)


def load_bad(path: Path, cls: type[RunbookError] = RunbookValidationError) -> RunbookError:
    with pytest.raises(cls) as ei:
        load_runbook(str(path))
    return ei.value


# --------------------------------------------------------------------------- shipped


def test_shipped_runbooks_load() -> None:
    books = {b.name: b for b in list_runbooks(None)}
    assert {"kill-switch", "flags-off", "revoke-credentials", "restore", "cancel-batches",
            "block-egress"} <= set(books)
    ks = books["kill-switch"]
    order = [s.action for s in ks.steps]
    assert set(order) == {"evidence.preserve", "flag.disable", "batch.cancel", "egress.block",
                          "credential.disable", "notify"}
    # the design's order: evidence first, then flags and batches before egress, egress
    # before credentials; people are told at once
    steps = {s.action: s for s in ks.steps}
    assert order[0] == "evidence.preserve" and steps["evidence.preserve"].on_error == "continue"
    assert steps["flag.disable"].needs == steps["batch.cancel"].needs == ["preserve-evidence"]
    assert steps["notify"].needs == []
    assert order.index("batch.cancel") < order.index("credential.disable")
    assert steps["egress.block"].needs == ["flags-off", "cancel-batches"]
    assert steps["credential.disable"].needs == ["block-egress"]
    assert "credential.destroy" not in {s.action for b in books.values() for s in b.steps}
    restore = books["restore"]
    assert restore.kind == "restore" and restore.is_restore and restore.steps == []
    assert books["flags-off"].steps[0].action == "flag.disable"
    assert books["revoke-credentials"].steps[0].action == "credential.disable"
    assert [s.action for s in books["evidence"].steps] == ["evidence.preserve"]
    assert ks.path == SHIPPED_DIR / "kill-switch.toml"


def test_shipped_runbooks_load_with_installed_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.flagfile  # noqa: F401
    import adapters.vault  # noqa: F401
    monkeypatch.undo()
    cfg = load_config(REPO / "config.example.toml")
    assert {b.name for b in list_runbooks(cfg)} >= {"kill-switch", "restore"}


def test_load_by_name_and_unknown_name() -> None:
    assert load_runbook("kill-switch").name == "kill-switch"
    with pytest.raises(RunbookError) as ei:
        load_runbook("kill-swtich")
    assert "no runbook named 'kill-swtich'" in ei.value.msg
    assert "did you mean 'kill-switch'" in ei.value.hint
    with pytest.raises(RunbookError, match="not found"):
        load_runbook("./nope.toml")


# --------------------------------------------------------------------------- happy path


def test_full_step_and_topological_order(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """\
        name = "my-book"
        description = "test"

        [[steps]]
        id = "revoke"
        action = "credential.disable"
        needs = ["flags"]
        when = "status != 'suspended'"
        timeout = 30
        on_error = "continue"
        [steps.options]
        reason = "incident"

        [[steps]]
        id = "flags"
        action = "flag.disable"

        [[steps]]
        id = "enable"
        action = "flag.enable"
        needs = ["revoke", "flags"]
        """,
    )
    book = load_runbook(str(p))
    assert [s.id for s in book.steps] == ["flags", "revoke", "enable"]
    revoke = book.step("revoke")
    assert revoke.options == {"reason": "incident"}
    assert revoke.timeout == 30.0 and revoke.on_error == "continue"
    assert revoke.kill_point == "credentials"
    assert book.step("flags").on_error == "stop" and book.step("flags").when is None
    live = Integration.model_validate(
        {"id": "a", "name": "A", "owner": "o", "environment": "prod", "provider": "openai"}
    )
    off = live.model_copy(update={"status": "suspended"})
    assert revoke.applies_to(live) and not revoke.applies_to(off)
    assert book.step("flags").applies_to(off)
    with pytest.raises(KeyError):
        book.step("nope")


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    p = write(tmp_path, '[[steps]]\nid = "a"\naction = "flag.disable"\n', "quiet.toml")
    assert load_runbook(str(p)).name == "quiet"


# --------------------------------------------------------------------------- errors


def test_bad_toml(tmp_path: Path) -> None:
    p = write(tmp_path, '[[steps]]\nid = "a"\naction = flag.disable\n')
    err = load_bad(p, RunbookSyntaxError)
    assert err.where == f"{p}:3"
    assert isinstance(err, ConfigError)


def test_unknown_field_in_step(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """\
        [[steps]]
        id = "a"
        action = "flag.disable"

        [[steps]]
        id = "b"
        action = "flag.disable"
        on_eror = "continue"
        """,
    )
    err = load_bad(p)
    assert err.where == f"{p}:{line_of(p, 'on_eror')}"
    assert "step 'b'" in err.msg and "unknown field 'on_eror'" in err.msg
    assert "did you mean 'on_error'" in err.hint


def test_unknown_top_level_field_and_bad_values(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """\
        nmae = "x"
        [[steps]]
        id = "a"
        action = "flag.disable"
        on_error = "ignore"
        timeout = -1
        """,
    )
    err = load_bad(p)
    text = str(err)
    assert err.where == f"{p}:1"
    assert "3 problems" in text
    assert f"{p}:5: step 'a': on_error must be one of stop, continue" in text
    assert f"{p}:6: step 'a': timeout" in text


@pytest.mark.parametrize(
    ("action", "suggestion"),
    [
        ("flag.disabel", "flag.disable"),
        ("credentials.disable", "credential.disable"),
        ("flags.off", "flag.disable"),
        ("batch.cancell", "batch.cancel"),
        ("egress.blok", "egress.block"),
    ],
)
def test_unknown_action_suggests(tmp_path: Path, action: str, suggestion: str) -> None:
    p = write(tmp_path, f'[[steps]]\nid = "a"\n\naction = "{action}"\n')
    err = load_bad(p)
    assert err.where == f"{p}:4"
    assert f"step 'a': unknown action {action!r}" in err.msg
    assert err.hint.startswith(f"did you mean {suggestion!r}?")


def test_action_no_adapter_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runbook_mod, "served_actions", lambda: {
        k: v for k, v in SERVED.items() if k != "credential.issue"})
    p = write(tmp_path, '[[steps]]\nid = "mint"\naction = "credential.issue"\n')
    err = load_bad(p)
    assert err.where == f"{p}:3"
    assert "step 'mint': no installed adapter serves 'credential.issue'" in err.msg
    assert "flag.disable" in err.hint


def test_duplicate_ids_and_missing_needs(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """\
        [[steps]]
        id = "a"
        action = "flag.disable"

        [[steps]]
        id = "a"
        action = "credential.disable"
        needs = ["flgs"]
        """,
    )
    err = load_bad(p)
    text = str(err)
    assert err.where == f"{p}:6"
    assert f"duplicate step id (first at {p}:2)" in text
    assert f"{p}:8: step 'a': needs unknown step 'flgs'" in text


def test_cycle_is_named(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """\
        [[steps]]
        id = "start"
        action = "flag.disable"

        [[steps]]
        id = "a"
        action = "flag.disable"
        needs = ["start", "c"]

        [[steps]]
        id = "b"
        action = "credential.disable"
        needs = ["a"]

        [[steps]]
        id = "c"
        action = "credential.disable"
        needs = ["b"]
        """,
    )
    err = load_bad(p)
    assert "needs form a cycle: a -> c -> b -> a" in err.msg
    needs_line = line_of(p, 'needs = ["start"')
    assert err.where == f"{p}:{needs_line}"


def test_self_cycle(tmp_path: Path) -> None:
    p = write(tmp_path, '[[steps]]\nid = "a"\naction = "flag.disable"\nneeds = ["a"]\n')
    err = load_bad(p)
    assert "cycle: a -> a" in err.msg and err.where == f"{p}:4"


def test_bad_when_fails_at_load(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """\
        [[steps]]
        id = "a"
        action = "flag.disable"
        when = "__import__('os').system('id')"
        """,
    )
    err = load_bad(p)
    assert err.where == f"{p}:4"
    assert "step 'a': invalid when" in err.msg


def test_restore_kind(tmp_path: Path) -> None:
    p = write(tmp_path, 'kind = "restore"\n[[steps]]\nid = "a"\naction = "flag.enable"\n')
    err = load_bad(p)
    assert "restore runbook has no steps" in err.msg and err.where == f"{p}:2"
    p = write(tmp_path, 'kind = "undo"\n')
    assert "kind must be one of steps, restore" in load_bad(p).msg
    p = write(tmp_path, 'description = "empty"\n')
    assert "no steps" in load_bad(p).msg


def test_name_must_match_file(tmp_path: Path) -> None:
    p = write(tmp_path, 'name = "other"\n[[steps]]\nid = "a"\naction = "flag.disable"\n')
    err = load_bad(p)
    assert err.where == f"{p}:1" and "does not match its file name" in err.msg


# --------------------------------------------------------------------------- discovery


def config_with_dirs(tmp_path: Path, *dirs: str) -> Config:
    p = tmp_path / "config.toml"
    p.write_text(f"[settings]\nrunbook_dirs = {list(dirs)!r}\n".replace("'", '"'))
    return load_config(p)


def test_user_runbook_dirs(tmp_path: Path) -> None:
    (tmp_path / "books").mkdir()
    write(tmp_path / "books", '[[steps]]\nid = "a"\naction = "flag.disable"\n', "mine.toml")
    cfg = config_with_dirs(tmp_path, "books")
    assert runbook_paths(cfg)["mine"] == tmp_path / "books" / "mine.toml"
    assert "mine" in {b.name for b in list_runbooks(cfg)}
    assert load_runbook("mine", cfg).steps[0].id == "a"
    assert load_runbook("books/mine.toml", cfg).name == "mine"


def test_name_clash_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "books").mkdir()
    clash = write(tmp_path / "books", '[[steps]]\nid = "a"\naction = "flag.disable"\n',
                  "kill-switch.toml")
    cfg = config_with_dirs(tmp_path, "books")
    with pytest.raises(ConfigError) as ei:
        load_runbook("flags-off", cfg)
    assert str(SHIPPED_DIR / "kill-switch.toml") in ei.value.msg
    assert str(clash) in ei.value.msg


def test_missing_runbook_dir(tmp_path: Path) -> None:
    cfg = config_with_dirs(tmp_path, "books", "nope")
    (tmp_path / "books").mkdir()
    with pytest.raises(ConfigError) as ei:
        list_runbooks(cfg)
    assert "nope" in ei.value.msg and ei.value.where == f"{tmp_path / 'config.toml'}:2"


def test_served_actions_skips_broken_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    class Flags(Adapter):
        name = "okflags"
        ACTIONS = {"flag.disable": ActionSpec("flag.disable", "flags", True)}

    def load(name: str) -> type[Adapter]:
        if name == "broken":
            raise ModuleNotFoundError("No module named 'missing_sdk'")
        return Flags

    import console.declarations as declarations

    monkeypatch.undo()
    monkeypatch.setattr(declarations, "adapter_names", lambda: ["broken", "okflags"])
    monkeypatch.setattr(declarations, "load_adapter_class", load)
    assert served_actions() == {"flag.disable": ["okflags"]}


def test_evidence_is_served_only_by_an_adapter_that_can_preserve(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Keys(Adapter):
        name = "keys"
        ACTIONS = {"credential.disable": ActionSpec("credential.disable", "credentials", True)}

    class Keeper(Keys):
        name = "keeper"
        CAN_PRESERVE = True

    import console.declarations as declarations

    monkeypatch.undo()
    classes = {"keys": Keys, "keeper": Keeper}
    monkeypatch.setattr(declarations, "load_adapter_class", classes.__getitem__)
    monkeypatch.setattr(declarations, "adapter_names", lambda: ["keys"])
    assert "evidence.preserve" not in served_actions()
    monkeypatch.setattr(declarations, "adapter_names", lambda: ["keeper", "keys"])
    assert served_actions()["evidence.preserve"] == ["keeper"]
