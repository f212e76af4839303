"""A small HTTP/1.1 server over asyncio streams, built on h11.

Why not aiohttp or uvicorn: the Docker API needs connection hijacking (attach and exec
answer `101 UPGRADED` and then carry raw bytes both ways), HEAD on /_ping, streamed
bodies and exact control of headers.  h11 gives a correct HTTP state machine and hands
back the raw socket for hijacks; the rest is ~200 lines we can read.

- Request: one parsed request (query, headers, body, path params, API version).
- Response / JSONResponse / StreamResponse / Hijack: what handlers return.
- serve_unix: accept connections and dispatch through an `App`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from shoal.errors import InvalidParameter

log = logging.getLogger("shoal.api.http")
MAX_BODY = 4 << 30


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    version: str | None = None
    params: dict[str, str] = field(default_factory=dict)

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


HijackFn = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Hijack:
    """Take over the connection: send the upgrade line, then run `fn` on raw streams."""

    fn: HijackFn
    content_type: str = "application/vnd.docker.raw-stream"


Handler = Callable[[Request], Awaitable[Response | StreamResponse | Hijack]]


class _Conn:
    """One client connection: parse requests, write responses, until closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: Handler) -> None:
        self.reader, self.writer, self.app = reader, writer, app
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)

    async def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(65536)
            self.h11.receive_data(data)

    async def _read_request(self) -> Request | None:
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        if not isinstance(event, h11.Request):
            return None
        chunks, size = [], 0
        while True:
            part = await self._next_event()
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > MAX_BODY:
                    raise InvalidParameter("request body too large")
                chunks.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return None
        url = urlsplit(event.target.decode("latin-1"))
        return Request(
            method=event.method.decode(),
            path=unquote(url.path),
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.decode().lower(): v.decode("latin-1") for k, v in event.headers},
            body=b"".join(chunks),
        )

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
                if self.h11.our_state is h11.MUST_CLOSE:
                    break
                self.h11.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - a broken connection must not kill the server
            log.exception("connection failed")
        finally:
            self.writer.close()

    def _headers(self, resp: Response | StreamResponse, extra: list[tuple[str, str]]) -> list:
        return [("Content-Type", resp.content_type)] + extra

    async def _respond(self, req: Request, resp: Response | StreamResponse) -> None:
        base = getattr(self.app, "response_headers", lambda: [])()
        if isinstance(resp, StreamResponse):
            headers = self._headers(resp, base)
            await self._send(h11.Response(status_code=resp.status, headers=headers))
            async for chunk in resp.chunks:
                if chunk:
                    await self._send(h11.Data(data=chunk))
            await self._send(h11.EndOfMessage())
            return
        headers = self._headers(resp, base + resp.headers)
        length = 0 if req.method == "HEAD" else len(resp.body)
        headers.append(("Content-Length", str(length)))
        if resp.status in (204, 304):
            headers = [h for h in headers if h[0] not in ("Content-Length", "Content-Type")]
        await self._send(h11.Response(status_code=resp.status, headers=headers))
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


async def serve_unix(app: Handler, path: str) -> asyncio.AbstractServer:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Conn(reader, writer, app).serve()

    return await asyncio.start_unix_server(on_client, path=path, limit=1 << 20)
