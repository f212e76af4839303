"""`shoal run/exec/attach/start/...` against a stub Engine API on a unix socket in a temp dir.

The stub records every request (method, path, query, body) and answers like shoald would:
hijacks with `101 UPGRADED` and multiplexed frames, `wait` with headers now and the body
later, pulls and imports as JSON message streams. `Stub` is reused by the other
test_cli_containers_* modules (and by the docker comparison there).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from shoal.cli.hijack import frame
from shoal.cli.main import cli
from shoal.cli.runopts import RunOptions, build_create_body

CID = "c0ffee" + "0" * 58
EXEC_ID = "e" * 64
IMAGE_ID = "sha256:" + "42bf3b5a41bf" + "1" * 52


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def q(self) -> dict[str, str]:
        return dict(self.query)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    ctype: str = "application/json"


@dataclass
class Hijacked:
    """What a hijacked stream does: send `output` (after reading stdin to EOF if `echo`)."""

    output: bytes = b""
    echo: bool = False  # wait for the client's half-close, then send what it typed as stdout
    hold: float = 0.0  # keep the stream open this long after the output (for detach tests)
    content_type: str = "application/vnd.docker.multiplexed-stream"


@dataclass
class StubState:
    seen: list[Seen] = field(default_factory=list)
    typed: list[bytes] = field(default_factory=list)
    routes: dict[str, Callable[[Seen], Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Stub:
    """A threaded fake daemon; `route(METHOD, regex, handler)` overrides an answer."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sht-cli-"))
        self.sock_path = str(self.root / "engine.sock")
        self.state = StubState()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.sock_path)
        self.server.listen(32)
        self.container: dict[str, Any] = container_json()
        self.wait_status = 0
        self.wait_delay = 0.05
        self.exec_code = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"unix://{self.sock_path}"

    def route(self, method: str, pattern: str, handler: Callable[[Seen], Any]) -> None:
        self.state.routes[f"{method} {pattern}"] = handler

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def take(self) -> list[Seen]:
        with self.state.lock:
            taken, self.state.seen[:] = list(self.state.seen), []
        return [s for s in taken if s.path != "/_ping"]

    def shoal(self, *args: str, input: bytes | str | None = None) -> Any:
        env = {"SHOAL_HOST": None, "DOCKER_HOST": None}
        return CliRunner().invoke(cli, ["-H", self.host, *args], input=input, env=env)

    # -- server ------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while (seen := _read_request(reader)) is not None:
                with self.state.lock:
                    self.state.seen.append(seen)
                if not self._answer(conn, reader, seen):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, reader: Any, seen: Seen) -> bool:
        result = self._dispatch(seen)
        if isinstance(result, Hijacked):
            self._hijack(conn, reader, result)
            return False
        if isinstance(result, tuple) and result[0] == "wait":
            _send_chunked(conn, result[1], result[2])
            return True
        if isinstance(result, tuple) and result[0] == "lines":
            _send_chunked(conn, result[1], 0)
            return True
        reply = result if isinstance(result, Reply) else Reply(body=result)
        data = b"" if reply.body is None else (reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
        head = f"HTTP/1.1 {reply.status} X\r\nApi-Version: 1.50\r\nContent-Type: {reply.ctype}\r\n"
        conn.sendall((head + f"Content-Length: {len(data)}\r\n\r\n").encode() + (b"" if seen.method == "HEAD" else data))
        return True

    def _hijack(self, conn: socket.socket, reader: Any, hj: Hijacked) -> None:
        conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: " + hj.content_type.encode()
                     + b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        conn.sendall(hj.output)
        typed = b""
        if hj.echo:
            while data := reader.read1(4096):
                typed += data
            with self.state.lock:
                self.state.typed.append(typed)
            conn.sendall(frame(1, typed) if typed else b"")
        if hj.hold:
            conn.settimeout(hj.hold)
            try:
                while data := reader.read1(4096):
                    typed += data
            except OSError:
                pass
            with self.state.lock:
                self.state.typed.append(typed)
        conn.shutdown(socket.SHUT_RDWR)

    def _dispatch(self, seen: Seen) -> Any:
        for key, handler in self.state.routes.items():
            method, pattern = key.split(" ", 1)
            if re.fullmatch(method, seen.method) and re.fullmatch(pattern, seen.path):
                return handler(seen)
        return self._default(seen)

    def _default(self, seen: Seen) -> Any:  # noqa: C901 - a route table in one place
        path, method = seen.path, seen.method
        if path == "/_ping":
            return Reply(body=b"OK", ctype="text/plain")
        if path == "/info":
            return {"Swarm": {"ControlAvailable": False}, "OSType": "linux"}
        if path == "/containers/create":
            return Reply(201, {"Id": CID, "Warnings": []})
        if re.fullmatch(r"/containers/[^/]+/json", path):
            return self.container
        if path.endswith("/wait"):
            return ("wait", json.dumps({"StatusCode": self.wait_status, "Error": None}).encode() + b"\n", self.wait_delay)
        if path.endswith("/attach"):
            return Hijacked(frame(1, b"out\n") + frame(2, b"err\n"))
        if re.fullmatch(r"/containers/[^/]+/exec", path):
            return Reply(201, {"Id": EXEC_ID})
        if path == f"/exec/{EXEC_ID}/start":
            return Hijacked(frame(1, b"exec-out\n")) if not (seen.json or {}).get("Detach") else Reply(200, None)
        if path == f"/exec/{EXEC_ID}/json":
            return {"ID": EXEC_ID, "Running": False, "ExitCode": self.exec_code}
        if method == "DELETE" and path.startswith("/containers/"):
            return Reply(204, None)
        if re.fullmatch(r"/containers/[^/]+/(start|stop|restart|kill|resize)", path):
            return Reply(204, None)
        if path.endswith("/logs"):
            return Reply(200, frame(1, b"log-out\n") + frame(2, b"log-err\n"), "application/vnd.docker.multiplexed-stream")
        return Reply(404, {"message": f"page not found: {method} {path}"})


def container_json(**config: Any) -> dict[str, Any]:
    base = {"Tty": False, "OpenStdin": False}
    base.update(config)
    return {"Id": CID, "Name": "/web", "Config": base, "State": {"Running": True, "Paused": False, "Restarting": False},
            "HostConfig": {"AutoRemove": False}}


def _read_request(reader: Any) -> Seen | None:
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode().split(" ", 2)
    headers: dict[str, str] = {}
    while (h := reader.readline().decode()) not in ("\r\n", "\n", ""):
        key, _, value = h.partition(":")
        headers[key.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while size := int(reader.readline().strip(), 16):
            body += reader.read(size)
            reader.readline()
        reader.readline()
    elif headers.get("content-length"):
        body = reader.read(int(headers["content-length"]))
    url = urlsplit(target)
    path = re.sub(r"^/v[0-9.]+", "", url.path)
    return Seen(method, path, parse_qsl(url.query, keep_blank_values=True), headers, body)


def _send_chunked(conn: socket.socket, body: bytes, delay: float) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    time.sleep(delay)
    conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))


