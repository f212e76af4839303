"""Hijacked attach and exec streams: Docker's framing, stdin, detach keys, half-close.

Rules that matter to the docker CLI:
- output is raw for a TTY and framed (8-byte headers) otherwise;
- stdin EOF from the client closes the process's stdin only without a TTY (Docker's
  rule); with a TTY the client going away is a detach;
- the detach sequence (default ctrl-p ctrl-q) ends the session and leaves the process
  running; a partial prefix passes through (runtime.streams.EscapeProxy).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

from shoal.api.app import version_tuple
from shoal.api.http import Hijack, Request
from shoal.errors import InvalidParameter, ShoalError
from shoal.runtime import DEFAULT_DETACH_KEYS, Stream, frame, parse_detach_keys

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"


class Session(Protocol):
    async def read(self) -> tuple[Any, bytes] | None: ...

    async def write(self, data: bytes) -> bool: ...

    async def close_stdin(self) -> None: ...


def stream_content_type(req: Request, tty: bool) -> str:
    if tty or version_tuple(req.version or "1.52") < (1, 42):
        return RAW
    return MUX


def detach_keys(req: Request, fallback: str = "") -> bytes:
    raw = req.arg("detachKeys") or fallback
    if not raw:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(raw)
    except Exception as exc:  # noqa: BLE001 - the parser's own error is clear enough
        raise InvalidParameter(str(exc)) from None


async def pump(session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
               tty: bool, stdin: bool, close: Any, finish: Any = None, raw: bool | None = None) -> None:
    """Copy output to the client until it ends; copy the client's bytes to stdin.
    `finish` runs before the connection closes (exec: the exit code must be known by the
    time a client sees EOF, since it asks for it right away). `raw`: unframed output
    (default: as the process's `tty`)."""
    raw = tty if raw is None else raw

    async def output() -> None:
        while (item := await session.read()) is not None:
            stream, data = item
            writer.write(data if raw else frame(stream, data))
            await writer.drain()

    async def input_() -> None:
        while data := await reader.read(65536):
            if stdin and not await session.write(data):
                close()  # detach keys: end the session, leave the process running
                return
        if stdin and not tty:
            await session.close_stdin()
        elif tty:
            close()

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(input_())
    try:
        await out_task
        if finish is not None:
            await asyncio.wait_for(finish(), 10)
    except (ConnectionError, OSError, asyncio.TimeoutError):
        close()
    finally:
        in_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await in_task
        with contextlib.suppress(Exception):
            writer.close()


async def attach_handler(req: Request, containers: Any, rec: Any) -> Hijack:
    stdin = req.flag("stdin")
    att = await containers.runtime.attach(
        rec.id, stdin=stdin, stdout=req.flag("stdout"), stderr=req.flag("stderr"),
        detach_keys=detach_keys(req),
    )

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await pump(att, reader, writer, tty=rec.tty, stdin=stdin, close=att.close)

    return Hijack(run, content_type=stream_content_type(req, rec.tty))


async def exec_start_handler(req: Request, containers: Any, exec_id: str, body: dict) -> Hijack | None:
    """Docker's order: hijack first, then start the process, so no output can arrive before
    the client has the upgrade line (docker-py reads the socket under its header buffer, and
    output sent along with the headers was lost); a start that fails then is written into the
    stream and its exit code (126/127) is left for inspect."""
    if body.get("Detach"):
        await containers.exec_start(exec_id, detach=True)
        return None
    pending = containers.exec_startable(exec_id)
    keys = detach_keys(req, pending.attach.get("DetachKeys", ""))
    tty = pending.spec.tty
    # the framing follows the start request's Tty, not the exec's (dockerd 20.10, measured):
    # a raw client may ask for a pty and still want the streams apart, or the other way round
    raw = bool(body.get("Tty"))
    stdin = pending.spec.open_stdin

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            session = await containers.exec_start(exec_id, detach=False, detach_keys=keys)
        except ShoalError as exc:
            text = f"{exc}\r\n".encode()
            writer.write(text if raw else frame(Stream.STDOUT, text))
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()
            return
        await pump(session, reader, writer, tty=tty, stdin=stdin, close=lambda: None, finish=session.wait,
                   raw=raw)

    return Hijack(run, content_type=stream_content_type(req, raw))
