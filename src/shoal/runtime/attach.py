"""Attaching API clients to a container's (or exec's) stdio through conmon's attach socket.

The daemon holds one connection per conmon (`MonitorSocket`) and fans it out to any number
of `Attachment`s. One connection, not one per client, because conmon closes the container's
stdin whenever an attach connection ends; with a single connection the daemon decides when
stdin closes (Docker's StdinOnce: when the first stdin client closes its input).

Each client's queue is bounded. dockerd (container/stream, pkg/ioutils.BytesPipe, read) buffers
up to 1e6 bytes per attached client and then blocks the broadcaster, which throttles the
container (and every other reader of its output) to the slowest client, forever if that client
never reads. Here too the pump stops reading conmon (conmon blocks on the socket, so the
container's writes block) while a client is over its bound, but only for `STALL_TIMEOUT`: a
client that made no room by then is dropped (its stream ends), so one stalled reader cannot
freeze the container and the other clients indefinitely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from shoal.runtime.streams import DEFAULT_DETACH_KEYS, EscapeProxy, Stream

_RECV = 65536
_SEND_CHUNK = 4096  # conmon reads stdin messages into a fixed buffer; keep each well below it
_TAGS = {2: Stream.STDOUT, 3: Stream.STDERR}
log = logging.getLogger("shoal.runtime")
QUEUE_LIMIT = 1 << 20  # bytes queued for one client before the pump waits (dockerd: 1e6)
STALL_TIMEOUT = 10.0  # seconds a client over its bound may take to make room before it is dropped


class MonitorSocket:
    """The daemon's single connection to one conmon attach socket."""

    def __init__(self, path: Path, *, stdin_once: bool = False,
                 on_close: Callable[[MonitorSocket], None] | None = None,
                 stall_timeout: float = STALL_TIMEOUT) -> None:
        self.path = path
        self.stall_timeout = stall_timeout
        self.stdin_once = stdin_once
        self._on_close = on_close
        self._sock: socket.socket | None = None
        self._clients: set[Attachment] = set()
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()

    def connect(self) -> None:
        """Connect now (conmon's socket exists); paths of any length work via /proc/self/fd."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        dirfd = os.open(self.path.parent, os.O_PATH | os.O_CLOEXEC)
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{self.path.name}")
        except OSError:
            sock.close()
            raise
        finally:
            os.close(dirfd)
        sock.setblocking(False)
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._pump())
        self.connected.set()

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        try:
            while data := await loop.sock_recv(self._sock, _RECV):
                stream = _TAGS.get(data[0])
                if stream is None:
                    continue
                for client in list(self._clients):
                    client._deliver(stream, data[1:])
                await self._wait_for_room()
        except OSError:
            pass
        finally:
            self._finish()

    async def _wait_for_room(self) -> None:
        for client in [c for c in self._clients if c.backlogged]:
            try:
                await asyncio.wait_for(client.room(), self.stall_timeout)
            except asyncio.TimeoutError:
                log.warning("an attached client read nothing for %.0f s with %d bytes queued: its stream "
                            "ends so that the process and the other clients go on (%s)",
                            self.stall_timeout, client._queued, self.path.parent.name[:12])
                client.drop_lagging()

    def _finish(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.connected.set()  # wake writers waiting for a connection that will never come
        for client in list(self._clients):
            client._deliver_eof()
        self._clients.clear()
        if self._sock is not None:
            self._sock.close()
        if self._on_close is not None:
            self._on_close(self)

    def add(self, client: Attachment) -> None:
        if self.closed.is_set():
            client._deliver_eof()
        else:
            self._clients.add(client)

    def discard(self, client: Attachment) -> None:
        self._clients.discard(client)

    async def send(self, data: bytes) -> None:
        await self.connected.wait()
        if self.closed.is_set() or self._sock is None:
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            for i in range(0, len(data), _SEND_CHUNK):
                await loop.sock_sendall(self._sock, data[i : i + _SEND_CHUNK])

    def close_stdin(self) -> None:
        """Half-close: conmon sees EOF and closes the process's stdin; output keeps flowing."""
        if self._sock is not None and not self.closed.is_set():
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._finish()


class Attachment:
    """One API client's view of a process's stdio.

    `read()` gives `(Stream.STDOUT|STDERR, bytes)` until the process ends or the client
    detaches (then None); with a TTY everything is STDOUT. `write()` forwards stdin through
    the detach-key proxy and returns False once the client detached.
    """

    def __init__(self, hub: MonitorSocket, *, tty: bool, stdin: bool = False, stdout: bool = True,
                 stderr: bool = True, detach_keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.tty = tty
        self._hub = hub
        self._stdin, self._stdout, self._stderr = stdin, stdout, stderr
        self._proxy = EscapeProxy(detach_keys)
        self._queue: asyncio.Queue[tuple[Stream, bytes] | None] = asyncio.Queue()
        self._queued = 0  # payload bytes in the queue
        self._room = asyncio.Event()
        self._room.set()
        self.detached = False
        self.lagged = False  # dropped for not reading (see the module docstring)
        self.closed = False
        hub.add(self)

    def _deliver(self, stream: Stream, data: bytes) -> None:
        if (self._stdout if stream == Stream.STDOUT else self._stderr) and not self.closed:
            self._queue.put_nowait((stream, data))
            self._queued += len(data)
            if self._queued >= QUEUE_LIMIT:
                self._room.clear()

    def _deliver_eof(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    @property
    def backlogged(self) -> bool:
        return not self.closed and self._queued >= QUEUE_LIMIT

    async def room(self) -> None:
        await self._room.wait()

    def drop_lagging(self) -> None:
        """End this client's stream now and free what it did not read."""
        self.lagged = True
        self._hub.discard(self)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued = 0
        self._room.set()
        self._deliver_eof()

    async def read(self) -> tuple[Stream, bytes] | None:
        item = await self._queue.get()
        if item is not None:
            self._queued -= len(item[1])
            if self._queued < QUEUE_LIMIT:
                self._room.set()
        return item

    async def __aiter__(self) -> AsyncIterator[tuple[Stream, bytes]]:
        while (item := await self.read()) is not None:
            yield item

    async def write(self, data: bytes) -> bool:
        """Send stdin bytes; False (and the attachment closes) when the detach keys arrive."""
        if self.closed:
            return False
        if not self._stdin:
            return True
        out, detached = self._proxy.feed(data)
        if out:
            await self._hub.send(out)
        if detached:
            self.detached = True
            self.close()
            return False
        return True

    async def close_stdin(self) -> None:
        """The client closed its input: forward held bytes, and close stdin if StdinOnce."""
        if self._stdin and not self.closed:
            held = self._proxy.flush()
            if held:
                await self._hub.send(held)
            if self._hub.stdin_once:
                await self._hub.connected.wait()
                self._hub.close_stdin()

    def close(self) -> None:
        """Detach this client; the process keeps running."""
        self._hub.discard(self)
        self._room.set()  # a pump waiting for this client's room goes on
        self._deliver_eof()

    @property
    def process_ended(self) -> bool:
        """True when the output ended because the process exited (not a detach or a drop)."""
        return self._hub.closed.is_set() and not self.detached and not self.lagged
