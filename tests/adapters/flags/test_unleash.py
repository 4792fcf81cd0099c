"""UnleashAdapter against a real Unleash 7.5.1 + PostgreSQL: exact per-environment undo."""

from __future__ import annotations

import json

import pytest

from adapters.base import PlanContext
from adapters.unleash import UnleashAdapter
from console.errors import AdapterError, AuthError, NotFound, Unavailable
from console.sandbox import unleash as sb
from tests.adapters.flags.conftest import UnleashServer, free_port

CTX = PlanContext("code-review-agent", "flags-off", run_id="r-unleash", incident="IR-5")
SECRETS = (sb.ADMIN_TOKEN, *sb.CLIENT_TOKENS.values(), "unleash-insecure")


def adapter(server: UnleashServer, **extra: str) -> UnleashAdapter:
    opts = {"url": server.url, "token_env": "KS_TEST_UNLEASH_TOKEN",
            "client_token_env": "KS_TEST_UNLEASH_CLIENT", **extra}
    a = UnleashAdapter("unleash-test", opts)
    a.open()
    return a


def assert_no_secret(*items: object) -> None:
    text = json.dumps([getattr(i, "to_dict", lambda i=i: repr(i))() for i in items],
                      default=str)
    for s in SECRETS:
        assert s not in text


def test_disable_production_only_leaves_development_on(unleash: UnleashServer,
                                                       unleash_env: None) -> None:
    flag = unleash.new_flag()
    a = adapter(unleash)
    ref = {"backend": "unleash-test", "flag": flag, "environments": ["production"]}

    [change] = a.plan("flag.disable", ref, CTX)
    assert change.status == "observed"
    assert change.before == {"production": True} and change.after == {"production": False}
    assert unleash.state(flag) == {"production": True, "development": True}, "plan is read-only"

    undo = a.apply(change)
    assert unleash.state(flag) == {"production": False, "development": True}
    verdict = a.verify(change)
    assert verdict.ok and verdict.state == "off"
    assert "client API (production SDK token) evaluates it off" in verdict.detail
    assert a.read(change) == change.after

    [again] = a.plan("flag.disable", ref, CTX)
    assert again.status == "noop"
    a.apply(change)  # idempotent re-apply
    assert unleash.state(flag) == {"production": False, "development": True}

    inverse = a.inverse(change, undo)
    assert inverse.action == "flag.enable" and inverse.before == change.after
    a.apply(inverse)
    back = a.verify(inverse)
    assert back.ok and back.state == "restored", back
    assert "evaluates it on" in back.detail
    assert unleash.state(flag) == {"production": True, "development": True}
    assert_no_secret(change, again, inverse, verdict, back)
    a.close()


def test_default_environments_undo_restores_exactly(unleash: UnleashServer,
                                                    unleash_env: None) -> None:
    flag = unleash.new_flag(("production",))  # development stays off
    a = adapter(unleash)
    dev, prod = a.plan("flag.disable", {"flag": flag}, CTX)
    assert (dev.status, dev.before, dev.after) == ("noop", {"development": False},
                                                   {"development": False})
    assert (prod.status, prod.before, prod.after) == ("observed", {"production": True},
                                                      {"production": False})
    assert prod.target.endswith(f"default/{flag}/production")
    undo = a.apply(prod)
    assert undo == {"prior": {"production": True}}
    assert a.verify(prod).ok
    assert unleash.state(flag) == {"development": False, "production": False}
    assert {c.status for c in a.plan("flag.disable", {"flag": flag}, CTX)} == {"noop"}
    a.apply(a.inverse(prod, undo))
    assert unleash.state(flag) == {"development": False, "production": True}
    a.close()


def test_standalone_enable_needs_environments(unleash: UnleashServer,
                                              unleash_env: None) -> None:
    flag = unleash.new_flag(("development",))
    a = adapter(unleash)
    with pytest.raises(AdapterError, match="needs `environments`"):
        a.plan("flag.enable", {"flag": flag}, CTX)
    [change] = a.plan("flag.enable", {"flag": flag, "environments": ["production"]}, CTX)
    a.apply(change)
    assert unleash.state(flag) == {"development": True, "production": True}
    a.close()


def test_unknown_flag_and_environment_are_not_found(unleash: UnleashServer,
                                                   unleash_env: None) -> None:
    a = adapter(unleash)
    with pytest.raises(NotFound, match="no feature named"):
        a.plan("flag.disable", {"flag": "no-such-flag"}, CTX)
    flag = unleash.new_flag()
    with pytest.raises(NotFound, match="no environment staging"):
        a.plan("flag.disable", {"flag": flag, "environments": ["staging"]}, CTX)
    a.close()


def test_wrong_token_is_auth_error_naming_the_variable(unleash: UnleashServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_UNLEASH_TOKEN", "*:*.wrong-token-value")
    a = adapter(unleash)
    with pytest.raises(AuthError) as err:
        a.plan("flag.disable", {"flag": "anything"}, CTX)
    assert "KS_TEST_UNLEASH_TOKEN" in str(err.value)
    assert "You must log in" in str(err.value)
    assert "wrong-token-value" not in str(err.value)
    a.close()


def test_missing_token_is_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KS_TEST_NO_TOKEN", raising=False)
    a = UnleashAdapter("u", {"url": "http://127.0.0.1:9", "token_env": "KS_TEST_NO_TOKEN"})
    with pytest.raises(AuthError, match="KS_TEST_NO_TOKEN is not set"):
        a.open()


def test_server_down_is_unavailable_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_TEST_UNLEASH_TOKEN", sb.ADMIN_TOKEN)
    url = f"http://127.0.0.1:{free_port()}"
    a = UnleashAdapter("u", {"url": url, "token_env": "KS_TEST_UNLEASH_TOKEN"})
    with pytest.raises(Unavailable) as err:
        a.plan("flag.disable", {"flag": "f"}, CTX)
    a.close()
    assert url in str(err.value) and err.value.retryable
    assert sb.ADMIN_TOKEN not in str(err.value)


def test_requests_name_the_run_in_the_user_agent(unleash: UnleashServer,
                                                 unleash_env: None) -> None:
    """Fails on httpx's default User-Agent. Unleash is real here, so a recording proxy in
    front of it shows what arrived (admin API and the client-API check of verify alike)."""
    import threading
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from importlib.metadata import version

    seen: list[tuple[str, str, str]] = []

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            seen.append((self.command, self.path, self.headers.get("User-Agent", "")))
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "accept-encoding", "connection")}
            req = urllib.request.Request(unleash.url + self.path, data=body,
                                         method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    out, status = resp.read(), resp.status
            except urllib.error.HTTPError as exc:
                out, status = exc.read(), exc.code
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _forward  # noqa: N815 - http.server API

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        flag = unleash.new_flag()
        a = UnleashAdapter("unleash-test", {
            "url": f"http://127.0.0.1:{proxy.server_address[1]}",
            "token_env": "KS_TEST_UNLEASH_TOKEN", "client_token_env": "KS_TEST_UNLEASH_CLIENT"})
        a.run_id = "r-unleash-ua"
        [change] = a.plan("flag.disable", {"backend": "unleash-test", "flag": flag,
                                           "environments": ["production"]}, CTX)
        a.apply(change)
        assert a.verify(change).ok
        a.close()
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert {m for m, _, _ in seen} == {"GET", "POST"}
    assert any(p.startswith("/api/client/") for _, p, _ in seen), "verify's SDK view too"
    assert {ua for _, _, ua in seen} == {f"killswitch/{version('killswitch')} run/r-unleash-ua"}
