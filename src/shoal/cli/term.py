"""The local terminal during attach/exec/run: raw mode, window size, relayed signals.

Docker puts stdin in raw mode (cfmakeraw) only for a TTY session with stdin attached, and
restores it before printing anything else; window changes (SIGWINCH) become resize calls,
and without a TTY, signals such as SIGINT are forwarded to the container (sig-proxy).
Signal handlers only write to a pipe: the streaming loop does the HTTP work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
from typing import BinaryIO, Iterator

# Signals docker's sig-proxy forwards that a CLI user can realistically send.
PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
WINCH = signal.SIGWINCH


def fd_of(stream: BinaryIO | None) -> int | None:
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, OSError, ValueError):
        return None


def is_terminal(stream: BinaryIO | None) -> bool:
    fd = fd_of(stream)
    return fd is not None and os.isatty(fd)


def tty_size(stream: BinaryIO | None) -> tuple[int, int]:
    """(height, width) of the terminal behind `stream`; (0, 0) when it is not one."""
    fd = fd_of(stream)
    if fd is None or not os.isatty(fd):
        return 0, 0
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return 0, 0
    return rows, cols


def check_tty(stdin: BinaryIO | None, attach_stdin: bool, tty_mode: bool) -> str | None:
    """docker's In().CheckTty: a TTY session reading stdin needs a terminal there."""
    if tty_mode and attach_stdin and not is_terminal(stdin):
        return "the input device is not a TTY"
    return None


def make_raw(attrs: list) -> list:
    """moby/term MakeRaw (cfmakeraw): no echo, no line editing, no signals, no output processing."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
               | termios.IGNCR | termios.ICRNL | termios.IXON)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


@contextlib.contextmanager
def raw_terminal(stream: BinaryIO | None, enabled: bool) -> Iterator[None]:
    """Raw mode for the duration (moby/term MakeRaw == cfmakeraw); NORAW disables it."""
    fd = fd_of(stream)
    if not enabled or fd is None or not os.isatty(fd) or os.environ.get("NORAW"):
        yield
        return
    saved = termios.tcgetattr(fd)
    termios.tcsetattr(fd, termios.TCSANOW, make_raw(saved))
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


class SignalRelay:
    """Route signals into a non-blocking pipe, one byte (the signal number) per signal.

    Usable only on the main thread (Python's rule for handlers); elsewhere it relays nothing,
    which is also what docker does when it cannot watch a signal.
    """

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals = signals
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._saved: dict[int, object] = {}

    def _handler(self, signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(self.write_fd, bytes([signum]))

    def __enter__(self) -> "SignalRelay":
        for signum in self.signals:
            try:
                self._saved[signum] = signal.signal(signum, self._handler)
            except (ValueError, OSError):  # not the main thread, or not catchable
                continue
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._saved.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, previous)  # type: ignore[arg-type]
        os.close(self.read_fd)
        os.close(self.write_fd)


def _binary(stream: object) -> BinaryIO:
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()  # text already echoed must come out before raw bytes
    return getattr(stream, "buffer", stream)  # type: ignore[return-value]


def stdio() -> tuple[BinaryIO, BinaryIO, BinaryIO]:
    """The binary standard streams (the ones click's test runner also swaps in)."""
    return _binary(sys.stdin), _binary(sys.stdout), _binary(sys.stderr)


def broken_pipe() -> int:
    """Our stdout's reader went away (`shoal logs -f c | head -1`): silence the final flush
    and end like a Go program killed by SIGPIPE would."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + signal.SIGPIPE
