"""Vault reveal and scan: key values are read in memory for proof of death and copy scans."""

from __future__ import annotations

import hvac

from adapters.secretvalue import pick_value
from adapters.vault import VaultAdapter
from tests.servers import BaoServer


def test_reveal_and_scan(bao: BaoServer, root: hvac.Client, kv_mount: str,
                         vault_env: BaoServer) -> None:
    kv = root.secrets.kv.v2
    kv.create_or_update_secret(path="ai/bot/key", secret={"api_key": "sk-canary-1"},
                               mount_point=kv_mount)
    kv.create_or_update_secret(path="ai/other/deep/key", secret={"token": "t-2", "n": 1},
                               mount_point=kv_mount)
    adapter = VaultAdapter("v", {"url": bao.url, "token_env": "KS_TEST_VAULT_TOKEN"})
    ref = {"backend": "v", "kind": "kv", "mount": kv_mount, "path": "ai/bot/key"}
    assert adapter.reveal(ref) == "sk-canary-1"
    found = {(r["mount"], r["path"]): v for r, v in adapter.scan() if r["mount"] == kv_mount}
    assert found == {(kv_mount, "ai/bot/key"): "sk-canary-1",
                     (kv_mount, "ai/other/deep/key"): "t-2"}
    kv.delete_latest_version_of_secret(path="ai/bot/key", mount_point=kv_mount)
    assert adapter.reveal(ref) is None  # a soft-deleted key cannot be read by anyone
    adapter.close()


def test_pick_value_rules() -> None:
    assert pick_value({"api_key": "a", "org": "o"}) == "a"
    assert pick_value({"only": "x", "n": 3}) == "x"
    assert pick_value('{"token": "t", "user": "u"}') == "t"
    assert pick_value("sk-bare") == "sk-bare"
    assert pick_value({"a": "1", "b": "2"}) is None
    assert pick_value({"a": "1", "b": "2"}, field="b") == "2"
