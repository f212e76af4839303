"""Log drivers and json-file rotation (`--log-opt max-size=10m --log-opt max-file=3`).

conmon writes the log (so it survives a daemon restart) and cannot rotate it: its own size
limit replaces the file and loses the old lines. So the daemon rotates, as dockerd's json-file
driver names it (daemon/logger/loggerutils/logfile.go, read): the live file, then `.1` (the
newest rotated), `.2` ... up to `max-file - 1`, each `.gz` with `compress=true`. The file
is renamed away while conmon still writes to it and conmon is then asked (its ctl fifo,
message 2) to reopen its log path, so no line is lost and each file holds a contiguous run.

Checked as dockerd does (measured against dockerd 20.10): the driver and the option names at
create (400), the values at start (500, "failed to initialize logging driver: ...").
dockerd rotates before the write that would cross max-size; this daemon looks at the size
every `POLL_INTERVAL`, so the live file may pass max-size by what was written meanwhile.
A rotated file that grew well past it (a burst) is cut at lines into pieces of at most
max-size, the newest kept, and so is the live file once the container stopped (`settle`),
so that each file ends up about max-size and at most max-file of them stay, as in dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import InvalidParameter, ShoalError

POLL_INTERVAL = 0.1
DRIVERS = ("json-file", "local", "none")
_OPTS = {
    "json-file": ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"),
    "local": ("max-file", "max-size", "compress"),
    "none": (),
}
# dockerd's other built-in drivers: known names that shoal does not implement
OTHER_DRIVERS = ("syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "gcplogs", "logentries")
_SIZE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class LogPolicy:
    driver: str = "json-file"
    max_size: int = -1  # bytes; -1: never rotate
    max_file: int = 1
    compress: bool = False

    @property
    def enabled(self) -> bool:
        return self.driver != "none"

    def to_json(self) -> dict:
        return {"driver": self.driver, "max_size": self.max_size, "max_file": self.max_file,
                "compress": self.compress}

    @classmethod
    def from_json(cls, data: dict | None) -> LogPolicy:
        return cls(**data) if data else cls()


def check_log_config(log_config: dict | None) -> None:
    """What dockerd refuses at create: an unknown driver, an option the driver does not take."""
    driver = (log_config or {}).get("Type") or "json-file"
    if driver in OTHER_DRIVERS:
        raise InvalidParameter(f'logging driver "{driver}" is not supported by shoal: use json-file, local '
                               'or none (docker logs reads json-file and local)')
    if driver not in DRIVERS:
        raise InvalidParameter(f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    for key in (log_config or {}).get("Config") or {}:
        if key not in _OPTS[driver]:
            raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_size(text: str) -> int:
    """go-units FromHumanSize: decimal units, `10k`, `1.5m`, `10 kb`."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid size: '{text}'")
    try:
        number = float(m.group(1))
    except ValueError:
        raise ValueError(f"strconv.ParseFloat: parsing {_go_quote(m.group(1))}: invalid syntax") from None
    return int(number * _UNITS[(m.group(2) or "").lower()])


def _policy(driver: str, opts: dict[str, str]) -> LogPolicy:
    if driver == "none":
        return LogPolicy(driver="none")
    local = driver == "local"  # daemon/logger/local: 20 MB, 5 files, compressed by default
    max_size = 20 * 10**6 if local else -1
    if "max-size" in opts:
        max_size = parse_size(opts["max-size"])
        if max_size <= 0:
            raise ValueError("max-size must be a positive number")
    max_file = 5 if local else 1
    if "max-file" in opts:
        raw = opts["max-file"]
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise ValueError(f"strconv.Atoi: parsing {_go_quote(raw)}: invalid syntax")
        max_file = int(raw)
        if max_file < 1:
            raise ValueError("max-file cannot be less than 1")
    compress = local
    if "compress" in opts:
        raw = opts["compress"]
        if raw not in _TRUE + _FALSE:
            raise ValueError(f"strconv.ParseBool: parsing {_go_quote(raw)}: invalid syntax")
        compress = raw in _TRUE
        if compress and (max_file == 1 or max_size == -1):
            raise ValueError("compress cannot be true when max-file is less than 2 or max-size is not set")
    return LogPolicy(driver=driver, max_size=max_size, max_file=max_file, compress=compress and max_file > 1)


def log_policy(log_config: dict | None) -> LogPolicy:
    """The values, checked when the container starts, as dockerd's driver does (500)."""
    check_log_config(log_config)
    driver = (log_config or {}).get("Type") or "json-file"
    try:
        return _policy(driver, dict((log_config or {}).get("Config") or {}))
    except ValueError as exc:
        raise ShoalError(f"failed to initialize logging driver: {exc}") from None


def rotated(path: Path, max_files: int | None = None) -> list[Path]:
    """The rotated files that exist, oldest first (`.N` ... `.1`, plain or `.gz`)."""
    found: dict[int, Path] = {}
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)(\.gz)?")
    with contextlib.suppress(FileNotFoundError):
        for entry in path.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and (max_files is None or int(m.group(1)) < max_files):
                found.setdefault(int(m.group(1)), entry)
    return [found[n] for n in sorted(found, reverse=True)]


