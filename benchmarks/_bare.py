"""The bare boto3 baseline of the peers benchmark: revoke N integrations with no verify.

Per integration: ``ListAccessKeys`` (to learn the key id), ``UpdateAccessKey`` to Inactive for
each key, and ``DeleteSecret`` with a 7-day recovery window (what Killswitch's
``schedule-deletion`` does): 3 requests, 2 of them writes. Sequential with ``--threads 1``,
else a ``ThreadPoolExecutor`` of that many threads sharing one client per service. botocore
retries are off. Run as its own process (``benchmarks/peers.py`` does), so its wall time
includes interpreter start and importing boto3, as the other tools' does.

    python benchmarks/_bare.py --endpoint http://127.0.0.1:PORT --n 50 [--threads 8]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

USER_PREFIX = "ks-bench-user-"
SECRET_PREFIX = "ks-bench/secret-"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


def user_name(i: int) -> str:
    """The IAM user of integration ``i``."""
    return f"{USER_PREFIX}{i:05d}"


def secret_name(i: int) -> str:
    """The Secrets Manager secret of integration ``i``."""
    return f"{SECRET_PREFIX}{i:05d}"


def clients(endpoint: str, pool: int = 10) -> tuple[Any, Any]:
    """IAM and Secrets Manager clients on ``endpoint``: fake credentials, retries off."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=max(pool, 10))
    kw: dict[str, Any] = dict(endpoint_url=endpoint, region_name=REGION, config=config,
                              **CREDS)
    return boto3.client("iam", **kw), boto3.client("secretsmanager", **kw)


def revoke(iam: Any, sm: Any, i: int) -> None:
    """Disables integration ``i``'s access keys and schedules its secret's deletion."""
    user = user_name(i)
    for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
        iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    sm.delete_secret(SecretId=secret_name(i), RecoveryWindowInDays=7)


def main() -> None:
    """Parses the arguments and revokes integrations 0..n-1."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    iam, sm = clients(args.endpoint, args.threads)
    if args.threads <= 1:
        for i in range(args.n):
            revoke(iam, sm, i)
        return
    with ThreadPoolExecutor(args.threads) as pool:
        for f in [pool.submit(revoke, iam, sm, i) for i in range(args.n)]:
            f.result()  # re-raises the first failure


if __name__ == "__main__":
    main()
