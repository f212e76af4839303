"""HTTP/1.1 over a plain socket, for the calls httpx cannot make.

Attach and exec hijack the connection (`101 UPGRADED`, then raw bytes both ways), and wait,
logs, pull and import stream bodies while the command is already doing other things. Those
need the socket itself, so this module speaks just enough HTTP/1.1: one request per
connection, content-length / chunked / close-delimited bodies, and docker's error mapping.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator
from urllib.parse import urlencode, urlsplit

from shoal import __version__
from shoal.cli.client import START_HINT, Endpoint
from shoal.cli.errors import CliError, DaemonError, DaemonUnreachable

UPLOAD_CHUNK = 1 << 16
Query = list[tuple[str, str]]


def encode_query(query: Query | None) -> str:
    """Go's url.Values.Encode: keys sorted, values in insertion order, `+` for spaces."""
    if not query:
        return ""
    ordered = sorted(query, key=lambda kv: kv[0])  # stable: repeated keys keep their order
    return "?" + urlencode(ordered)


@dataclass
class Head:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def connect(endpoint: Endpoint, timeout: float | None = None) -> socket.socket:
    """Open the daemon's socket (unix, or tcp for tcp:// hosts) with docker-style errors."""
    try:
        if endpoint.uds is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout if timeout is not None else 5.0)
            sock.connect(endpoint.uds)
        else:
            parts = urlsplit(endpoint.base_url)
            if parts.scheme != "http":
                raise CliError(f"streaming calls need plain HTTP; {endpoint.host} is not supported")
            sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5.0)
        sock.settimeout(timeout)
        return sock
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DaemonUnreachable(
            f"Cannot connect to the shoal daemon at {endpoint.host} ({reason}). Is shoald running?\n{START_HINT}"
        ) from None


class RawConnection:
    """One request on its own connection; the body (or the hijacked stream) is read lazily."""

    def __init__(self, endpoint: Endpoint, timeout: float | None = None) -> None:
        self.endpoint = endpoint
        self.sock = connect(endpoint, timeout)
        self._buf = b""
        self._eof = False
        self.target = ""

    # -- sending -------------------------------------------------------------------------

    def send(self, method: str, target: str, *, headers: dict[str, str] | None = None,
             body: bytes | BinaryIO | None = None) -> None:
        """Write the request; a file body is streamed with chunked encoding."""
        self.target = target
        lines = [f"{method} {target} HTTP/1.1", "Host: localhost", f"User-Agent: shoal-cli/{__version__}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is None or isinstance(body, bytes):
            lines.append(f"Content-Length: {len(body or b'')}")
            self._sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
            return
        lines.append("Transfer-Encoding: chunked")
        self._sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while chunk := body.read(UPLOAD_CHUNK):
            self._sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self._sendall(b"0\r\n\r\n")

    def _sendall(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise CliError(f"error sending request to the daemon: {exc}") from None

    # -- reading -------------------------------------------------------------------------

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            data = self.sock.recv(UPLOAD_CHUNK)
        except OSError:
            data = b""
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise CliError("unexpected EOF from the daemon")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _read_exact(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                raise CliError("unexpected EOF from the daemon")
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def read_head(self) -> Head:
        status_line = self._read_line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise CliError(f"malformed response from the daemon: {status_line!r}")
        head = Head(int(parts[1]), parts[2] if len(parts) > 2 else "")
        while line := self._read_line():
            key, _, value = line.decode("latin-1").partition(":")
            head.headers[key.strip().lower()] = value.strip()
        return head

    def iter_body(self, head: Head) -> Iterator[bytes]:
        """The body as it arrives: by Content-Length, chunked, or until the server closes."""
        if head.status in (204, 304) or head.status < 200:
            return
        if head.headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self._read_line().split(b";")[0] or b"0", 16):
                yield self._read_exact(size)
                self._read_line()
            while self._read_line():  # trailers
                pass
            return
        if "content-length" in head.headers:
            remaining = int(head.headers["content-length"])
            while remaining > 0:
                if not self._buf and not self._fill():
                    raise CliError("unexpected EOF from the daemon")
                data, self._buf = self._buf[:remaining], self._buf[remaining:]
                remaining -= len(data)
                yield data
            return
        yield from self.iter_raw()

    def iter_raw(self) -> Iterator[bytes]:
        """What follows the head on a hijacked or close-delimited response, until EOF."""
        while True:
            if self._buf:
                data, self._buf = self._buf, b""
                yield data
            elif not self._fill():
                return

    def take_buffered(self) -> bytes:
        """Bytes already read past the head (the start of a hijacked stream)."""
        data, self._buf = self._buf, b""
        return data

    def read_body(self, head: Head) -> bytes:
        return b"".join(self.iter_body(head))

    def check(self, head: Head) -> Head:
        """Raise docker's `Error response from daemon: ...` for an HTTP error status."""
        if head.status < 400:
            return head
        raise daemon_error(head, self.read_body(head), self.target)

    def close_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def daemon_error(head: Head, body: bytes, target: str = "") -> DaemonError:
    """The same mapping as ApiClient: JSON `message` only for exactly application/json."""
    message = None
    if head.content_type.split(";")[0].strip().lower() == "application/json":
        try:
            payload = json.loads(body)
            message = payload.get("message") if isinstance(payload, dict) else None
        except ValueError:
            message = None
    if message is None:
        message = body.decode("utf-8", "replace").strip()
    if not message:
        message = (f"request returned {head.reason or head.status} for API route and version {target}, "
                   "check if the server supports the requested API version")
    return DaemonError(head.status, f"Error response from daemon: {message}")


def request(endpoint: Endpoint, method: str, target: str, *, headers: dict[str, str] | None = None,
            body: bytes | BinaryIO | None = None, timeout: float | None = None) -> tuple[RawConnection, Head]:
    """Send one request and read its head; errors are raised, the body is left to the caller."""
    conn = RawConnection(endpoint, timeout)
    try:
        conn.send(method, target, headers=headers, body=body)
        return conn, conn.check(conn.read_head())
    except BaseException:
        conn.close()
        raise


def hijack(endpoint: Endpoint, target: str, body: bytes | None = None) -> RawConnection:
    """POST with `Upgrade: tcp` and require docker's `101 UPGRADED`, like the Go client."""
    headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
    headers["Content-Type"] = "application/json" if body is not None else "text/plain"
    conn, head = request(endpoint, "POST", target, headers=headers, body=body)
    if head.status != 101:
        conn.close()
        raise CliError(f"unable to upgrade to tcp, received {head.status}")
    return conn


def json_lines(conn: RawConnection, head: Head) -> Iterator[dict]:
    """Decode a stream of JSON objects (pull/import progress), one per line."""
    pending = b""
    for chunk in conn.iter_body(head):
        pending += chunk
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            if line.strip():
                yield _json_object(line)
    if pending.strip():
        yield _json_object(pending)


def _json_object(line: bytes) -> dict:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise CliError(f"invalid JSON from daemon: {exc}") from None
    return value if isinstance(value, dict) else {}
