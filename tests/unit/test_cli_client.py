"""The HTTP client (host parsing, error mapping), global options, and version/info output."""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from click.testing import CliRunner, Result

from shoal import __version__
from shoal.cli.client import ApiClient, encode_filters, parse_host
from shoal.cli.cmdutil import AppContext
from shoal.cli.errors import CliError, DaemonError, DaemonUnreachable
from shoal.cli.main import cli, main

Handler = Callable[[httpx.Request], httpx.Response]


def run(handler: Handler | None, *args: str, env: dict[str, str | None] | None = None) -> Result:
    obj = AppContext(host="", transport=httpx.MockTransport(handler)) if handler else None
    base_env: dict[str, str | None] = {"SHOAL_HOST": None, "DOCKER_HOST": None}
    return CliRunner().invoke(cli, list(args), obj=obj, env={**base_env, **(env or {})})


def json_reply(status: int, body: Any, content_type: str = "application/json") -> Handler:
    return lambda request: httpx.Response(status, content=json.dumps(body).encode(), headers={"Content-Type": content_type})


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir (unix socket paths are limited to ~107 bytes); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="shoal-cli-"))
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


# --- host parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, base_url, uds",
    [
        ("unix:///run/shoal/shoal.sock", "http://localhost", "/run/shoal/shoal.sock"),
        ("/tmp/x.sock", "http://localhost", "/tmp/x.sock"),
        ("tcp://127.0.0.1:2376", "http://127.0.0.1:2376", None),
        ("tcp://localhost", "http://localhost:2375", None),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", None),
        ("tcp://[::1]:2375", "http://[::1]:2375", None),
    ],
)
def test_parse_host(host: str, base_url: str, uds: str | None) -> None:
    endpoint = parse_host(host)
    assert (endpoint.base_url, endpoint.uds, endpoint.host) == (base_url, uds, host)


@pytest.mark.parametrize("host", ["unix://", "ssh://me@box", "bogus", "tcp://:80", "tcp://h:notaport"])
def test_parse_host_rejects(host: str) -> None:
    with pytest.raises(CliError, match="invalid host"):
        parse_host(host)


def test_encode_filters() -> None:
    assert encode_filters([]) is None
    assert encode_filters([("name", "b"), ("driver", "x"), ("name", "a")]) == (
        '{"driver":{"x":true},"name":{"a":true,"b":true}}'
    )


# --- error mapping ---------------------------------------------------------------------------


def client_for(handler: Handler) -> ApiClient:
    return ApiClient("unix:///nonexistent.sock", transport=httpx.MockTransport(handler))


def test_daemon_json_error() -> None:
    with pytest.raises(DaemonError) as info:
        client_for(json_reply(404, {"message": "network x not found"})).get_json("/networks/x")
    assert (info.value.status, info.value.message) == (404, "Error response from daemon: network x not found")
    assert info.value.not_found


def test_daemon_plain_and_empty_errors() -> None:
    plain = client_for(lambda r: httpx.Response(500, content=b"boom\n", headers={"Content-Type": "text/plain"}))
    with pytest.raises(DaemonError, match="^Error response from daemon: boom$"):
        plain.get_json("/x")
    empty = client_for(lambda r: httpx.Response(404))
    with pytest.raises(DaemonError, match="request returned Not Found for API route and version"):
        empty.get_json("/x")


@pytest.mark.parametrize(
    "cause, expected",
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), "(no such socket). Is shoald running?"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "(connection refused). Is shoald running?"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied while trying to connect"),
    ],
)
def test_transport_errors_are_explained(cause: OSError, expected: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(str(cause)) from cause

    with pytest.raises(DaemonUnreachable) as info:
        client_for(handler).get_json("/_ping")
    assert expected in info.value.message
    assert "unix:///nonexistent.sock" in info.value.message


def test_missing_socket_end_to_end(short_tmp: Path) -> None:
    host = f"unix://{short_tmp}/missing.sock"
    result = run(None, "-H", host, "network", "ls")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Cannot connect to the shoal daemon at {host} (no such socket). Is shoald running?\n"
        "Start it as root with `scripts/setup` (installs and starts it) or `.venv/bin/shoald`,\n"
        "or point -H/--host (or SHOAL_HOST) at a running daemon.\n"
    )


def test_refused_socket_end_to_end(short_tmp: Path) -> None:
    path = short_tmp / "dead.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))  # bound but never listening: connect() is refused
        result = run(None, "network", "ls", env={"SHOAL_HOST": f"unix://{path}", "DOCKER_HOST": "unix:///x"})
    finally:
        sock.close()
    assert result.exit_code == 1
    assert f"Cannot connect to the shoal daemon at unix://{path} (connection refused)" in result.stderr


def test_docker_host_env_is_the_fallback(short_tmp: Path) -> None:
    result = run(None, "network", "ls", env={"DOCKER_HOST": f"unix://{short_tmp}/d.sock"})
    assert f"unix://{short_tmp}/d.sock" in result.stderr
    assert "[default: unix:///run/shoal/shoal.sock]" in " ".join(run(None, "--help").stdout.split())


