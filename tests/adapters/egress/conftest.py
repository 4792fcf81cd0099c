"""Real egress backends for the egress adapter tests, one per session.

* moto (``ThreadedMotoServer`` on 127.0.0.1, free port) for security groups, plus a small
  HTTP proxy in front of it that answers injected throttling errors on demand;
* two network namespaces joined by a veth pair (test-backends.md section 5) with a Python
  ``http.server`` in the server namespace, for nftables; and three (client, router with
  forwarding on, server) for traffic the host routes rather than sends;
* a private Squid on a free loopback port with its config and denylist in a tmp folder.

Missing system components fail under ``CI=true`` and skip elsewhere (never silently in CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import adapters.base

ENTRY_POINTS = {
    "aws-sg": "adapters.aws_sg:SecurityGroupEgressAdapter",
    "nftables": "adapters.nftables:NftablesAdapter",
    "squid": "adapters.squid:SquidDenylistAdapter",
}


def need(binary: str, package: str) -> str:
    """Path of ``binary``; fails under CI=true, skips elsewhere when it is missing."""
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/sbin/{binary}") if os.access(p, os.X_OK)), None)
    if path:
        return path
    msg = f"`{binary}` not found: apt-get update && apt-get install -y {package}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def egress_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the egress adapters loadable by name even before pyproject registers them."""
    real = adapters.base.entry_points

    def patched(**kw: str) -> list[EntryPoint]:
        eps = list(real(**kw))
        if kw.get("group") == adapters.base.ENTRY_POINT_GROUP:
            have = {ep.name for ep in eps}
            eps += [EntryPoint(n, v, adapters.base.ENTRY_POINT_GROUP)
                    for n, v in ENTRY_POINTS.items() if n not in have]
        return eps

    monkeypatch.setattr(adapters.base, "entry_points", patched)


# -- moto + fault proxy ------------------------------------------------------------------------
@dataclass
class Moto:
    """moto behind a fault-injecting proxy; ``url`` goes through the proxy."""

    moto_url: str
    url: str
    faults: list[tuple[int, str]] = field(default_factory=list)
    """(status, AWS error code) answered to the next requests, in order."""
    seen: list[str] = field(default_factory=list)


def _fault_proxy(moto: Moto) -> ThreadingHTTPServer:
    import urllib.error
    import urllib.request

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            action = next((p.split("=", 1)[1] for p in body.decode().split("&")
                           if p.startswith("Action=")), "?")
            moto.seen.append(action)
            if moto.faults:
                status, code = moto.faults.pop(0)
                out = (f"<Response><Errors><Error><Code>{code}</Code><Message>Rate exceeded"
                       "</Message></Error></Errors><RequestID>x</RequestID></Response>").encode()
                self.send_response(status)
                self.send_header("Retry-After", "0")
            else:
                req = urllib.request.Request(moto.moto_url + self.path, data=body,
                                             method="POST", headers=dict(self.headers))
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        out, status = resp.read(), resp.status
                except urllib.error.HTTPError as exc:
                    out, status = exc.read(), exc.code
                self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    """One in-process moto server for the session, fronted by the fault proxy."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = Moto(f"http://{host}:{port}", "")
    proxy = _fault_proxy(moto)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    moto.url = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        yield moto
    finally:
        proxy.shutdown()
        proxy.server_close()
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Test credentials under the env var names the backend options point at."""
    monkeypatch.setenv("KS_T_AWS_KEY", "testing")
    monkeypatch.setenv("KS_T_AWS_SECRET", "testing-secret-value-0123456789")
    return {"region": "us-east-1", "access_key_env": "KS_T_AWS_KEY",
            "secret_key_env": "KS_T_AWS_SECRET"}


