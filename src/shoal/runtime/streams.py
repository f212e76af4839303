"""Docker's stdio stream framing and detach keys, kept free of I/O so they test in isolation.

Framing (attach, exec and logs without a TTY): an 8-byte header `[stream, 0, 0, 0, size as
big-endian u32]` before each payload; stream 0 is stdin (echoed), 1 stdout, 2 stderr. With a
TTY there is no framing at all: the bytes are the raw PTY output.

Detach keys: `ctrl-p,ctrl-q` by default (bytes 0x10 0x11). The daemon watches an attached
client's stdin for the sequence; a prefix that does not complete it is passed through.
"""

from __future__ import annotations

import enum
import struct

from shoal.errors import InvalidParameter

HEADER = struct.Struct(">BxxxI")
DEFAULT_DETACH_KEYS = b"\x10\x11"

# Index = byte value; the same table as moby/term's ToBytes.
_CTRL_NAMES = ["ctrl-@"] + [f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)] + [
    "ctrl-[",
    "ctrl-\\",
    "ctrl-]",
    "ctrl-^",
    "ctrl-_",
]


class Stream(enum.IntEnum):
    """Stream numbers as Docker puts them in frame headers."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2


def frame(stream: Stream | int, data: bytes) -> bytes:
    """One multiplexed frame: header plus payload."""
    return HEADER.pack(int(stream), len(data)) + data


class FrameDecoder:
    """Splits a multiplexed byte stream back into (stream, payload) pairs; feed it any chunking."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Stream, bytes]]:
        self._buf += data
        out: list[tuple[Stream, bytes]] = []
        while len(self._buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER.size + size:
                break
            out.append((Stream(kind), bytes(self._buf[HEADER.size : HEADER.size + size])))
            del self._buf[: HEADER.size + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buf)


def parse_detach_keys(keys: str | None) -> bytes:
    """`ctrl-p,ctrl-q` -> b"\\x10\\x11"; single characters stand for themselves; empty = default."""
    if not keys:
        return DEFAULT_DETACH_KEYS
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1 and ord(key) < 256:
            codes.append(ord(key))
        elif key in _CTRL_NAMES:
            codes.append(_CTRL_NAMES.index(key))
        else:
            raise InvalidParameter(f"Invalid detach keys ({keys}) provided")
    return bytes(codes)


class EscapeProxy:
    """Watches stdin for the detach sequence.

    `feed` returns the bytes to forward and whether the sequence completed; bytes after a
    completed sequence are dropped (the session ends). A partial match is held back until
    the next byte decides, then forwarded unchanged if it was not the sequence.
    """

    def __init__(self, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.keys = keys
        self._matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self._matched]:
                self._matched += 1
            else:
                out += self.keys[: self._matched]
                self._matched = 1 if byte == self.keys[0] else 0
                if not self._matched:
                    out.append(byte)
            if self._matched == len(self.keys):
                self._matched = 0
                return bytes(out), True
        return bytes(out), False

    def flush(self) -> bytes:
        """At end of input: give back a held partial match."""
        held, self._matched = self.keys[: self._matched], 0
        return held
