"""A small HTTP/1.1 server over asyncio streams, built on h11.

Why not aiohttp or uvicorn: the Docker API needs connection hijacking (attach and exec
answer `101 UPGRADED` and then carry raw bytes both ways), HEAD on /_ping, streamed
bodies and exact control of headers.  h11 gives a correct HTTP state machine and hands
back the raw socket for hijacks; the rest is ~200 lines we can read.

- Request: one parsed request (query, headers, path params, API version) and its body:
  read whole up to a limit for the JSON routes, or streamed to a handler that takes large
  bodies (image import), never buffered whole otherwise.
- Bad input at this level is answered as Go's net/http (dockerd's server) answers it: a
  malformed request head is a 400, a head over 1 MiB a 431, and the connection closes; a
  head that does not arrive within HEADER_TIMEOUT closes the connection (moby's
  ReadHeaderTimeout); a body left unread is drained up to DRAIN_LIMIT, past that the
  connection closes.
- Response / JSONResponse / StreamResponse / Hijack: what handlers return.
- serve_unix: accept connections and dispatch through an `App`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from shoal.errors import InvalidParameter, PayloadTooLarge

log = logging.getLogger("shoal.api.http")
MAX_HEAD = (1 << 20) + 4096  # Go's DefaultMaxHeaderBytes and the 4 KiB its reader allows on top
MAX_JSON_BODY = 16 << 20  # a container create is a few KiB; this is room, not a target
DRAIN_LIMIT = 256 << 10  # as Go's server: read this much of an unread body to reuse the connection
HEADER_TIMEOUT = 300.0  # moby's ReadHeaderTimeout (5 minutes)
LINGER = 0.5  # Go's rstAvoidanceDelay: how long unread input is discarded before a close
_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented"}


def _reason(status: int) -> bytes:
    """The reason phrase Go writes ("200 OK"); h11 would send none."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class BodyStream:
    """A request's body as it arrives, one h11 Data event at a time."""

    def __init__(self, conn: _Conn, length: int | None) -> None:
        self._conn, self.length = conn, length
        self.received, self.done = 0, False

    async def next(self) -> bytes | None:
        """The next piece, or None at the end; a broken body is the client's 400."""
        if self.done:
            return None
        conn = self._conn
        if conn.h11.they_are_waiting_for_100_continue:
            await conn._send(h11.InformationalResponse(status_code=100, headers=[]))
        try:
            event = await conn._next_event()
        except h11.RemoteProtocolError as exc:
            self.done = True
            raise InvalidParameter(f"malformed or incomplete request body: {exc}") from None
        if isinstance(event, h11.Data):
            self.received += len(event.data)
            return bytes(event.data)
        self.done = True
        return None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    version: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    stream: BodyStream | None = None

    async def read_body(self, limit: int = MAX_JSON_BODY) -> bytes:
        """The whole body into `body`, for handlers that parse it; over `limit` is a 413."""
        if self.stream is None:
            return self.body
        too_large = PayloadTooLarge(
            f"request body too large: over {limit >> 20} MiB; only image imports take larger bodies")
        if self.stream.length is not None and self.stream.length > limit:
            raise too_large
        chunks, size = [], 0
        while (chunk := await self.stream.next()) is not None:
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        self.body = b"".join(chunks)
        return self.body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives, for handlers that take large bodies."""
        if self.stream is None:
            if self.body:
                yield self.body
            return
        while (chunk := await self.stream.next()) is not None:
            yield chunk

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.arg(name, "")
        if raw == "":
            return default
        return raw.lower() not in ("0", "false", "no")

    def int_arg(self, name: str, default: int = 0) -> int:
        """A query integer; a malformed one is the client's mistake (400), not ours."""
        raw = self.arg(name, "")
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise InvalidParameter(f"invalid value for {name!r}: {raw!r} is not an integer") from None

    def json(self) -> Any:
        if not self.body:
            return None
        ctype = self.headers.get("content-type", "")
        if ctype and not ctype.startswith("application/json"):
            raise InvalidParameter(f"unsupported Content-Type header ({ctype}): must be 'application/json'")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise InvalidParameter(f"invalid JSON: {exc}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/plain; charset=utf-8"


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj).encode() + b"\n", content_type="application/json")