# -- network namespaces --------------------------------------------------------------------
@dataclass
class Netns:
    """Two namespaces: ``srv`` (10.200.0.1, http.server on ``port``) and ``cli`` (10.200.0.2)."""

    srv: str
    cli: str
    port: int

    def connects(self, host: str = "10.200.0.1", timeout: float = 1.0) -> bool:
        """Whether a TCP connection from the client namespace succeeds."""
        code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], "
                "int(sys.argv[2])), timeout=float(sys.argv[3])).close()\nexcept OSError:\n"
                " sys.exit(1)\n")
        rc = subprocess.run(["ip", "netns", "exec", self.cli, sys.executable, "-c", code, host,
                             str(self.port), str(timeout)], capture_output=True, check=False)
        return rc.returncode == 0

    def nft(self, *args: str) -> str:
        """``nft`` output inside the client namespace."""
        return subprocess.run(["ip", "netns", "exec", self.cli, "nft", *args],
                              capture_output=True, text=True, check=True).stdout


def _sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


@pytest.fixture(scope="session")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Netns]:
    """The namespace pair, created once per session and always removed."""
    if os.geteuid() != 0:
        msg = "nftables tests need root (network namespaces)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    need("nft", "nftables")
    need("ip", "iproute2")
    tag = uuid.uuid4().hex[:6]
    srv, cli = f"ks-srv-{tag}", f"ks-cli-{tag}"
    v0, v1 = f"ks{tag}a", f"ks{tag}b"
    www = tmp_path_factory.mktemp("www")
    (www / "index.html").write_text("hello-from-srv\n")
    server: subprocess.Popen[bytes] | None = None
    host_before = subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                 text=True, check=True).stdout
    try:
        _sh("ip", "netns", "add", srv)
        _sh("ip", "netns", "add", cli)
        _sh("ip", "link", "add", v0, "type", "veth", "peer", "name", v1)
        _sh("ip", "link", "set", v0, "netns", srv)
        _sh("ip", "link", "set", v1, "netns", cli)
        _sh("ip", "-n", srv, "addr", "add", "10.200.0.1/24", "dev", v0)
        _sh("ip", "-n", cli, "addr", "add", "10.200.0.2/24", "dev", v1)
        for ns, dev in ((srv, v0), (cli, v1)):
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        port = 8080
        server = subprocess.Popen(
            ["ip", "netns", "exec", srv, sys.executable, "-m", "http.server", str(port),
             "--bind", "10.200.0.1", "--directory", str(www)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ns = Netns(srv, cli, port)
        deadline = time.monotonic() + 10
        while not ns.connects(timeout=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError("http.server in the server namespace did not answer")
            time.sleep(0.05)
        yield ns
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        for name in (cli, srv):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", v0], capture_output=True, check=False)
    host_after = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                                check=True).stdout
    assert host_after == host_before, "the host ruleset must stay untouched"


@dataclass
class Routed:
    """Three namespaces: ``cli`` (10.201.0.2) routed through ``rtr`` (10.201.0.1 /
    10.202.0.1, forwarding on) to ``srv`` (10.202.0.2, http.server on ``port``)."""

    cli: str
    rtr: str
    srv: str
    port: int
    server_ip: str = "10.202.0.2"

    def connects(self, ns: str, timeout: float = 1.0) -> bool:
        """Whether a TCP connection from namespace ``ns`` to the server succeeds."""
        code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], "
                "int(sys.argv[2])), timeout=float(sys.argv[3])).close()\nexcept OSError:\n"
                " sys.exit(1)\n")
        rc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code,
                             self.server_ip, str(self.port), str(timeout)],
                            capture_output=True, check=False)
        return rc.returncode == 0

    def nft(self, *args: str) -> str:
        """``nft`` output inside the router namespace."""
        return subprocess.run(["ip", "netns", "exec", self.rtr, "nft", *args],
                              capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="session")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    """A client namespace whose traffic a router namespace forwards (test-backends.md,
    "nftables and forwarded traffic"); created once per session and always removed."""
    if os.geteuid() != 0:
        msg = "nftables tests need root (network namespaces)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    need("nft", "nftables")
    need("ip", "iproute2")
    tag = uuid.uuid4().hex[:6]
    cli, rtr, srv = f"ks-rcli-{tag}", f"ks-rtr-{tag}", f"ks-rsrv-{tag}"
    c0, c1, s0, s1 = f"ks{tag}c", f"ks{tag}d", f"ks{tag}s", f"ks{tag}t"
    www = tmp_path_factory.mktemp("www-routed")
    (www / "index.html").write_text("hello-through-router\n")
    server: subprocess.Popen[bytes] | None = None
    try:
        for ns in (cli, rtr, srv):
            _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", c0, "type", "veth", "peer", "name", c1)
        _sh("ip", "link", "add", s0, "type", "veth", "peer", "name", s1)
        _sh("ip", "link", "set", c0, "netns", cli)
        _sh("ip", "link", "set", c1, "netns", rtr)
        _sh("ip", "link", "set", s0, "netns", rtr)
        _sh("ip", "link", "set", s1, "netns", srv)
        for ns, dev, addr in ((cli, c0, "10.201.0.2/24"), (rtr, c1, "10.201.0.1/24"),
                              (rtr, s0, "10.202.0.1/24"), (srv, s1, "10.202.0.2/24")):
            _sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        for ns in (cli, rtr, srv):
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", cli, "route", "add", "default", "via", "10.201.0.1")
        _sh("ip", "-n", srv, "route", "add", "default", "via", "10.202.0.1")
        _sh("ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        port = 8080
        server = subprocess.Popen(
            ["ip", "netns", "exec", srv, sys.executable, "-m", "http.server", str(port),
             "--bind", "10.202.0.2", "--directory", str(www)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = Routed(cli, rtr, srv, port)
        deadline = time.monotonic() + 10
        while not (r.connects(cli, 0.5) and r.connects(rtr, 0.5)):
            if time.monotonic() > deadline:
                raise RuntimeError("the server namespace did not answer through the router")
            time.sleep(0.05)
        yield r
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        for name in (cli, rtr, srv):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


# -- squid ---------------------------------------------------------------------------------
@dataclass
class Squid:
    """A private Squid on loopback; ``dest_port`` is a local http.server (``localhost``)."""

    dir: Path
    conf: Path
    denylist: Path
    port: int
    dest_port: int

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reload_cmd(self) -> list[str]:
        return ["squid", "-f", str(self.conf), "-k", "reconfigure"]

    def status(self, url: str) -> int | None:
        """Status of a GET through the proxy (None when nothing answered)."""
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.proxy}))
        try:
            with opener.open(url, timeout=3) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            return None

    def wait_status(self, url: str, want: int, limit: float = 8.0) -> int | None:
        """Poll until the proxy answers ``want`` (a reconfigure takes 1-2 s)."""
        deadline = time.monotonic() + limit
        while True:
            got = self.status(url)
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.2)


