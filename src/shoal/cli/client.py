"""HTTP client for the daemon's Docker Engine API, with docker-style error mapping.

Commands only ever see decoded JSON or a `CliError`: daemon errors become
`Error response from daemon: <message>` (as the docker CLI prints them) and transport failures
become one actionable "daemon not running" message instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator
from urllib.parse import quote, urlsplit

import httpx

from shoal import __version__
from shoal.cli.errors import CliError, DaemonError, DaemonUnreachable

DEFAULT_HOST = "unix:///run/shoal/shoal.sock"
START_HINT = (
    "Start it as root with `scripts/setup` (installs and starts it) or `.venv/bin/shoald`,\n"
    "or point -H/--host (or SHOAL_HOST) at a running daemon."
)
DEFAULT_TCP_PORT = 2375
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
# The highest API version this CLI speaks; like the docker CLI it uses min(this, daemon's).
# 1.50 is what the docker 28.2 CLI negotiates, so both print the same objects (e.g. no
# `Status` in network inspect, which arrived in 1.52). Raise it when the CLI needs newer fields.
CLIENT_API_VERSION = "1.50"


@dataclass(frozen=True)
class Endpoint:
    """Where the daemon listens: `host` as the user wrote it, plus how to reach it."""

    host: str
    base_url: str
    uds: str | None = None


def parse_host(host: str) -> Endpoint:
    """Accept docker's -H forms: unix:///path, /path, tcp://host[:port], http(s)://host[:port]."""
    host = host.strip()
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path:
            raise CliError(f"invalid host {host!r}: missing socket path")
        return Endpoint(host, "http://localhost", uds=path)
    if host.startswith("/"):
        return Endpoint(host, "http://localhost", uds=host)
    scheme, _, rest = host.partition("://")
    if not rest or scheme not in ("tcp", "http", "https"):
        raise CliError(f"invalid host {host!r}: use unix:///path/to.sock or tcp://host:port")
    parts = urlsplit(f"{'https' if scheme == 'https' else 'http'}://{rest}")
    if not parts.hostname:
        raise CliError(f"invalid host {host!r}: missing host name")
    try:
        port = parts.port or DEFAULT_TCP_PORT
    except ValueError:
        raise CliError(f"invalid host {host!r}: bad port") from None
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Endpoint(host, f"{parts.scheme}://{name}:{port}{parts.path.rstrip('/')}")


def encode_filters(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The Go CLI's filter encoding: `{"key":{"value":true}}`, keys sorted like Go's json."""
    grouped: dict[str, dict[str, bool]] = {}
    for key, value in pairs:
        grouped.setdefault(key, {})[value] = True
    if not grouped:
        return None
    ordered = {k: {v: True for v in sorted(grouped[k])} for k in sorted(grouped)}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json_body(body: Any) -> bytes:
    """Encode a request body exactly as Go's json.Encoder does (the docker CLI's wire bytes):
    compact, HTML characters escaped, trailing newline. Those characters only occur inside
    strings in JSON text, so replacing them everywhere is safe."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return (text + "\n").encode()


def path_segment(value: str) -> str:
    """Quote a name or ID for use as one URL path segment."""
    return quote(value, safe="")