@pytest.fixture
def stub():
    server = Stub()
    try:
        yield server
    finally:
        server.close()


def calls(seen: list[Seen]) -> list[str]:
    return [f"{s.method} {s.path}" for s in seen]


# ---------------------------------------------------------------------------------------------
# create bodies (pure)


def test_default_body_matches_docker_shape():
    body = build_create_body(RunOptions(image="busybox", args=("sleep", "1")))
    assert list(body)[:8] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin"]
    assert (body["Cmd"], body["Env"], body["Entrypoint"], body["Labels"]) == (["sleep", "1"], None, None, {})
    assert body["AttachStdout"] and body["AttachStderr"] and not body["AttachStdin"]
    assert body["HostConfig"]["NetworkMode"] == "default" and body["HostConfig"]["ConsoleSize"] == [0, 0]
    assert list(body["NetworkingConfig"]["EndpointsConfig"]) == ["default"]
    assert body["NetworkingConfig"]["EndpointsConfig"]["default"]["IPAMConfig"] is None


def test_detached_interactive_tty_flags():
    body = build_create_body(RunOptions(image="b", detach=True, interactive=True, tty=True), console=(24, 80))
    assert (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]) == (False, False, False)
    assert (body["Tty"], body["OpenStdin"], body["StdinOnce"]) == (True, True, False)
    assert body["HostConfig"]["ConsoleSize"] == [24, 80]
    body = build_create_body(RunOptions(image="b", interactive=True, tty=True))
    assert (body["AttachStdin"], body["StdinOnce"]) == (True, True)


