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