def test_request_uses_json_content_type_and_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/_ping":
            seen.append(request)
        return httpx.Response(200, json={"ok": True})

    assert client_for(handler).post_json("/x", {"a": 1}) == {"ok": True}
    client_for(handler).post_json("/x", {"k": "<&>"})
    assert seen[1].content == b'{"k":"\\u003c\\u0026\\u003e"}\n'  # Go's json.Encoder bytes
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].headers["user-agent"] == f"shoal-cli/{__version__}"
    assert seen[0].content == b'{"a":1}\n'


@pytest.mark.parametrize("server, prefix", [("1.52", "/v1.50"), ("1.45", "/v1.45"), (None, "")])
def test_api_version_negotiation(server: str | None, prefix: str) -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path == "/_ping":
            if request.method == "HEAD":
                return httpx.Response(405)  # refused HEAD: the client retries with GET
            return httpx.Response(200, content=b"OK", headers={"Api-Version": server} if server else {})
        return httpx.Response(200, json=[])

    client = client_for(handler)
    client.get_json("/networks")
    client.get_json("/networks")
    ping = [("HEAD", "/_ping"), ("GET", "/_ping")]
    assert seen == ping + [("GET", f"{prefix}/networks")] * 2


def test_pinned_api_version_skips_ping() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=[])

    ApiClient("unix:///x.sock", transport=httpx.MockTransport(handler), api_version="1.41").get_json("/networks")
    assert seen == ["/v1.41/networks"]
    obj = AppContext(host="", transport=httpx.MockTransport(handler))
    CliRunner().invoke(cli, ["network", "ls"], obj=obj, env={"SHOAL_API_VERSION": "1.44", "DOCKER_HOST": None})
    assert seen[-1] == "/v1.44/networks"


# --- version / info ----------------------------------------------------------------------------

VERSION = {
    "Platform": {"Name": "shoal"}, "Version": "0.1.0", "ApiVersion": "1.45", "MinAPIVersion": "1.40",
    "Os": "linux", "Arch": "amd64", "KernelVersion": "6.1.0", "GitCommit": "abc123",
    "Components": [{"Name": "Engine", "Version": "0.1.0"}],
}
INFO = {
    "ID": "host-id", "Name": "box", "Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0,
    "ContainersStopped": 2, "Images": 4, "ServerVersion": "0.1.0", "KernelVersion": "6.1.0",
    "OperatingSystem": "Debian", "OSType": "linux", "Architecture": "x86_64", "NCPU": 2,
    "MemTotal": 8348520448, "Plugins": {"Network": ["bridge", "host", "null"]},
    "FirewallBackend": {"Driver": "iptables"}, "Warnings": ["something odd"],
    "DefaultAddressPools": [{"Base": "172.17.0.0/16", "Size": 16}],
}


def fake_system(request: httpx.Request) -> httpx.Response:
    body = VERSION if request.url.path == "/version" else INFO
    return httpx.Response(200, json=body)


def test_version_output() -> None:
    result = run(fake_system, "version")
    assert result.exit_code == 0
    assert "Client:\n Version:        0.1.0\n" in result.stdout
    assert "Server: shoal\n Engine:\n  Version:        0.1.0\n  API version:    1.45 (minimum version 1.40)\n" in result.stdout
    assert "  OS/Arch:        linux/amd64\n  Kernel version: 6.1.0\n" in result.stdout
    assert run(fake_system, "version", "-f", "{{.Server.ApiVersion}} {{.Client.Version}}").stdout == "1.45 0.1.0\n"


def test_version_without_daemon_prints_client_then_fails(short_tmp: Path) -> None:
    result = run(None, "-H", f"unix://{short_tmp}/none.sock", "version")
    assert result.exit_code == 1
    assert result.stdout.startswith("Client:\n Version:")
    assert "Is shoald running?" in result.stderr


def test_info_output() -> None:
    result = run(fake_system, "info")
    assert result.exit_code == 0
    out = result.stdout
    assert "\nServer:\n Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 4\n" in out
    assert " Total Memory: 7.775GiB\n" in out
    assert " Network plugins: bridge host null\n" in out
    assert " Default Address Pools:\n   Base: 172.17.0.0/16, Size: 16\n" in out
    assert result.stderr == "WARNING: something odd\n"
    assert run(fake_system, "info", "--format", "{{.Name}}/{{.NCPU}}").stdout == "box/2\n"


def test_root_version_and_main_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(None, "--version").stdout == f"shoal version {__version__}\n"
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "network" in capsys.readouterr().out


def test_no_shoal_internals_imported() -> None:
    """The CLI must talk HTTP only: nothing outside shoal.cli except shoal.__version__ and the
    pure, dependency-free shoal.humanize (Docker's duration wording, shared with the API)."""
    cli_dir = Path(__file__).resolve().parents[2] / "src" / "shoal" / "cli"
    for source in cli_dir.glob("*.py"):
        for line in source.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from shoal", "import shoal")):
                assert stripped.startswith(("from shoal.cli", "from shoal import __version__",
                                            "from shoal.humanize import")), (source, line)
    assert os.path.isdir(cli_dir)
