"""The moto server of the sandbox (AWS): start detached, seed from the inventory, stop.

Runs ``moto_server -H 127.0.0.1 -p H`` on a private loopback port H (recorded in
``<dir>/moto.port``) in its own session, logging to ``<dir>/moto.log``, pid file
``<dir>/moto.pid`` (see :mod:`console.sandbox.process`), behind the sandbox's fault proxy
(:mod:`console.sandbox.faultproxy`) on ``[sandbox] moto_port`` (default 5055): the address
the config names. The proxy forwards every request unchanged and injects the faults of
``killswitch sandbox fault``. Healthy when ``GET /moto-api/`` answers 200. Only started
when a backend has an ``aws-*`` type (:func:`wanted`).

Seeding (every reference on an ``aws-*`` backend whose ``endpoint_url`` is the sandbox's):

* ``aws-secrets``: the secret, with a fake value ``{"api_key": "sk-sandbox-<hex>"}``;
* ``aws-ssm``: a SecureString parameter with the same kind of value;
* ``aws-iam``: the user and one access key. AWS chooses key ids, so the ids are recorded
  in ``<dir>/aws-seed.json`` (``{"iam": {"<user>": ["AKIA..."]}}``); references name the
  user, and the adapter acts on every key of that user. Every store copy of an integration
  that names the user holds that key (:mod:`console.sandbox.awskeys`), so proof of death and
  ``rotate`` test the real key at STS.

moto runs with AWS's rule for IAM users' own keys (:mod:`console.sandbox.motoauth`): a
request signed with a key moto issued must carry its secret and the key must be Active;
every other request (the console's own credentials) is served as moto always does.

moto keeps everything in memory: a restart starts empty and is reseeded. The console's
credentials for the sandbox are written to ``<dir>/aws-credentials`` (mode 0600), a shared
credentials file with profile ``killswitch-sandbox``; moto accepts any key.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from console.errors import ConfigError, ConsoleError
from console.sandbox import ServiceStatus
from console.sandbox.awskeys import pair_text, users_by_integration, write_vault_copies
from console.sandbox.faultproxy import (
    backend_port,
    free_port,
    start_proxy,
    status_line,
    stop_proxy,
    write_backend_port,
)
from console.sandbox.process import (
    http_ok,
    ours,
    ports_taken,
    spawn,
    stop_process,
    terminate,
    write_secret_file,
)
from console.sandbox.seedkeys import store_value

__all__ = ["PROFILE", "aws_refs", "binary_path", "seed", "start", "status", "stop", "wanted"]

NAME = "moto"
PROFILE = "killswitch-sandbox"
"""Profile name in ``<dir>/aws-credentials``."""
HEALTH_TIMEOUT = 20.0
_FILES = ("aws-credentials", "aws-seed.json", "moto.port")


def _settings(config: Any) -> tuple[Path, int]:
    sb = getattr(config, "sandbox", None)
    raw_dir = getattr(sb, "dir", None) or ".sandbox"
    port = int(getattr(sb, "moto_port", None) or 5055)
    return Path(config.resolve(raw_dir)), port


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def wanted(config: Any) -> bool:
    """True when any backend has an ``aws-*`` type."""
    return any(str(b.type).startswith("aws-") for b in config.backends.values())


def binary_path() -> str:
    """``moto_server`` next to python, else on PATH.

    Raises:
        ConfigError: Not installed.
    """
    for cand in (str(Path(sys.executable).with_name("moto_server")), shutil.which("moto_server")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise ConfigError("the moto server `moto_server` was not found",
                      hint="pip install 'moto[server]' (the sandbox extra installs it)")


def _healthy(port: int) -> bool:
    """moto answers on its private ``port``."""
    return http_ok(f"{_url(port)}/moto-api/")


def aws_refs(config: Any, url: str) -> list[tuple[str, dict[str, Any]]]:
    """``(backend type, ref fields)`` of credential refs on aws-* backends served at ``url``.

    Each ref's fields carry ``_integration`` (the integration id) for the seeder.
    """
    wanted_urls = {url.rstrip("/"), url.replace("127.0.0.1", "localhost").rstrip("/")}
    out = []
    for integ in config.integrations:
        for ref in [*integ.credentials, *integ.egress]:
            backend = config.backends.get(ref.backend)
            if backend is None or not str(backend.type).startswith("aws-"):
                continue
            if str(backend.options.get("endpoint_url") or "").rstrip("/") in wanted_urls:
                out.append((str(backend.type), {**ref.fields(), "_integration": integ.id}))
    return out


def seed(config: Any, url: str, state_dir: Path) -> list[str]:
    """Create every missing secret, parameter and IAM user/key; returns what was created."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    kw = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "sandbox",
          "aws_secret_access_key": "sandbox",
          "config": Config(retries={"total_max_attempts": 1})}
    seed_file = state_dir / "aws-seed.json"
    try:
        recorded = json.loads(seed_file.read_text())
    except (OSError, ValueError):
        recorded = {}
    iam_keys: dict[str, list[str]] = dict(recorded.get("iam") or {})
    created: list[str] = []
    refs = sorted(aws_refs(config, url), key=lambda kr: kr[0] != "aws-iam")  # keys first
    fresh: dict[str, str] = {}  # user -> the copy text of the key created now
    users = users_by_integration(refs)

    def value(integration: str) -> str:
        pair = fresh.get(users.get(integration, ""))
        return pair if pair is not None else store_value(config, integration)

    try:
        sm, ssm, iam = (boto3.client(s, **kw) for s in ("secretsmanager", "ssm", "iam"))
        for kind, ref in refs:
            if kind == "aws-secrets" and ref.get("secret_id"):
                name = str(ref["secret_id"])
                try:
                    sm.describe_secret(SecretId=name)
                except ClientError:
                    sm.create_secret(Name=name, SecretString=value(ref["_integration"]))
                    created.append(f"secret {name}")
            elif kind == "aws-ssm" and ref.get("name"):
                name = str(ref["name"])
                try:
                    ssm.get_parameter(Name=name)
                except ClientError:
                    ssm.put_parameter(Name=name, Value=value(ref["_integration"]),
                                      Type="SecureString")
                    created.append(f"parameter {name}")
            elif kind == "aws-sg" and ref.get("group_name"):
                created += _seed_group(boto3.client("ec2", **kw), ref)
            elif kind == "aws-iam" and ref.get("user"):
                user = str(ref["user"])
                try:
                    iam.get_user(UserName=user)
                except ClientError:
                    iam.create_user(UserName=user)
                keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
                if not keys:  # its secret goes into the integration's store copies
                    made = iam.create_access_key(UserName=user)["AccessKey"]
                    fresh[user] = pair_text(made["AccessKeyId"], made["SecretAccessKey"])
                    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
                    created.append(f"access key of {user}")
                iam_keys[user] = sorted(k["AccessKeyId"] for k in keys)
        created += write_vault_copies(config, {i: fresh[u] for i, u in users.items()
                                               if u in fresh})
    except (ClientError, BotoCoreError) as exc:
        raise ConsoleError(f"seeding the moto sandbox failed: {exc}", where=url) from exc
    seed_file.write_text(json.dumps({"iam": iam_keys}, indent=2, sort_keys=True) + "\n")
    return created