@dataclass
class StreamResponse:
    """Headers go out at once; chunks follow as the iterator yields them."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)  # e.g. the archive's path stat


HijackFn = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Hijack:
    """Take over the connection: send the upgrade line, then run `fn` on raw streams."""

    fn: HijackFn
    content_type: str = "application/vnd.docker.raw-stream"


Handler = Callable[[Request], Awaitable[Response | StreamResponse | Hijack]]


class _Conn:
    """One client connection: parse requests, write responses, until closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: Handler,
                 header_timeout: float = HEADER_TIMEOUT) -> None:
        self.reader, self.writer, self.app = reader, writer, app
        self.header_timeout = header_timeout
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.unread_input = False  # closing with input not read: linger first

    async def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _next_event(self, head: bool = False) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            size = 65536
            if head:  # never past MAX_HEAD in one read, so h11's own check sees a long head
                size = max(1, min(size, MAX_HEAD + 1 - len(self.h11.trailing_data[0])))
            data = await self.reader.read(size)
            self.h11.receive_data(data)

    async def _read_request(self) -> Request | None:
        """The next request's head; its body is left to the app (Request.stream)."""
        try:
            event = await asyncio.wait_for(self._next_event(head=True), self.header_timeout)
        except TimeoutError:
            return None  # as Go's server: a head that does not come in time closes the connection
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc)
            return None
        if not isinstance(event, h11.Request):
            return None  # ConnectionClosed, or PAUSED
        if not event.http_version.startswith(b"1."):  # h11 takes any; Go's server only 1.x
            await self._refuse(h11.RemoteProtocolError(
                f"unsupported protocol version HTTP/{event.http_version.decode()}", 400))
            return None
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        length = headers.get("content-length")
        url = urlsplit(event.target.decode("latin-1"))
        return Request(
            method=event.method.decode(),
            path=unquote(url.path),
            query=parse_qs(url.query, keep_blank_values=True),
            headers=headers,
            stream=BodyStream(self, int(length) if length else None),  # h11 checked it is digits
        )

    async def _refuse(self, exc: h11.RemoteProtocolError) -> None:
        """A head h11 cannot parse: Go's status (400, or 431 over MAX_HEAD), then close."""
        status = exc.error_status_hint if exc.error_status_hint in _REASONS else 400
        if status == 431:
            message = f"request header fields too large: the request line and headers are over {MAX_HEAD} bytes"
        else:
            message = f"bad request: {exc}"
        body = json.dumps({"message": message}).encode() + b"\n"
        head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        self.unread_input = True

    async def _finish_body(self, req: Request) -> bool:
        """What the handler left of the body, read before the next request (up to
        DRAIN_LIMIT, as Go's server does); False when the connection must close instead."""
        stream = req.stream
        if stream is None or stream.done:
            return True
        if stream.length is not None and stream.length - stream.received > DRAIN_LIMIT:
            return False
        start = stream.received
        try:
            while await stream.next() is not None:
                if stream.received - start > DRAIN_LIMIT:
                    return False
        except InvalidParameter:
            return False
        return True

    async def serve(self) -> None:
        try:
            while True:
                req = await self._read_request()
                if req is None:
                    break
                result = await self.app(req)
                if isinstance(result, Hijack):
                    await self._hijack(req, result)
                    return
                await self._respond(req, result)
                if self.h11.our_state is h11.MUST_CLOSE or not await self._finish_body(req):
                    self.unread_input = not (req.stream is None or req.stream.done)
                    break
                self.h11.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - a broken connection must not kill the server
            log.exception("connection failed")
        finally:
            if self.unread_input:
                await self._linger()
            self.writer.close()

    async def _linger(self) -> None:
        """As Go's closeWriteAndWait: our side ends first and what the client still sends
        is read and dropped for a moment, so that it reads the answer, then an end, rather
        than a reset (a unix socket closed with unread input resets its peer)."""
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER):
                while await self.reader.read(65536):
                    pass
        except (TimeoutError, OSError):
            pass

    def _headers(self, resp: Response | StreamResponse, extra: list[tuple[str, str]]) -> list:
        return [("Content-Type", resp.content_type)] + extra

    async def _respond(self, req: Request, resp: Response | StreamResponse) -> None:
        base = getattr(self.app, "response_headers", lambda: [])()
        if isinstance(resp, StreamResponse):
            headers = self._headers(resp, base + resp.headers)
            await self._send(h11.Response(status_code=resp.status, headers=headers, reason=_reason(resp.status)))
            async for chunk in resp.chunks:
                if chunk:
                    await self._send(h11.Data(data=chunk))
            await self._send(h11.EndOfMessage())
            return
        headers = self._headers(resp, base + resp.headers)
        if resp.status == 413:  # as Go's server: the rest of an oversized body is not read
            headers.append(("Connection", "close"))
        length = 0 if req.method == "HEAD" else len(resp.body)
        headers.append(("Content-Length", str(length)))
        if resp.status in (204, 304):
            headers = [h for h in headers if h[0] not in ("Content-Length", "Content-Type")]
        await self._send(h11.Response(status_code=resp.status, headers=headers, reason=_reason(resp.status)))
        if req.method != "HEAD" and resp.status not in (204, 304) and resp.body:
            await self._send(h11.Data(data=resp.body))
        await self._send(h11.EndOfMessage())

    async def _hijack(self, req: Request, hj: Hijack) -> None:
        """Docker's hijack: `101 UPGRADED` when asked to upgrade, else a raw 200."""
        upgrade = "upgrade" in req.headers.get("connection", "").lower()
        if upgrade:
            head = (
                "HTTP/1.1 101 UPGRADED\r\n"
                f"Content-Type: {hj.content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            )
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {hj.content_type}\r\n"
        for k, v in getattr(self.app, "response_headers", lambda: [])():
            head += f"{k}: {v}\r\n"
        self.writer.write((head + "\r\n").encode())
        await self.writer.drain()
        leftover, _ = self.h11.trailing_data
        reader = asyncio.StreamReader()
        if leftover:
            reader.feed_data(bytes(leftover))
        asyncio.ensure_future(_pump(self.reader, reader))
        await hj.fn(reader, self.writer)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamReader) -> None:
    """Forward the raw socket into the hijack's reader (after any bytes h11 buffered)."""
    try:
        while data := await src.read(65536):
            dst.feed_data(data)
    except ConnectionError:
        pass
    finally:
        dst.feed_eof()


async def serve_unix(app: Handler, path: str, header_timeout: float = HEADER_TIMEOUT) -> asyncio.AbstractServer:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Conn(reader, writer, app, header_timeout).serve()

    return await asyncio.start_unix_server(on_client, path=path, limit=1 << 20)