def test_network_options_on_the_first_network():
    opts = RunOptions(image="b", networks=("n1",), ip="10.0.0.5", ip6="fd00::5", mac_address="02:00:00:00:00:01",
                      aliases=("al",), hostname="hh", workdir="/tmp", entrypoint="/bin/sh", args=("-c", "echo"),
                      rm=True, user="1:2", labels=("b=2", "a"))
    body = build_create_body(opts)
    ep = body["NetworkingConfig"]["EndpointsConfig"]["n1"]
    assert ep["IPAMConfig"] == {"IPv4Address": "10.0.0.5", "IPv6Address": "fd00::5"}
    assert (ep["Aliases"], ep["MacAddress"]) == (["al"], "02:00:00:00:00:01")
    assert (body["Entrypoint"], body["Cmd"], body["Hostname"], body["WorkingDir"]) == (["/bin/sh"], ["-c", "echo"], "hh", "/tmp")
    assert body["HostConfig"]["AutoRemove"] and body["User"] == "1:2"
    assert list(body["Labels"].items()) == [("a", ""), ("b", "2")]


@pytest.mark.parametrize("mode", ["host", "none", "bridge", "mynet", "container:x"])
def test_a_lone_named_network_without_options_is_left_to_the_daemon(mode):
    body = build_create_body(RunOptions(image="b", networks=(mode,)))
    assert body["HostConfig"]["NetworkMode"] == mode
    assert body["NetworkingConfig"]["EndpointsConfig"] == {}


def test_env_and_entrypoint_reset():
    body = build_create_body(RunOptions(image="b", env=("A=1", "FOO", "UNSET"), entrypoint=""), environ={"FOO": "bar"})
    assert body["Env"] == ["A=1", "FOO=bar", "UNSET"]
    assert body["Entrypoint"] == [""]


@pytest.mark.parametrize("opts, message", [
    (RunOptions(image="b", aliases=("a",)), "network-scoped aliases are only supported for user-defined networks"),
    (RunOptions(image="b", networks=("host", "mynet")), "cannot attach both user-defined and non-user-defined"),
    (RunOptions(image="b", mac_address="zz"), "zz is not a valid mac address"),
    (RunOptions(image="b", env=("=x",)), "invalid environment variable: =x"),
    (RunOptions(image="b", networks=("n", "n")), 'network "n" is specified multiple times'),
])
def test_invalid_flags(opts, message):
    with pytest.raises(Exception) as info:
        build_create_body(opts)
    assert message in info.value.message and info.value.exit_code == 125
    assert info.value.message.startswith("shoal: ") and "Run 'shoal run --help'" in info.value.message


# ---------------------------------------------------------------------------------------------
# run against the stub


def test_run_detached_sequence_and_output(stub):
    result = stub.shoal("run", "-d", "--name", "web", "-e", "A=1", "--network", "n1", "--ip", "10.1.0.9",
                        "busybox", "sleep", "60")
    assert result.exit_code == 0, result.output
    assert result.stdout == CID + "\n"
    seen = stub.take()
    assert calls(seen) == ["POST /containers/create", f"POST /containers/{CID}/wait", f"POST /containers/{CID}/start"]
    create = seen[0]
    assert create.q() == {"name": "web"}
    assert create.headers["content-type"] == "application/json"
    assert create.json["Env"] == ["A=1"] and create.json["Cmd"] == ["sleep", "60"]
    assert create.json["NetworkingConfig"]["EndpointsConfig"]["n1"]["IPAMConfig"] == {"IPv4Address": "10.1.0.9"}
    assert create.body.endswith(b"}\n")  # Go's encoder
    assert seen[1].q() == {"condition": "next-exit"}


