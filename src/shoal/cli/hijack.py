"""Streaming a hijacked attach/exec connection to the local terminal, as docker's CLI does.

- Output: raw bytes for a TTY; otherwise docker's 8-byte frame headers are demultiplexed
  to stdout/stderr (stdcopy.StdCopy).
- Input: local stdin is copied to the connection; at EOF the write side is half-closed
  (CloseWrite) and output is read until the daemon closes.
- Detach: with a TTY the detach sequence is also watched client-side (term.EscapeProxy);
  seeing it ends the session with `Detached`, which `attach`/`exec` report as
  "read escape sequence" and `run`/`start` treat as success.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from shoal.cli.errors import CliError
from shoal.cli.rawhttp import RawConnection

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER_LEN = 8
READ_SIZE = 32 * 1024


class Detached(Exception):
    """The user typed the detach sequence; docker's term.EscapeError."""

    def __str__(self) -> str:
        return "read escape sequence"


# ---------------------------------------------------------------------------------------------
# Detach keys


def parse_detach_keys(keys: str) -> bytes:
    """term.ToBytes: `ctrl-p,ctrl-q` -> 0x10 0x11; single characters stand for themselves."""
    codes = bytearray()
    for key in keys.split(","):
        if len(key) > 1 and not key.startswith("ctrl-"):
            raise ValueError(f"Unknown character: '{key}'")
        if len(key) == 1:
            codes.append(ord(key) & 0xFF)
            continue
        name = key[len("ctrl-"):].lower()
        if len(name) != 1:
            raise ValueError(f"Unknown character: '{key}'")
        char = name
        if "a" <= char <= "z":
            codes.append(ord(char) - ord("a") + 1)
        elif char in "@[\\]^_":
            codes.append(ord(char) - ord("@"))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


def detach_bytes(keys: str) -> bytes:
    """Docker falls back to ctrl-p ctrl-q (with a warning in its log) for an invalid sequence."""
    if not keys:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(keys)
    except ValueError:
        return DEFAULT_DETACH_KEYS


class EscapeDetector:
    """Finds the detach sequence in typed input; a partial match is held until decided.

    Unlike moby's proxy (which only matches one keystroke per read), the sequence is found
    anywhere in a read, so pasted or fast-typed keys detach as they do with docker in practice.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes to forward, and whether the sequence completed (later bytes are dropped)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += self.keys[: self.matched]
            self.matched = 0
            if byte == self.keys[0]:
                self.matched = 1
                if len(self.keys) == 1:
                    self.matched = 0
                    return bytes(out), True
            else:
                out.append(byte)
        return bytes(out), False

    def flush(self) -> bytes:
        held, self.matched = self.keys[: self.matched], 0
        return held


# ---------------------------------------------------------------------------------------------
# Output framing


class Demuxer:
    """stdcopy.StdCopy, incrementally: feed bytes, get (stream, payload) pairs back."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.pending += data
        frames = []
        while len(self.pending) >= HEADER_LEN:
            stream = self.pending[0]
            size = int.from_bytes(self.pending[4:8], "big")
            if len(self.pending) < HEADER_LEN + size:
                break
            payload = self.pending[HEADER_LEN:HEADER_LEN + size]
            self.pending = self.pending[HEADER_LEN + size:]
            if stream == SYSTEMERR:
                raise CliError(f"error from daemon in stream: {payload.decode('utf-8', 'replace')}")
            if stream not in (STDIN, STDOUT, STDERR):
                raise CliError(f"Unrecognized input header: {stream}")
            frames.append((stream, payload))
        return frames


def frame(stream: int, payload: bytes) -> bytes:
    """One multiplexed frame (for tests and fakes)."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


@dataclass
class OutputSink:
    """Where container output goes: raw to `out` for a TTY, demultiplexed otherwise."""

    out: BinaryIO | None
    err: BinaryIO | None
    tty: bool
    demux: Demuxer = field(default_factory=Demuxer)

    def write(self, data: bytes) -> None:
        if self.tty:
            _write(self.out, data)
            return
        for stream, payload in self.demux.feed(data):
            _write(self.err if stream == STDERR else self.out, payload)


def _write(target: BinaryIO | None, data: bytes) -> None:
    if target is None or not data:
        return
    target.write(data)
    target.flush()


# ---------------------------------------------------------------------------------------------
# The session


@dataclass
class Session:
    """One hijacked stream: what to copy where, and who handles signals meanwhile.

    `wakeup_fd`/`on_wakeup`: a pipe the signal relay writes to; its bytes are handed to
    `on_wakeup` on this (the main) thread, so resize/kill requests never run inside a
    signal handler.
    """

    conn: RawConnection
    sink: OutputSink
    stdin: BinaryIO | None = None
    detach_keys: bytes | None = None  # client-side detection (docker does it with a TTY only)
    wakeup_fd: int | None = None
    on_wakeup: Callable[[bytes], None] | None = None
    detached: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Stream until the daemon closes the connection (or the user detaches)."""
        if self.stdin is not None:
            threading.Thread(target=self._copy_input, name="shoal-stdin", daemon=True).start()
        try:
            self._copy_output()
        finally:
            self.conn.close()
        if self.detached.is_set():
            raise Detached()

    def _copy_output(self) -> None:
        sock = self.conn.sock
        sock.settimeout(None)
        self.sink.write(self.conn.take_buffered())
        while True:
            fds = [sock] + ([self.wakeup_fd] if self.wakeup_fd is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if self.wakeup_fd is not None and self.wakeup_fd in ready:
                self._wakeup()
            if sock not in ready:
                continue
            try:
                data = sock.recv(READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                return
            self.sink.write(data)

    def _wakeup(self) -> None:
        assert self.wakeup_fd is not None
        try:
            data = os.read(self.wakeup_fd, 64)
        except BlockingIOError:
            return
        if data and self.on_wakeup is not None:
            self.on_wakeup(data)

    def _copy_input(self) -> None:
        """Local stdin -> connection; half-close at EOF; on detach, end the session."""
        assert self.stdin is not None
        escape = EscapeDetector(self.detach_keys) if self.detach_keys else None
        try:
            while data := _read_some(self.stdin):
                detach = False
                if escape is not None:
                    data, detach = escape.feed(data)
                if data:
                    self.conn.sock.sendall(data)
                if detach:
                    self.detached.set()
                    self.conn.sock.shutdown(socket.SHUT_RDWR)
                    return
            if escape is not None and (held := escape.flush()):
                self.conn.sock.sendall(held)
        except (OSError, ValueError):
            return  # the daemon closed first; the output side reports what happened
        self.conn.close_write()


def _read_some(stream: BinaryIO) -> bytes:
    """Whatever is available (one keystroke on a raw terminal), b"" at EOF."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        try:
            return os.read(fd, READ_SIZE)
        except OSError:
            return b""
    read1 = getattr(stream, "read1", None)
    return read1(READ_SIZE) if read1 is not None else stream.read(READ_SIZE)
