"""api.http over a real unix socket (no root): bodies streamed or bounded, heads refused as
Go's net/http refuses them, stalled heads dropped, connections kept when they can be."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from shoal.api.app import App, Route
from shoal.api.http import MAX_JSON_BODY, Request, Response, json_response, serve_unix


class Server:
    def __init__(self, tmp_path, header_timeout: float = 300.0) -> None:
        self.path = str(tmp_path / "s.sock")
        self.header_timeout = header_timeout
        self.seen: list[int] = []

    async def echo(self, req: Request) -> Response:
        return json_response({"len": len(req.body), "json": req.json()})

    async def count(self, req: Request) -> Response:
        total = 0
        async for chunk in req.chunks():
            self.seen.append(len(chunk))
            total += len(chunk)
        return json_response({"len": total})

    def app(self) -> App:
        return App([Route("POST", "/echo", self.echo), Route("POST", "/count", self.count, stream_body=True)])

    def run(self, client) -> object:
        async def go():
            server = await serve_unix(self.app(), self.path, header_timeout=self.header_timeout)
            try:
                return await asyncio.to_thread(client, self.path)
            finally:
                server.close()
        return asyncio.run(go())


def talk(path: str, data: bytes, timeout: float = 10) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
    except BrokenPipeError:
        pass
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out


def responses(raw: bytes) -> list[tuple[int, bytes]]:
    """Status and body of each response in a keep-alive exchange (Content-Length bodies)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
        out.append((int(lines[0].split()[1]), rest[:length]))
        raw = rest[length:]
    return out


def test_a_json_body_is_read_whole_and_kept_alive_across_requests(tmp_path):
    body = json.dumps({"a": "b"}).encode()
    req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)
    last = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    raw = Server(tmp_path).run(lambda p: talk(p, req + req + last))
    got = responses(raw)
    assert [s for s, _ in got] == [200, 200, 200]
    assert json.loads(got[0][1]) == {"len": len(body), "json": {"a": "b"}}


def test_a_streamed_body_reaches_the_handler_in_pieces_never_whole(tmp_path):
    srv = Server(tmp_path)
    size = 8 << 20
    head = b"POST /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % size
    raw = srv.run(lambda p: talk(p, head + bytes(size)))
    assert responses(raw) == [(200, b'{"len": %d}\n' % size)]
    assert max(srv.seen) <= 65536 and sum(srv.seen) == size


def test_a_streamed_chunked_body_and_expect_100_continue(tmp_path):
    def client(path: str) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        interim = s.recv(100)
        s.sendall(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return interim + b"|" + out

    raw = Server(tmp_path).run(client)
    interim, _, rest = raw.partition(b"|")
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b'{"len": 11}\n')


@pytest.mark.parametrize("chunked", [False, True])
def test_a_json_body_over_the_limit_is_a_413_that_closes(tmp_path, chunked):
    size = MAX_JSON_BODY + 1
    if chunked:
        data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n" % size + b"x" * size + b"\r\n0\r\n\r\n")
    else:
        data = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    raw = Server(tmp_path).run(lambda p: talk(p, data))
    assert raw.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n") and b"Connection: close\r\n" in raw
    assert "too large" in json.loads(raw.partition(b"\r\n\r\n")[2])["message"]


def test_an_unread_body_over_the_drain_limit_closes_the_connection(tmp_path):
    """404 before the body is read: 1 MiB is more than is drained, so no second answer."""
    size = 1 << 20
    data = (b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + bytes(size)
            + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    raw = Server(tmp_path).run(lambda p: talk(p, data))
    assert [s for s, _ in responses(raw)] == [404]


def test_a_head_that_stalls_is_dropped_after_the_header_timeout(tmp_path):
    def client(path: str) -> tuple[bytes, bytes]:
        stalled = socket.socket(socket.AF_UNIX)
        stalled.settimeout(20)
        stalled.connect(path)
        stalled.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        other = talk(path, b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        return stalled.recv(100), other

    stalled, other = Server(tmp_path, header_timeout=0.3).run(client)
    assert stalled == b""  # closed, with no answer: Go's server does the same
    assert other.startswith(b"HTTP/1.1 200 OK")


def test_the_body_of_a_streaming_route_is_not_read_before_the_handler():
    """In-process (no stream): a Request built by hand still works for both kinds of route."""
    async def go():
        srv = Server.__new__(Server)
        srv.seen = []
        app = srv.app()
        a = await app(Request("POST", "/count", {}, {}, b"abc"))
        b = await app(Request("POST", "/echo", {}, {"content-type": "application/json"}, b"[1]"))
        return a, b
    a, b = asyncio.run(go())
    assert json.loads(a.body) == {"len": 3} and json.loads(b.body) == {"len": 3, "json": [1]}
