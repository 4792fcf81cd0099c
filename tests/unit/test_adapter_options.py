"""Backend options shared by the adapters: a bad value says which backend and option."""

from __future__ import annotations

import pytest

from adapters.slack import SlackWebhookAdapter
from adapters.unleash import UnleashAdapter
from console.errors import AdapterError


def test_bad_timeout_names_backend_option_and_value() -> None:
    with pytest.raises(AdapterError) as err:
        SlackWebhookAdapter("ir-slack", {"request_timeout": "soon"})
    assert "'ir-slack'" in str(err.value) and "request_timeout" in str(err.value)
    assert "'soon'" in str(err.value) and "request_timeout = 30" in err.value.hint


def test_file_options_expand_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    adapter = UnleashAdapter("u", {"url": "http://127.0.0.1:4242",
                                   "token_file": "~/unleash.token", "request_timeout": 5})
    assert adapter.token_file == tmp_path / "unleash.token"
    assert adapter.timeout == 5.0


def test_options_are_a_typed_model_on_the_adapter(tmp_path) -> None:
    from adapters.specs.notify import SlackOptions

    adapter = SlackWebhookAdapter("s", {"request_timeout": 5, "webhook_file": "~/hook",
                                        "ignored_by_the_constructor": 1})
    assert isinstance(adapter.opts, SlackOptions)
    assert adapter.opts.request_timeout == 5.0 and adapter.timeout == 5.0
    assert adapter.options["webhook_file"] == adapter.opts.webhook_file
    assert not adapter.opts.webhook_file.startswith("~")
    assert adapter.opts.webhook_env == "KILLSWITCH_SLACK_WEBHOOK_URL"  # the declared default


def test_every_invalid_option_names_backend_option_and_value() -> None:
    with pytest.raises(AdapterError) as err:
        UnleashAdapter("u", {"url": "http://127.0.0.1:4242", "request_timeout": -1})
    assert str(err.value).startswith("u: backend 'u': option request_timeout must be > 0")
    with pytest.raises(AdapterError) as err:
        UnleashAdapter("u", {})
    assert "option url is required" in str(err.value)
    assert "Unleash base URL" in err.value.hint  # the option's docstring
