"""What run, attach, start -a and exec share: the wait call, the hijacked session, resizes.

Order matters to the daemon and mirrors docker: attach (hijack) first, then
`wait?condition=...` (its headers arrive at once, the body at exit), then start, then the
initial resize; SIGWINCH resizes and, without a TTY, forwarded signals run on the main
thread from a pipe while output streams.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import click

from shoal.cli.client import path_segment
from shoal.cli.cmdutil import AppContext
from shoal.cli.errors import CliError
from shoal.cli.hijack import OutputSink, Session
from shoal.cli.rawhttp import Query, RawConnection, encode_query, hijack, request
from shoal.cli.term import PROXIED_SIGNALS, WINCH, SignalRelay, broken_pipe, is_terminal, raw_terminal, tty_size

WAIT_FAILED = 125  # docker's status when the wait call itself fails
INTERRUPTED = 130
FORCE_EXIT_SIGNALS = 3


class Api:
    """Versioned paths plus the raw-socket calls, for one command invocation."""

    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.client = app.client()

    def target(self, path: str, query: Query | None = None) -> str:
        return self.client.prefix() + path + encode_query(query)

    def hijack(self, path: str, query: Query | None = None, body: dict[str, Any] | None = None) -> RawConnection:
        data = json.dumps(body, separators=(",", ":")).encode() + b"\n" if body is not None else None
        return hijack(self.client.endpoint, self.target(path, query), data)

    def stream(self, method: str, path: str, query: Query | None = None, body: BinaryIO | bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[RawConnection, Any]:
        return request(self.client.endpoint, method, self.target(path, query), body=body, headers=headers)

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.client.get_json(f"/containers/{path_segment(ref)}/json") or {}

    def resize(self, ref: str, size: tuple[int, int], is_exec: bool = False) -> None:
        """resizeTTYTo: nothing for a 0x0 size; failures are only logged by docker."""
        height, width = size
        if not height and not width:
            return
        kind = "exec" if is_exec else "containers"
        try:
            self.client.request("POST", f"/{kind}/{path_segment(ref)}/resize", params={"h": str(height), "w": str(width)})
        except CliError:
            pass

    def kill(self, ref: str, signum: int) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")
        try:
            self.client.request("POST", f"/containers/{path_segment(ref)}/kill", params={"signal": name})
        except CliError:
            pass


class Waiter:
    """`POST /containers/{id}/wait`: sent now, answered when the condition is met."""

    def __init__(self, api: Api, ref: str, condition: str = "") -> None:
        query = [("condition", condition)] if condition else None
        self.conn, self.head = api.stream("POST", f"/containers/{path_segment(ref)}/wait", query)

    def result(self) -> int:
        """The exit status; an `Error` in the answer or a broken stream is a CliError."""
        try:
            body = self.conn.read_body(self.head)
        finally:
            self.conn.close()
        try:
            answer = json.loads(body)
        except ValueError:
            raise CliError(f"error waiting for container: unexpected answer {body[:80]!r}", WAIT_FAILED) from None
        error = (answer.get("Error") or {}).get("Message") if isinstance(answer, dict) else None
        if error:
            raise CliError(error, WAIT_FAILED)
        return int(answer.get("StatusCode") or 0)

    def close(self) -> None:
        self.conn.close()


def attach_query(stdin: bool, detach_keys: str, logs: bool = False) -> Query:
    query = [("stream", "1"), ("stdout", "1"), ("stderr", "1")]
    if stdin:
        query.append(("stdin", "1"))
    if logs:
        query.append(("logs", "1"))
    if detach_keys:
        query.append(("detachKeys", detach_keys))
    return query


@dataclass
class Terminal:
    """The local side of a session: streams, TTY mode, detach keys, what signals do."""

    stdin: BinaryIO | None
    stdout: BinaryIO
    stderr: BinaryIO
    tty: bool
    detach_keys: bytes | None = None
    resize: Callable[[tuple[int, int]], None] | None = None  # set when the size should follow ours
    kill: Callable[[int], None] | None = None  # set for sig-proxy
    interrupts: int = 0

    def signals(self) -> tuple[int, ...]:
        wanted: tuple[int, ...] = ()
        if self.resize is not None:
            wanted += (WINCH,)
        if self.kill is not None:
            wanted += PROXIED_SIGNALS
        return wanted

    def on_signals(self, data: bytes) -> None:
        for signum in data:
            if signum == WINCH and self.resize is not None:
                self.resize(tty_size(self.stdout))
                continue
            if self.kill is not None:
                self.kill(signum)
            if signum in (signal.SIGINT, signal.SIGTERM):
                self.interrupts += 1
                if self.interrupts >= FORCE_EXIT_SIGNALS:  # docker's way out of a container ignoring them
                    click.echo(f"got {FORCE_EXIT_SIGNALS} SIGTERM/SIGINTs, forcefully exiting", err=True)
                    raise CliError("", INTERRUPTED)

    def stream(self, conn: RawConnection, relay: SignalRelay) -> None:
        """Copy until the daemon closes; raw mode only for a TTY reading stdin (docker's rule)."""
        sink = OutputSink(self.stdout, self.stdout if self.tty else self.stderr, self.tty)
        raw = self.tty and self.stdin is not None
        try:
            with raw_terminal(self.stdin, raw):
                Session(conn, sink, self.stdin, self.detach_keys if raw else None,
                        relay.read_fd, self.on_signals).run()
        except KeyboardInterrupt:  # a TTY session does not proxy SIGINT: it ends the CLI
            raise CliError("", INTERRUPTED) from None
        except BrokenPipeError:
            raise CliError("", broken_pipe()) from None


def follows_size(tty: bool, stream: BinaryIO) -> bool:
    """Docker resizes (now and on SIGWINCH) only for a TTY session on a terminal."""
    return tty and is_terminal(stream)
