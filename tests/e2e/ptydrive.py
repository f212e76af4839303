"""Drive an interactive command through a pseudo-terminal, as a person at a keyboard."""

from __future__ import annotations

import os
import pty
import select
import time


def drive(argv: list[str], steps: list[tuple[bytes, bytes]], env: dict | None = None,
          timeout: float = 20) -> tuple[bytes, int | None]:
    """Each step waits until `expect` appears in the output (b"" = no wait), then types `send`.
    Returns everything printed and the exit status (None if it did not exit in time)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env or os.environ)
    out, seen = b"", 0
    deadline = time.monotonic() + timeout
    pending = list(steps)
    status = None
    while time.monotonic() < deadline:
        if pending and pending[0][0] in out[seen:]:
            expect, send = pending.pop(0)
            seen = out.index(expect, seen) + len(expect)
            os.write(fd, send)
            continue
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            out += data
            if data:
                continue
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    os.close(fd)
    return out, status
