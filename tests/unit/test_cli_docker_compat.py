"""Byte-for-byte comparison with the real docker CLI against one stub Engine API server.

The stub listens only on a unix socket inside a fresh temp dir. Both CLIs run against it; we
compare stdout, stderr, exit status and the requests they sent (method, path, query, body).
Skipped when `docker` is not on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shoal.cli.main import cli

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="docker CLI not on PATH")


def _net(name: str, net_id: str, **extra: Any) -> dict[str, Any]:
    base = {
        "Name": name, "Id": net_id, "Created": "2024-03-04T05:06:07.123456789Z", "Scope": "local",
        "Driver": "bridge", "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.20.0.0/16", "Gateway": "172.20.0.1"}]},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {},
    }
    base.update(extra)
    return base


NETWORKS = [
    _net("net10", "aa" * 32, Created="2024-01-02T03:04:05.1+02:00", EnableIPv6=True, Internal=True,
         Labels={"tier": "db"}, Options=None, Containers=None,
         IPAM={"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.1.0.0/16", "IPRange": "10.1.2.0/24",
                                                               "Gateway": "10.1.0.1", "AuxiliaryAddresses": {"h": "10.1.0.5"}}]}),
    _net("bridge", "7d86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99",
         Options={"com.docker.network.bridge.default_bridge": "true", "a<b": "x&y"},
         Status={"IPAM": {"Subnets": {}}}),
    _net("net9", "bb" * 32, Driver="null", Created="0001-01-01T00:00:00Z", IPAM={"Driver": "default", "Options": None, "Config": []}),
    _net("a01", "c1" * 32, Labels=None),
    _net("a1", "c2" * 32, Scope="swarm", Driver="overlay"),
    _net("A", "c3" * 32, Containers={"c" * 64: {"Name": "web", "EndpointID": "e" * 64, "MacAddress": "02:42:ac:14:00:02",
                                                 "IPv4Address": "172.20.0.2/16", "IPv6Address": ""}}),
    _net("_x", "c4" * 32),
    _net("9", "c5" * 32),
    _net("网络", "c6" * 32),
]
NOT_FOUND = {"message": "network {} not found"}


@dataclass
class StubState:
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def address_string(self) -> str:
        return "unix"

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Api-Version", "1.45")
        self.send_header("Content-Type", "application/json" if body is not None else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _record(self) -> tuple[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = re.sub(r"^/v[0-9.]+/", "/", self.path)
        if path != "/_ping":
            with self.server.state.lock:
                self.server.state.requests.append((self.command, path, body))
        return path.split("?", 1)[0], body

    def do_HEAD(self) -> None:  # noqa: N802
        self._record()
        self._send(200, None)

    def do_GET(self) -> None:  # noqa: N802
        path, _ = self._record()
        if path == "/networks":
            return self._send(200, NETWORKS)
        ref = path.removeprefix("/networks/")
        for net in NETWORKS:
            if ref in (net["Name"], net["Id"]):
                return self._send(200, net)
        self._send(404, {"message": f"network {ref} not found"})

    def do_POST(self) -> None:  # noqa: N802
        path, body = self._record()
        if path == "/networks/create":
            name = json.loads(body)["Name"]
            if any(n["Name"] == name for n in NETWORKS):
                return self._send(409, {"message": f"network with name {name} already exists"})
            return self._send(201, {"Id": "f" * 64, "Warning": ""})
        if path == "/networks/prune":
            return self._send(200, {"NetworksDeleted": ["old1", "old2"]})
        self._send(200, None)

    def do_DELETE(self) -> None:  # noqa: N802
        path, _ = self._record()
        ref = path.removeprefix("/networks/")
        if ref == "bridge":
            return self._send(403, {"message": "bridge is a pre-defined network and cannot be removed"})
        if any(ref == n["Name"] for n in NETWORKS):
            return self._send(204)
        self._send(404, {"message": f"network {ref} not found"})


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, state: StubState) -> None:
        self.state = state
        super().__init__(path, _Handler)

    def get_request(self) -> Any:
        conn, _ = super().get_request()
        return conn, ("unix", 0)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Never to stderr: CliRunner captures the whole process's stderr, so the traceback of
        a docker CLI connection reset while shoal's command ran landed in shoal's output (a CI
        flake). A client that hung up is normal; anything else is kept for `_take` to raise."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            with self.state.lock:
                self.state.errors.append(traceback.format_exc())


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    requests: list[tuple[str, str, str]]


class Stub:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = str(root / "engine.sock")
        self.state = StubState()
        self.server = _Server(self.sock, self.state)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _take(self) -> list[tuple[str, str, str]]:
        with self.state.lock:
            taken, self.state.requests[:] = list(self.state.requests), []
            errors, self.state.errors[:] = list(self.state.errors), []
        assert not errors, "the stub server failed:\n" + "\n".join(errors)
        return [r for r in taken if r[0] != "GET" or r[1].startswith("/networks")]

    def docker(self, *args: str, stdin: str = "") -> Outcome:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.root), "DOCKER_HOST": f"unix://{self.sock}",
               "DOCKER_CONFIG": str(self.root / "docker-config")}
        proc = subprocess.run([DOCKER or "docker", *args], input=stdin, capture_output=True, text=True, env=env, timeout=30)
        return Outcome(proc.returncode, proc.stdout, proc.stderr, self._take())

    def shoal(self, *args: str, stdin: str = "") -> Outcome:
        env = {"SHOAL_HOST": None, "DOCKER_HOST": None}
        result = CliRunner().invoke(cli, ["-H", f"unix://{self.sock}", *args], input=stdin, env=env)
        return Outcome(result.exit_code, result.stdout, result.stderr, self._take())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.root)


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    server = Stub(Path(tempfile.mkdtemp(prefix="shoal-compat-")))
    try:
        yield server
    finally:
        server.close()


def _canonical(requests: list[tuple[str, str, str]]) -> list[tuple[str, str, Any, int]]:
    """docker builds IPAM.Config from a Go map, so its order is random: compare it sorted,
    plus the exact byte length of each body."""
    out = []
    for method, path, body in requests:
        parsed = json.loads(body) if body else None
        if isinstance(parsed, dict) and isinstance(parsed.get("IPAM"), dict):
            parsed["IPAM"]["Config"].sort(key=lambda c: c["Subnet"])
        out.append((method, path, parsed, len(body.encode())))
    return out


def same(stub: Stub, *args: str, stdin: str = "", compare_gets: bool = True) -> Outcome:
    theirs, ours = stub.docker(*args, stdin=stdin), stub.shoal(*args, stdin=stdin)
    assert ours.out == theirs.out
    assert ours.err == theirs.err
    assert ours.code == theirs.code
    mine, docker = ours.requests, theirs.requests
    if not compare_gets:
        mine, docker = [r for r in mine if r[0] != "GET"], [r for r in docker if r[0] != "GET"]
    if mine != docker:
        assert _canonical(mine) == _canonical(docker)
    return ours


LS_ARGS = [
    [], ["--no-trunc"], ["-q"], ["-q", "--no-trunc"], ["--format", "json"], ["--format", "raw"],
    ["--format", "table"], ["-q", "--format", "{{.Name}}"],
    ["--format", "table {{.Name}}\\t{{.CreatedAt}}\\t{{.IPv4}}\\t{{.IPv6}}\\t{{.Internal}}\\t{{.Labels}}"],
    ["--format", 'table {{.Name}}\\t{{.Label "tier"}}\\t{{upper .Driver}}\\t{{json .Scope}}'],
    ["--format", "table   {{.ID}}\\t{{.Scope}}\\t"],
    ["--format", 'table {{.Name}}{{if ne .Name "net9"}}\\t{{.Driver}}{{end}}\\t{{.Scope}}'],
    ["--format", '{{pad .Name 1 2}}|{{truncate .Name 3}}|{{title .Name}}|{{split .Name "e"}}'],
    ["--format", "{{.Foo}}"], ["--format", "table {{.Name}}\\t{{.ID.Foo}}"], ["--format", "{{.Name"],
    ["--format", "{{.Label}}"],
    ["-f", "name=x", "-f", "driver=bridge", "--filter", " Name = y "],
]


@pytest.mark.parametrize("args", LS_ARGS, ids=lambda a: " ".join(a) or "default")
def test_network_ls(stub: Stub, args: list[str]) -> None:
    same(stub, "network", "ls", *args)


INSPECT_FORMATS = [
    "", "json", "{{.Name}} {{.Id}}", "{{.ID}} {{.Id}}", "{{.Created}}", "{{.IPAM}}", "{{.IPAM.Config}}",
    "{{.IPAM.Options}}|{{.Options}}|{{.Labels}}|{{.Containers}}|{{.ConfigFrom}}|{{.Peers}}",
    "{{json .IPAM}} {{json .Peers}} {{json .Containers}}", "{{json .}}", "{{.}}", "{{.Foo}}", "{{.Status}}",
    "a\\tb\\nc", '{{index .Options "a<b"}}', "{{range $k, $v := .Containers}}{{$v.Name}} {{$v.IPv4Address}}{{end}}",
    "{{.Id}}|{{.Options}}|{{index .Labels \"zz\"}}|{{.IPAM.Config}}|{{json .Options}}|{{.Created}}",
    "{{.Options.x}}", "{{.Id}}{{.Options.x}}", "{{.Created.Year}}", "{{.Nope", "{{foo .Name}}",
    "{{if .Internal}}internal{{else}}{{.Driver}}{{end}}", "{{len .IPAM.Config}} {{.EnableIPv6}}",
]


@pytest.mark.parametrize("fmt", INSPECT_FORMATS)
def test_network_inspect_formats(stub: Stub, fmt: str) -> None:
    args = ["--format", fmt] if fmt else []
    same(stub, "network", "inspect", *args, "bridge", "net10", "net9", "A")


def test_network_inspect_missing(stub: Stub) -> None:
    same(stub, "network", "inspect", "bridge", "missing", "nope")
    same(stub, "network", "inspect", "missing")
    same(stub, "network", "inspect", "-f", "{{.Name}}", "missing")


CREATE_ARGS = [
    ["n1"],
    ["--subnet", "10.1.0.0/16", "--subnet", "fd00::/64", "--gateway", "10.1.0.1", "--ip-range", "10.1.2.0/24",
     "--aux-address", "a=10.1.0.5", "--aux-address", "b=fd00::5", "--internal", "--attachable", "--label", "x=1",
     "--label", "y", "-o", "foo=bar", "--ipv6", "--ipam-driver", "default", "--ipam-opt", "q=r", "--scope", "local", "n2"],
    ["--gateway", "10.0.0.1,10.1.0.1", "--subnet", "10.0.0.0/16", "--subnet", "10.1.0.0/16", "n3"],
    ["--config-from", "foo", "--config-only", "--ingress", "-d", "overlay", "--ipv4", "n4"],
    ["--label", "a=1", "--label", "a=2", "-o", "a=b", "-o", "a=c=d", "-o", "novalue", "n5"],
    ["--gateway", "10.1.2.3", "--subnet", "10.0.0.0/16", "n6"],
    ["--subnet", "10.0.0.0/16", "--subnet", "10.0.0.0/24", "n7"],
    ["--subnet", "10.0.0.0/16", "--ip-range", "10.0.1.0/24", "--ip-range", "10.0.2.0/24", "n8"],
    ["--subnet", "10.0.0.0/16", "--subnet", "10.1.0.0/16", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "n9"],
    ["--subnet", "bogus", "--gateway", "10.0.0.1", "n10"],
    ["--subnet", "10.0.0.0/16", "--aux-address", "a=10.9.0.1", "n11"],
    ["bridge"],
]


@pytest.mark.parametrize("args", CREATE_ARGS, ids=lambda a: a[-1])
def test_network_create(stub: Stub, args: list[str]) -> None:
    same(stub, "network", "create", *args)


def test_network_rm(stub: Stub) -> None:
    theirs = stub.docker("network", "rm", "net9", "bridge", "missing", "A")
    ours = stub.shoal("network", "rm", "net9", "bridge", "missing", "A")
    assert (ours.out, ours.code) == (theirs.out, theirs.code)
    # docker also prints a trailing "exit status 1" line; shoal does not.
    assert ours.err == theirs.err.replace("exit status 1\n", "")
    assert ours.requests == [r for r in theirs.requests if r[0] == "DELETE"]
    same(stub, "network", "rm", "-f", "missing", compare_gets=False)


@pytest.mark.parametrize("stdin", ["y\n", "n\n", "yes\n", ""])
def test_network_prune_prompt(stub: Stub, stdin: str) -> None:
    same(stub, "network", "prune", stdin=stdin)


def test_network_prune_forced_with_filters(stub: Stub) -> None:
    same(stub, "network", "prune", "-f", "--filter", "until=24h", "--filter", "label=a=b")


def test_network_connect_disconnect(stub: Stub) -> None:
    same(stub, "network", "connect", "--ip", "10.0.0.5", "--ip6", "fd00::5", "--alias", "a", "--alias", "b",
         "--link", "c:d", "--driver-opt", "x=y", "--link-local-ip", "169.254.0.5", "--gw-priority", "5", "net9", "c1")
    same(stub, "network", "connect", "net9", "c1")
    same(stub, "network", "disconnect", "-f", "net9", "c1")