def test_run_attached_demuxes_and_exits_with_the_container_status(stub):
    stub.wait_status = 3
    result = stub.shoal("run", "--rm", "busybox", "sh", "-c", "x")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    seen = stub.take()
    assert calls(seen) == ["POST /containers/create", f"POST /containers/{CID}/attach",
                           f"POST /containers/{CID}/wait", f"POST /containers/{CID}/start"]
    attach = seen[1]
    assert attach.q() == {"stream": "1", "stdout": "1", "stderr": "1"}
    assert attach.headers["connection"] == "Upgrade" and attach.headers["upgrade"] == "tcp"
    assert seen[2].q() == {"condition": "removed"}
    assert [k for k, _ in attach.query] == ["stderr", "stdout", "stream"]  # Go sorts query keys


def test_run_interactive_forwards_stdin_and_half_closes(stub):
    stub.route("POST", r"/containers/[^/]+/attach", lambda s: Hijacked(echo=True))
    result = stub.shoal("run", "-i", "--detach-keys", "ctrl-a", "busybox", "cat", input=b"hello\x10\x11\n")
    assert result.exit_code == 0, result.output
    assert stub.state.typed == [b"hello\x10\x11\n"]  # no TTY: detach keys are the daemon's business
    assert result.stdout == "hello\x10\x11\n"
    attach = [s for s in stub.take() if s.path.endswith("/attach")][0]
    assert attach.q() == {"stream": "1", "stdout": "1", "stderr": "1", "stdin": "1", "detachKeys": "ctrl-a"}


def test_run_tty_without_terminal_is_refused_before_any_request(stub):
    result = stub.shoal("run", "-it", "busybox", "sh")
    assert (result.exit_code, result.stderr) == (1, "the input device is not a TTY\n")
    assert stub.take() == []


def test_run_pulls_after_a_404_then_retries(stub):
    answers = iter([Reply(404, {"message": "No such image: nope:latest"}), Reply(201, {"Id": CID, "Warnings": ["w1"]})])
    stub.route("POST", "/containers/create", lambda s: next(answers))
    stub.route("POST", "/images/create", lambda s: ("lines", b'{"status":"Status: Image is up to date for nope:latest"}\r\n'))
    result = stub.shoal("run", "-d", "nope")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("Unable to find image 'nope:latest' locally\n"
                             "Status: Image is up to date for nope:latest\nWARNING: w1\n")
    seen = stub.take()
    pull = seen[1]
    assert (pull.path, pull.q()) == ("/images/create", {"fromImage": "docker.io/library/nope", "tag": "latest"})
    assert calls(seen)[2] == "POST /containers/create"


def test_run_reports_pull_failures_like_docker(stub):
    stub.route("POST", "/containers/create", lambda s: Reply(404, {"message": "No such image: nope:latest"}))
    stub.route("POST", "/images/create", lambda s: Reply(404, {"message": "pull access denied: docker import it"}))
    result = stub.shoal("run", "nope:1")
    assert result.exit_code == 125
    assert result.stderr == ("Unable to find image 'nope:1' locally\n"
                             "shoal: Error response from daemon: pull access denied: docker import it\n\n"
                             "Run 'shoal run --help' for more information\n")


@pytest.mark.parametrize("message, status", [
    ('Conflict. The container name "/web" is already in use', 125),
    ('failed to create container: exec: "/nope": executable file not found', 127),
])
def test_run_create_errors(stub, message, status):
    stub.route("POST", "/containers/create", lambda s: Reply(409 if status == 125 else 400, {"message": message}))
    result = stub.shoal("run", "--name", "web", "busybox")
    assert result.exit_code == status
    assert result.stderr == f"shoal: Error response from daemon: {message}\n\nRun 'shoal run --help' for more information\n"


def test_run_start_error_has_no_help_hint(stub):
    stub.route("POST", r"/containers/[^/]+/start", lambda s: Reply(500, {"message": "permission denied"}))
    result = stub.shoal("run", "-d", "busybox")
    assert (result.exit_code, result.stderr) == (126, "shoal: Error response from daemon: permission denied\n")