SQUID_CONF = """http_port 127.0.0.1:{port}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log {dir}/access.log
cache deny all
acl blocked dstdomain "{dir}/deny.txt"
acl localnet src 127.0.0.0/8
http_access deny blocked
http_access allow localnet
http_access deny all
shutdown_lifetime 1 seconds
"""


@pytest.fixture(scope="session")
def squid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Squid]:
    """Squid from Debian on a free loopback port, stopped at the end of the session."""
    binary = need("squid", "squid")
    root = tmp_path_factory.mktemp("squid")
    www = root / "www"
    www.mkdir()
    (www / "index.html").write_text("hello-through-proxy\n")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(www), **kw)  # type: ignore[arg-type]

        def log_message(self, *_: object) -> None:
            pass

    dest = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=dest.serve_forever, daemon=True).start()
    port = free_port()
    deny = root / "deny.txt"
    deny.write_text("# managed by tests\nblocked.example\n")
    conf = root / "squid.conf"
    conf.write_text(SQUID_CONF.format(port=port, dir=root))
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "proxy:proxy", str(root)], check=True)
        os.chmod(root, 0o755)
        for parent in root.parents:  # squid (user proxy) must reach its folder
            if str(parent) in ("/", "/tmp"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o005)
    proc = subprocess.Popen([binary, "-f", str(conf), "-N", "-d1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sq = Squid(root, conf, deny, port, dest.server_address[1])
    try:
        if sq.wait_status(f"http://localhost:{sq.dest_port}/", 200, 15) != 200:
            log = (root / "cache.log").read_text() if (root / "cache.log").exists() else ""
            raise RuntimeError(f"squid did not answer through the proxy:\n{log[-2000:]}")
        yield sq
    finally:
        subprocess.run([binary, "-f", str(conf), "-k", "shutdown"], capture_output=True,
                       check=False)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        dest.shutdown()
        dest.server_close()