class ApiClient:
    """A thin httpx wrapper: one connection pool per CLI invocation, errors mapped for humans."""

    def __init__(
        self,
        host: str,
        transport: httpx.BaseTransport | None = None,
        api_version: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.endpoint = parse_host(host)
        if transport is None:
            transport = _default_transport(self.endpoint)
        self._version = api_version  # pinned (no negotiation) when given
        self._negotiated = api_version is not None
        self._http = httpx.Client(
            base_url=self.endpoint.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": f"shoal-cli/{__version__}"},
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------

    def prefix(self) -> str:
        """`/v1.xx` for every request, negotiated once per client like the docker CLI does."""
        if not self._negotiated:
            self._negotiated = True
            self._version = self._negotiate()
        return f"/v{self._version}" if self._version else ""

    def _negotiate(self) -> str | None:
        """HEAD /_ping (GET if HEAD is refused); no Api-Version header means unversioned paths."""
        try:
            response = self._http.head("/_ping")
            if response.status_code != 200:
                response = self._http.get("/_ping")
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        server = response.headers.get("Api-Version", "")
        if not re.fullmatch(r"\d+\.\d+", server):
            return None
        return min(server, CLIENT_API_VERSION, key=lambda v: tuple(int(p) for p in v.split(".")))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send one request; raise DaemonError for HTTP errors, DaemonUnreachable for transport ones."""
        kwargs: dict[str, Any] = {"params": {k: v for k, v in (params or {}).items() if v is not None}}
        if body is not None:
            kwargs["content"] = go_json_body(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._http.request(method, self.prefix() + path, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._daemon_error(response)
        return response

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, params: dict[str, str] | None = None,
               content: Any = None, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A request whose body (bytes or an iterator of them) and answer are streamed (docker
        cp's tars); HTTP errors raise DaemonError as in `request`."""
        try:
            with self._http.stream(method, self.prefix() + path, params=params, content=content,
                                   headers=headers, timeout=httpx.Timeout(None)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._daemon_error(response)
                yield response
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        return _decode(self.request("GET", path, params=params))

    def get_text(self, path: str, params: dict[str, str] | None = None) -> str:
        """The raw body, for output that must preserve the daemon's exact JSON text."""
        return self.request("GET", path, params=params).text

    def post_json(self, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        return _decode(self.request("POST", path, params=params, body=body))

    def delete(self, path: str, params: dict[str, str] | None = None) -> None:
        self.request("DELETE", path, params=params)

    # -- error mapping --------------------------------------------------------------------

    def _daemon_error(self, response: httpx.Response) -> DaemonError:
        message = None
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "application/json":
            try:
                payload = response.json()
                message = payload.get("message") if isinstance(payload, dict) else None
            except ValueError:
                message = None
        if message is None:
            message = response.text.strip()
        if not message:
            message = (
                f"request returned {response.reason_phrase or response.status_code} for API route and "
                f"version {response.request.url}, check if the server supports the requested API version"
            )
        return DaemonError(response.status_code, f"Error response from daemon: {message}")

    def _transport_error(self, exc: httpx.TransportError) -> CliError:
        host = self.endpoint.host
        if isinstance(exc, httpx.TimeoutException):
            return DaemonUnreachable(f"Timed out talking to the shoal daemon at {host}.")
        if not isinstance(exc, httpx.ConnectError):
            return DaemonUnreachable(f"Error talking to the shoal daemon at {host}: {exc}")
        cause = _os_error(exc)
        code = cause.errno if cause is not None else None
        if code in (errno.EACCES, errno.EPERM):
            return DaemonUnreachable(
                f"Permission denied while trying to connect to the shoal daemon socket at {host}.\n"
                "Run the command as root (e.g. with sudo), or get access to the socket."
            )
        if code == errno.ENOENT:
            reason = "no such socket"
        elif code == errno.ECONNREFUSED:
            reason = "connection refused"
        else:
            reason = str(cause or exc) or type(exc).__name__
        return DaemonUnreachable(
            f"Cannot connect to the shoal daemon at {host} ({reason}). Is shoald running?\n{START_HINT}"
        )


def _default_transport(endpoint: Endpoint) -> httpx.HTTPTransport:
    """Plain HTTP (unix socket or tcp://) never uses TLS, so skip building a verifying SSL
    context: loading the CA bundle costs ~100 ms on every CLI invocation."""
    if endpoint.base_url.startswith("https://"):
        return httpx.HTTPTransport()
    return httpx.HTTPTransport(uds=endpoint.uds, verify=False)


def _decode(response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise CliError(f"invalid JSON from daemon: {exc}") from None


def _os_error(exc: BaseException) -> OSError | None:
    """Find the OSError behind an httpx/httpcore exception chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    text = str(exc)
    for code in (errno.ENOENT, errno.ECONNREFUSED, errno.EACCES):
        if f"[Errno {code}]" in text:
            return OSError(code, text)
    return None