def test_run_rejects_bad_references_before_creating(stub):
    result = stub.shoal("run", "Bad")
    assert result.exit_code == 125
    assert "invalid reference format: repository name (library/Bad) must be lowercase" in result.stderr
    assert stub.take() == []


# ---------------------------------------------------------------------------------------------
# exec / attach / start


def test_exec_body_start_body_and_exit_code(stub):
    stub.exec_code = 5
    result = stub.shoal("exec", "-e", "A=1", "-w", "/tmp", "-u", "0", "web", "sh", "-c", "x")
    assert (result.exit_code, result.stdout) == (5, "exec-out\n")
    seen = stub.take()
    assert calls(seen) == ["GET /containers/web/json", "POST /containers/web/exec",
                           f"POST /exec/{EXEC_ID}/start", f"GET /exec/{EXEC_ID}/json"]
    assert seen[1].body == (b'{"User":"0","Privileged":false,"Tty":false,"AttachStdin":false,"AttachStderr":true,'
                            b'"AttachStdout":true,"Detach":false,"DetachKeys":"","Env":["A=1"],"WorkingDir":"/tmp",'
                            b'"Cmd":["sh","-c","x"]}\n')
    assert seen[2].body == b'{"Detach":false,"Tty":false}\n' and seen[2].headers["upgrade"] == "tcp"


def test_exec_detached_does_not_hijack(stub):
    result = stub.shoal("exec", "-d", "web", "touch", "/x")
    assert result.exit_code == 0 and result.stdout == ""
    start = stub.take()[2]
    assert start.body == b'{"Detach":true,"Tty":false}\n' and "upgrade" not in start.headers


def test_exec_missing_container(stub):
    stub.route("GET", r"/containers/nope/json", lambda s: Reply(404, {"message": "No such container: nope"}))
    result = stub.shoal("exec", "nope", "true")
    assert (result.exit_code, result.stderr) == (1, "Error response from daemon: No such container: nope\n")


def test_attach_streams_and_returns_the_exit_status(stub):
    stub.wait_status = 4
    result = stub.shoal("attach", "web")
    assert (result.exit_code, result.stdout, result.stderr) == (4, "out\n", "err\n")
    seen = stub.take()
    assert calls(seen) == ["POST /containers/web/wait", "GET /containers/web/json", "POST /containers/web/attach",
                           "GET /containers/web/json"]
    assert seen[0].query == [] and seen[2].q() == {"stream": "1", "stdout": "1", "stderr": "1"}


def test_attach_to_a_stopped_container(stub):
    stub.container["State"]["Running"] = False
    result = stub.shoal("attach", "web")
    assert (result.exit_code, result.stderr) == (1, "You cannot attach to a stopped container, start it first\n")


def test_start_attached_sequence(stub):
    stub.container["HostConfig"]["AutoRemove"] = True
    stub.wait_status = 2
    result = stub.shoal("start", "-a", "web")
    assert (result.exit_code, result.stdout) == (2, "out\n")
    seen = stub.take()
    assert calls(seen) == ["GET /containers/web/json", f"POST /containers/{CID}/attach", f"POST /containers/{CID}/wait",
                           f"POST /containers/{CID}/start"]
    assert seen[2].q() == {"condition": "removed"}


def test_start_many_reports_failures_at_the_end(stub):
    stub.route("POST", r"/containers/bad/start", lambda s: Reply(404, {"message": "No such container: bad"}))
    result = stub.shoal("start", "a1", "bad", "a2")
    assert result.exit_code == 1 and result.stdout == "a1\na2\n"
    assert result.stderr == "Error response from daemon: No such container: bad\nError: failed to start containers: bad\n"
    assert stub.shoal("start", "-a", "x", "y").stderr == "you cannot start and attach multiple containers at once\n"


def test_runtime_flag_lands_where_docker_puts_it():
    """HostConfig.Runtime is omitempty, serialized after ShmSize (moby's field order)."""
    assert "Runtime" not in build_create_body(RunOptions(image="b"))["HostConfig"]
    host = build_create_body(RunOptions(image="b", runtime="crun"))["HostConfig"]
    keys = list(host)
    assert host["Runtime"] == "crun" and keys[keys.index("ShmSize") + 1] == "Runtime"
