"""Reading container logs back from conmon's `k8s-file` log and its rotated files.

conmon writes one line per chunk: `<RFC3339Nano time> <stdout|stderr> <P|F> <bytes>\\n`,
where F marks the end of a line (the newline is implied) and P a partial chunk. Replaying
the chunks in order, with "\\n" restored after each F, gives the original byte stream.
"""

from __future__ import annotations

import asyncio
import calendar
import gzip
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.logfile import rotated
from shoal.runtime.streams import Stream

POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class LogEntry:
    stream: Stream  # STDOUT or STDERR (a TTY's output is all STDOUT)
    data: bytes
    time_ns: int  # unix time in nanoseconds

    @property
    def timestamp(self) -> str:
        """Docker's fixed-width RFC3339Nano in UTC, e.g. 2024-01-02T03:04:05.000000006Z."""
        secs, nanos = divmod(self.time_ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def parse_time_ns(text: str) -> int:
    """RFC3339 with optional fraction and a `Z` or `±HH:MM` offset -> unix nanoseconds."""
    if text.endswith("Z"):
        body, offset = text[:-1], 0
    else:
        body, sign, tz = text[:-6], text[-6], text[-5:]
        if sign not in "+-" or tz[2] != ":":
            raise ValueError(f"bad timestamp {text!r}")
        offset = (int(tz[:2]) * 3600 + int(tz[3:]) * 60) * (1 if sign == "+" else -1)
    whole, _, frac = body.partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - offset
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_line(line: bytes) -> LogEntry | None:
    """One log line (without its trailing newline); None if it is not in k8s-file format."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    data = parts[3] if len(parts) == 4 else b""
    if parts[2] == b"F":
        data += b"\n"
    try:
        when = parse_time_ns(parts[0].decode())
    except ValueError:
        return None
    return LogEntry(Stream.STDOUT if parts[1] == b"stdout" else Stream.STDERR, data, when)


CHUNK = 1 << 20  # bytes read at a time: a large log is never read into memory whole


class _LineReader:
    """Complete lines from a growing file that may be rotated away (runtime.logfile): at the
    end of the open file, a new file under the path means the old one is final, so its rest
    is read and the reader moves on. A half-written last line waits for the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = None
        self._rest = b""

    def _open(self) -> bool:
        try:
            self._f = open(self.path, "rb")  # noqa: SIM115 - kept open across calls
        except FileNotFoundError:
            return False
        return True

    def _moved_on(self) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(self._f.fileno()).st_ino
        except FileNotFoundError:
            return False  # mid-rotation: conmon has not made the new file yet

    def read(self) -> list[bytes]:
        if self._f is None and not self._open():
            return []
        chunk = self._f.read(CHUNK)
        if not chunk and self._moved_on():
            chunk = self._f.read(CHUNK)
            if not chunk:
                self.close()
                return self.read()
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        return lines

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _rotated_lines(path: Path) -> Iterator[bytes]:
    """Lines of the rotated files, oldest first, a chunk at a time."""
    for old in rotated(path):
        opener = gzip.open if old.name.endswith(".gz") else open
        try:
            with opener(old, "rb") as f:
                rest = b""
                while chunk := f.read(CHUNK):
                    lines = (rest + chunk).split(b"\n")
                    rest = lines.pop()
                    yield from lines
        except (FileNotFoundError, OSError, EOFError):
            continue  # rotated out (or half compressed) while we read


def _wanted(entry: LogEntry, since_ns: int, until_ns: int | None) -> bool:
    return entry.time_ns >= since_ns and (until_ns is None or entry.time_ns < until_ns)


def _backlog(path: Path, reader: _LineReader, since_ns: int, until_ns: int | None) -> Iterator[LogEntry]:
    def lines() -> Iterator[bytes]:
        yield from _rotated_lines(path)
        while batch := reader.read():
            yield from batch
    for entry in map(parse_line, lines()):
        if entry and _wanted(entry, since_ns, until_ns):
            yield entry


async def read_log(path: Path, *, follow: bool = False, since: float = 0, until: float | None = None,
                   tail: int | None = None, is_running: Callable[[], bool] = lambda: False
                   ) -> AsyncIterator[LogEntry]:
    """Entries in order, rotated files first; `since`/`until` are unix seconds, `tail` keeps
    the last N entries. Memory stays bounded (a chunk, or the tail) however big the log.

    With `follow`, waits for more output until `is_running()` turns false and the file is drained.
    """
    since_ns = int(since * 1e9)
    until_ns = int(until * 1e9) if until is not None else None
    reader = _LineReader(path)
    try:
        backlog = _backlog(path, reader, since_ns, until_ns)
        if tail is not None and tail >= 0:
            backlog = iter(deque(backlog, maxlen=tail))
        for entry in backlog:
            yield entry
        while follow:
            running = is_running()
            lines = reader.read()
            for entry in map(parse_line, lines):
                if entry and _wanted(entry, since_ns, until_ns):
                    yield entry
            if not lines and not running:
                return
            if not lines:
                await asyncio.sleep(POLL_INTERVAL)
    finally:
        reader.close()
