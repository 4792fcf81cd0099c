"""The adapters' own redaction (first line of defence before any sink)."""

from __future__ import annotations

import json

from adapters.preserve_common import REDACTED, RedactingStream, redact_json, safe_name

KEY = "sk-proj-" + "Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n" \
      "-----END PRIVATE KEY-----\n"


def stream(text: str, size: int) -> str:
    raw = text.encode()
    chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
    return b"".join(RedactingStream(chunks)).decode()


def test_keys_split_across_chunks_and_multiline_pem_are_redacted() -> None:
    text = (json.dumps({"content": f"the key is {KEY}"}) + "\n" + "before\n" + PEM +
            "after the key\n" + json.dumps({"pem": PEM}) + "\n")
    for size in (1, 7, 64, 4096):
        out = stream(text, size)
        assert KEY not in out and "MIIEvQIBADAN" not in out and "AQEFAASCBKcw" not in out
        assert "before\n" in out and "after the key\n" in out
        assert out.count(REDACTED) == 3


def test_unterminated_pem_is_dropped_to_the_end() -> None:
    out = stream("ok\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBCANARYmaterial\n", 5)
    assert out.startswith("ok\n") and "MHcCAQEE" not in out


def test_json_secret_names_and_key_shapes() -> None:
    data = {"SecretString": "hunter2", "privateKeyData": "QUJD", "amount": {"value": 1.5},
            "Tags": {"owner": "team"}, "note": f"Bearer {KEY}", "NextToken": "abc",
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "input_tokens": 12,
            "nested": [{"password": "p", "token": None}]}
    out = redact_json(data)
    assert out["SecretString"] == out["privateKeyData"] == REDACTED
    assert out["amount"] == {"value": 1.5} and out["input_tokens"] == 12
    assert out["Tags"] == {"owner": "team"} and out["accessKeyId"] == "AKIAIOSFODNN7EXAMPLE"
    assert KEY not in json.dumps(out) and out["NextToken"] == REDACTED
    assert out["nested"] == [{"password": REDACTED, "token": None}]


def test_item_names_are_made_safe() -> None:
    assert safe_name("cloudtrail-AKIA…X-us-east-1") == "cloudtrail-AKIA_X-us-east-1"
    assert safe_name("../.hidden") == "hidden"
