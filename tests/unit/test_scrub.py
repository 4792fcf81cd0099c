"""The scrubber: key-shaped strings become fingerprints; ordinary ids stay readable."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import re
import secrets
import string

import pytest

from console.scrub import REDACTED_PREFIX, ScrubFilter, fingerprint_secret, scrub, scrub_text

ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    # Always mixed-case and with a digit, like real keys.
    return "aZ9" + "".join(secrets.choice(alphabet) for _ in range(n - 3))


SECRETS = {
    "openai legacy": "sk-" + rand(48),
    "openai project": "sk-proj-" + rand(40) + "_" + rand(20),
    "openai service account": "sk-svcacct-" + rand(40),
    "openai admin": "sk-admin-" + rand(40),
    "anthropic": "sk-ant-api03-" + rand(80) + "-" + rand(10) + "AA",
    "vault service token": "hvs." + rand(90),
    "vault batch token": "hvb." + rand(120),
    "vault legacy token": "s." + rand(24),
    "openbao token": "sbr." + rand(32),
    "github classic": "ghp_" + rand(36),
    "github fine-grained": "github_pat_11" + rand(20) + "_" + rand(59),
    "slack bot": "xoxb-1234567890-0987654321-" + rand(24),
    "slack user": "xoxp-1234567890-" + rand(24),
    "google api key": "AIza" + rand(35, ALNUM + "_-"),
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
           + rand(43, ALNUM + "_-"),
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_key_shaped_strings_are_replaced_by_their_fingerprint(name: str) -> None:
    value = SECRETS[name]
    out = scrub_text(f"calling provider with {value} now")
    assert value not in out
    assert out == f"calling provider with [REDACTED {fingerprint_secret(value)}] now"


def test_fingerprint_is_keyed_and_stable() -> None:
    value = SECRETS["openai project"]
    fp = fingerprint_secret(value)
    assert re.fullmatch(r"hmac:[0-9a-f]{12}", fp)
    # Not a plain hash: nobody can test guesses against it without the key.
    assert fp[5:] != hashlib.sha256(value.encode()).hexdigest()[:12]
    assert fingerprint_secret(value, b"k1") == "hmac:" + hmac.new(
        b"k1", value.encode(), hashlib.sha256).hexdigest()[:12]
    assert fingerprint_secret(value, b"k1") != fingerprint_secret(value, b"k2")
    # The same key is recognisable across messages, different keys are told apart.
    assert scrub_text(value) == scrub_text(f"{value}")
    assert scrub_text(value) != scrub_text(SECRETS["openai admin"])
    assert scrub_text(value, key=b"k1") == f"[REDACTED {fingerprint_secret(value, b'k1')}]"


def test_weak_password_cannot_be_brute_forced_from_its_fingerprint() -> None:
    """A dictionary attack on a stored fingerprint finds nothing without the key."""
    words = ["123456", "password", "hunter2", "letmein", "qwerty", "dragon"]
    out = scrub_text("db password=hunter2", key=secrets.token_bytes(32))
    assert "hunter2" not in out
    stored = re.search(r"\[REDACTED (\S+)\]", out)
    assert stored is not None
    guesses = {"sha256:" + hashlib.sha256(w.encode()).hexdigest()[:12] for w in words}
    guesses |= {"hmac:" + hashlib.sha256(w.encode()).hexdigest()[:12] for w in words}
    assert stored.group(1) not in guesses


def test_audit_key_derives_the_default_fingerprint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import console.scrub
    from console.scrub import fingerprint_key_from_audit_key

    monkeypatch.setattr(console.scrub, "_installed_key", None)  # no trail opened
    monkeypatch.setenv("KILLSWITCH_AUDIT_KEY", "incident key")
    derived = fingerprint_key_from_audit_key(b"incident key")
    assert derived != b"incident key"
    assert fingerprint_secret("hunter2") == fingerprint_secret("hunter2", derived)
    monkeypatch.delenv("KILLSWITCH_AUDIT_KEY")
    # Without one: a random per-process key, stable within the process.
    assert fingerprint_secret("hunter2") == fingerprint_secret("hunter2")
    assert fingerprint_secret("hunter2") != fingerprint_secret("hunter2", derived)


def test_aws_secret_access_key_after_its_name() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    for text in (f"aws_secret_access_key = {secret}",
                 f'{{"SecretAccessKey": "{secret}"}}',
                 f"AWS_SECRET_ACCESS_KEY={secret}"):
        out = scrub_text(text)
        assert secret not in out, text
        assert fingerprint_secret(secret) in out


def test_pem_private_key_block_is_redacted_whole() -> None:
    body = "\n".join(rand(64, ALNUM + "+/") for _ in range(5))
    pem = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----"
    out = scrub_text(f"before\n{pem}\nafter")
    assert "PRIVATE KEY" not in out
    assert body.splitlines()[2] not in out
    assert out.startswith("before\n[REDACTED hmac:") and out.endswith("]\nafter")


def test_truncated_pem_block_is_still_redacted() -> None:
    out = scrub_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert "MIIEvQ" not in out


def test_bearer_and_basic_credentials_keep_the_scheme() -> None:
    token = rand(32, ALNUM + "-._~")
    assert scrub_text(f"Authorization: Bearer {token}") == (
        f"Authorization: Bearer [REDACTED {fingerprint_secret(token)}]")
    assert "dXNlcjpodW50ZXIy" not in scrub_text("Authorization: Basic dXNlcjpodW50ZXIy")


@pytest.mark.parametrize("text,value", [
    ("password=hunter2 next", "hunter2"),
    ("db_password: 'correct horse'", "correct horse"),
    ('{"api_key": "abc123def"}', "abc123def"),
    ("client_secret=Zm9vYmFy&grant_type=x", "Zm9vYmFy"),
    ("X-API-Key: q1w2e3r4", "q1w2e3r4"),
    ("SECRET=plain", "plain"),
    ("token = t0k3n", "t0k3n"),
])
def test_assignment_values_are_redacted(text: str, value: str) -> None:
    out = scrub_text(text)
    assert value not in out
    assert f"[REDACTED {fingerprint_secret(value)}]" in out


@pytest.mark.parametrize("text", [
    "run 3f2b8c1e-4f1a-4c1e-9a6b-2b1c3d4e5f60 for integration support-bot",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "precondition sha256:9f86d081884c",
    "kv secret/ai/support-bot/openai version 3",
    "/var/lib/killswitch/s.abcdefghijklmnopqrstuvwxyz1234/audit.db",
    "token_env=VAULT_TOKEN token_file=.sandbox/openbao.token max_tokens=4096",
    "run-20240501T101500Z-7f3a op support-bot/revoke/0",
    "sk-support-bot-production-key is the inventory id",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ai/support-bot-AbCdEf",
    "api_key=null password=",
])
def test_ordinary_ids_hashes_and_paths_are_left_alone(text: str) -> None:
    assert scrub_text(text) == text


def test_scrub_recurses_and_redacts_values_of_sensitive_keys() -> None:
    key = SECRETS["vault service token"]
    obj = {
        "password": "hunter2",
        "nested": {"tokens": [f"use {key}", 3, None, True]},
        "secret_ref": "vault:secret/ai/x",
        "max_tokens": 100,
        "accessor": "hmac-sha256:abc",
        "items": ("a", SECRETS["github classic"]),
    }
    out = scrub(obj)
    assert out["password"] == f"[REDACTED {fingerprint_secret('hunter2')}]"
    assert out["nested"]["tokens"] == [f"use [REDACTED {fingerprint_secret(key)}]", 3, None,
                                       True]
    assert out["secret_ref"] == "vault:secret/ai/x"
    assert out["max_tokens"] == 100
    assert out["items"][0] == "a" and SECRETS["github classic"] not in out["items"][1]
    assert obj["password"] == "hunter2", "the input must not be modified"


def test_scrubbing_twice_changes_nothing() -> None:
    text = f"password={SECRETS['openai admin']} and {SECRETS['anthropic']}"
    once = scrub_text(text)
    assert scrub_text(once) == once
    assert len(re.findall(r"\[REDACTED hmac:[0-9a-f]{12}\]", once)) == 2


def test_scrub_filter_scrubs_messages_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter())
    logger = logging.getLogger("killswitch.test.scrub")
    logger.addHandler(handler)
    logger.propagate = False
    key = SECRETS["openai project"]
    try:
        logger.warning("provider rejected %s", key)
        try:
            raise RuntimeError(f"bad key {SECRETS['slack bot']}")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert key not in text and SECRETS["slack bot"] not in text
    assert f"provider rejected [REDACTED {fingerprint_secret(key)}]" in text
    assert "RuntimeError: bad key [REDACTED hmac:" in text


def test_json_structure_after_sensitive_key_names_is_kept() -> None:
    """`"credentials": [` in JSON output is a list opening, not a secret value."""
    import json

    text = json.dumps({"credentials": [{"backend": "vault", "path": "a/b"}],
                       "token": {"env": "VAULT_TOKEN"}}, indent=2)
    assert json.loads(scrub_text(text)) == json.loads(text)


def test_aws_access_key_ids_are_references_and_kept() -> None:
    """An access key id names the key to disable (AWS logs it); the secret key is redacted."""
    text = ("disable AKIAIOSFODNN7EXAMPLE; aws_secret_access_key = "
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    out = scrub_text(text)
    assert "AKIAIOSFODNN7EXAMPLE" in out
    assert "wJalrXUtnFEMI" not in out


@pytest.mark.parametrize("text", ["private_key=Zx9vQ2LmP4rT7wK1bN8c",
                                  "private-key: Zx9vQ2LmP4rT7wK1bN8c",
                                  "PRIVATE_KEY=Zx9vQ2LmP4rT7wK1bN8c",
                                  "PrivateKey = Zx9vQ2LmP4rT7wK1bN8c"])
def test_a_value_after_a_private_key_name_is_scrubbed(text: str) -> None:
    """The fast path once let ``private_key=...`` through: only "private key" (with a
    space) was a trigger word, so no rule ever looked at the text."""
    out = scrub_text(text)
    assert "Zx9vQ2LmP4rT7wK1bN8c" not in out and REDACTED_PREFIX in out