def _number(path: Path, entry: Path) -> int:
    return int(entry.name[len(path.name) + 1:].removesuffix(".gz"))


def _shift(path: Path, policy: LogPolicy, by: int) -> None:
    """Move every rotated `.k` to `.k+by`, dropping those that would pass max-file - 1."""
    for old in rotated(path):  # oldest (highest) first, so no rename lands on a file still there
        n = _number(path, old)
        if n + by > policy.max_file - 1:
            old.unlink(missing_ok=True)
        elif by:
            old.rename(path.with_name(f"{path.name}.{n + by}" + (".gz" if old.name.endswith(".gz") else "")))


def _line_start(f, start: int, end: int) -> int:  # noqa: ANN001 - a binary file
    """The first line start at or after `start` (else the one before `end`), for cuts at lines."""
    f.seek(start - 1)
    window = f.read(end - start)
    at = window.find(b"\n")
    if 0 <= at < len(window) - 1:
        return start + at
    pos = start - 1  # one line longer than a piece: keep the whole line
    while pos > 0:
        step = min(pos, 65536)
        f.seek(pos - step)
        back = f.read(step).rfind(b"\n")
        if back >= 0:
            return pos - step + back + 1
        pos -= step
    return 0


def _cuts(f, size: int, max_size: int, count: int) -> list[tuple[int, int]]:  # noqa: ANN001
    """Up to `count` byte ranges from the end of a file, each at most max-size (cut at
    lines), newest first."""
    cuts: list[tuple[int, int]] = []
    end = size
    while end > 0 and len(cuts) < count:
        start = 0 if end <= max_size else _line_start(f, end - max_size, end)
        cuts.append((start, end))
        end = start
    return cuts


def _pieces(src: Path, path: Path, max_size: int, count: int) -> list[Path]:
    """Copy the last `count` pieces of `src` to hidden files, newest first."""
    out = []
    with open(src, "rb") as f:
        for i, (start, end) in enumerate(_cuts(f, src.stat().st_size, max_size, count)):
            tmp = path.with_name(f".{path.name}.piece{i}")
            f.seek(start)
            with open(tmp, "wb") as dst:
                left = end - start
                while left > 0 and (block := f.read(min(left, 1 << 20))):
                    dst.write(block)
                    left -= len(block)
            out.append(tmp)
    return out


def _split_first(path: Path, policy: LogPolicy) -> list[Path]:
    """`.1`, which no one writes to any more, in pieces of at most max-size when it grew
    well past it (a burst between two looks): `.1` the newest piece, older files moved up.
    Returns the rotated files made."""
    first = path.with_name(path.name + ".1")
    if first.stat().st_size <= 2 * policy.max_size:
        return [first]
    pieces = _pieces(first, path, policy.max_size, policy.max_file - 1)
    first.unlink()
    _shift(path, policy, len(pieces) - 1)
    made = []
    for i, tmp in enumerate(pieces):
        made.append(tmp.rename(path.with_name(f"{path.name}.{i + 1}")))
    return made


def settle(path: Path, policy: LogPolicy) -> None:
    """After the container stopped (no conmon writes): the live file's rotation, had it
    been looked at in time. Blocking: run it in a thread."""
    if policy.max_size <= 0 or not policy.enabled:
        return
    try:
        if path.stat().st_size <= policy.max_size:
            return
    except FileNotFoundError:
        return
    if policy.max_file < 2:
        _pieces(path, path, policy.max_size, 1)[0].replace(path)
        return
    _shift(path, policy, 1)
    path.rename(path.with_name(path.name + ".1"))
    path.touch()  # the live file is always there, as after dockerd's rotation (empty until a next run)
    for made in _split_first(path, policy):
        if policy.compress:
            _compress(made)


def _compress(src: Path) -> None:
    dst = src.with_name(src.name + ".gz")
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, "rb") as fin, gzip.open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    tmp.replace(dst)
    src.unlink(missing_ok=True)


def _reopen(ctl: Path) -> bool:
    """conmon's REOPEN_LOGS_EVENT; False if no conmon listens (the container stopped)."""
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.write(fd, b"2 0 0\n")
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


async def rotate(path: Path, ctl: Path, policy: LogPolicy) -> None:
    """One rotation of a live log that conmon writes to."""
    if policy.max_file < 2:  # one file: conmon's reopen truncates it
        _reopen(ctl)
        return
    _shift(path, policy, 1)
    path.rename(path.with_name(path.name + ".1"))
    if not _reopen(ctl):
        return
    for _ in range(200):  # conmon closes the old file before it renames the new one in
        if path.exists():
            break
        await asyncio.sleep(0.01)
    else:
        return  # conmon may still write to `.1`: leave it whole and uncompressed
    for made in await asyncio.to_thread(_split_first, path, policy):
        if policy.compress:
            await asyncio.to_thread(_compress, made)


async def keep_rotated(path: Path, ctl: Path, policy: LogPolicy, running) -> None:  # noqa: ANN001
    """While `running()`: rotate whenever the live file reached max-size."""
    if policy.max_size <= 0 or not policy.enabled:
        return
    while running():
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= policy.max_size:
            with contextlib.suppress(OSError):
                await rotate(path, ctl, policy)
        await asyncio.sleep(POLL_INTERVAL)
