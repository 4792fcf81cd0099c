"""The sandbox's moto server, holding IAM users' own access keys to AWS's rules.

moto 5.2.5 authenticates no request unless IAM authentication is switched on for the whole
server (``INITIAL_NO_AUTH_ACTION_COUNT``), and even then it accepts a request signed with an
``Inactive`` access key (``moto/iam/access_control.py``: ``IAMUserAccessKey`` matches the key
id and never looks at its status). Neither tells a dead key from a live one, so neither can
prove a rotation (the new key works, the old one is dead).

This module runs moto with one rule added, from AWS's own documentation, and only for requests
signed with an access key that belongs to an IAM user in moto (a key moto issued through
``CreateAccessKey``):

* ``Inactive`` means the key cannot be used: ``UpdateAccessKey`` member ``Status``, "Active
  means that the key can be used for programmatic calls to Amazon Web Services, while Inactive
  means that the key cannot be used" (botocore ``iam`` service model; API reference
  https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateAccessKey.html). Such a
  request is answered ``403 InvalidClientTokenId`` ("The security token included in the
  request is invalid"), as for an unknown key.
* An Active key's SigV4 signature is checked with its secret (moto's own
  ``IAMRequest.check_signature``: ``403 SignatureDoesNotMatch`` on a wrong secret), and the
  action against the user's policies (moto's ``check_action_permitted``; STS
  ``GetCallerIdentity`` is always allowed: "No permissions are required to perform this
  operation", botocore ``sts`` service model).

Every other request (the console's and the seeder's own credentials, which are not IAM users'
keys) is handled exactly as moto does without IAM authentication, so nothing else changes.

Run as ``python -m console.sandbox.motoauth -H 127.0.0.1 -p PORT`` (moto_server's arguments);
:func:`install` applies the rule to a moto running in this process (tests).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["install", "main", "signing_key_id"]

_INSTALLED = False


def signing_key_id(headers: Any) -> str:
    """The access key id of a SigV4 ``Authorization`` header (``Credential=AKID/...``), or
    ``""`` for an unsigned request."""
    auth = str((headers or {}).get("Authorization") or "")
    if "Credential=" not in auth:
        return ""
    return auth.partition("Credential=")[2].partition("/")[0].strip()


def _user_key(key_id: str) -> Any:
    """moto's ``AccessKey`` of an IAM user with this id, in any account, or None."""
    from moto.iam.models import iam_backends

    for account in list(iam_backends.keys()):
        for backend in list(iam_backends[account].values()):
            for user in list(backend.users.values()):
                for key in user.access_keys:
                    if key.access_key_id == key_id:
                        return key
    return None


def install() -> None:
    """Apply the rule to moto in this process (idempotent)."""
    global _INSTALLED  # noqa: PLW0603 - one patch per process
    if _INSTALLED:
        return
    from urllib.parse import urlparse

    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import InvalidClientTokenIdError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        key = _user_key(signing_key_id(self.headers)) if self.headers else None
        if key is None:
            original(self, iam_request_cls, resource)
            return
        if key.status != "Active":
            raise InvalidClientTokenIdError()
        parsed = urlparse(self.uri)
        path = self.raw_path + ("?" + parsed.query if parsed.query else "")
        request = iam_request_cls(account_id=self.current_account, method=self.method,
                                  path=path, data=self.data, body=self.raw_body,
                                  headers=self.headers, action=self._get_action())
        request.check_signature()
        request.check_action_permitted(resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate  # type: ignore[method-assign]
    _INSTALLED = True


def main(argv: list[str] | None = None) -> None:
    """moto_server with the rule installed (same arguments)."""
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