def _seed_group(ec2: Any, ref: dict[str, Any]) -> list[str]:
    """A security group whose egress is HTTPS to each destination CIDR (no allow-all)."""
    name = str(ref["group_name"])
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if found:
        return []
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    gid = ec2.create_security_group(GroupName=name, VpcId=vpc["VpcId"],
                                    Description="Killswitch sandbox egress")["GroupId"]
    ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    cidrs = [str(d) for d in ref.get("destinations") or [] if "/" in str(d)]
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": c} for c in [*cidrs, "172.16.0.0/12"]]}])
    return [f"security group {name}"]


def _write_credentials(state_dir: Path) -> Path:
    path = state_dir / "aws-credentials"
    write_secret_file(path, f"[{PROFILE}]\naws_access_key_id = sandbox\n"
                            "aws_secret_access_key = sandbox")
    return path


def status(config: Any) -> ServiceStatus:
    """The moto service as it is now (the server and its fault proxy)."""
    state_dir, port = _settings(config)
    pid = ours(state_dir, NAME)
    if pid is None:
        return ServiceStatus(NAME, _url(port), None, False,
                             "not running" if wanted(config) else "no aws-* backend")
    hidden = backend_port(state_dir, NAME)
    if hidden is None or not _healthy(hidden):
        return ServiceStatus(NAME, _url(port), pid, False,
                             f"process {pid} is up but /moto-api/ does not answer")
    proxy_up, line = status_line(state_dir, NAME)
    return ServiceStatus(NAME, _url(port), pid, proxy_up, f"serving {line}" if proxy_up
                         else f"moto serves on 127.0.0.1:{hidden}, but its {line}")


def start(config: Any) -> ServiceStatus:
    """Start moto unless it runs (or no backend needs it), then seed missing items.

    Raises:
        ConfigError: The port is taken by something else, or moto is not installed.
        ConsoleError: The server did not become healthy in time (names the log).
    """
    state_dir, port = _settings(config)
    url = _url(port)
    if not wanted(config):
        return ServiceStatus(NAME, url, None, False, "no aws-* backend; not started")
    pid = ours(state_dir, NAME)
    hidden = backend_port(state_dir, NAME)
    if pid is not None and hidden is not None and _healthy(hidden):
        start_proxy(state_dir, NAME, port, hidden, "aws")
        _write_credentials(state_dir)
        created = seed(config, url, state_dir)
        return ServiceStatus(NAME, url, pid, True,
                             f"already running; seeded {', '.join(created) or 'nothing new'}")
    if pid is not None:
        terminate(pid)
    stop_proxy(state_dir, NAME)
    if ports_taken(port):
        raise ConfigError(f"cannot start the moto sandbox: port {port} on 127.0.0.1 is "
                          "already in use",
                          hint="stop whatever listens there, or set [sandbox] moto_port")
    hidden = free_port()
    binary_path()  # moto's server is installed (the same package runs below)
    argv = [sys.executable, "-m", "console.sandbox.motoauth", "-H", "127.0.0.1", "-p",
            str(hidden)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    pid = spawn(state_dir, NAME, argv, env, lambda: _healthy(hidden), HEALTH_TIMEOUT,
                what=f"moto at http://127.0.0.1:{hidden}/moto-api/")
    write_backend_port(state_dir, NAME, hidden)
    try:
        start_proxy(state_dir, NAME, port, hidden, "aws")
    except Exception:
        stop_process(state_dir, NAME, _FILES)
        raise
    creds = _write_credentials(state_dir)
    (state_dir / "aws-seed.json").unlink(missing_ok=True)  # a fresh moto starts empty
    created = seed(config, url, state_dir)
    return ServiceStatus(NAME, url, pid, True,
                         f"started; seeded {', '.join(created) or 'nothing'}; console "
                         f"credentials in {creds} (profile {PROFILE})")


def stop(config: Any) -> ServiceStatus:
    """Stop moto and its fault proxy if our pid files name live processes we started."""
    state_dir, port = _settings(config)
    proxy = stop_proxy(state_dir, NAME)
    detail = stop_process(state_dir, NAME, _FILES)
    return ServiceStatus(NAME, _url(port), None, False, f"{detail}; fault proxy: {proxy}")
