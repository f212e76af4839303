"""HTTP client for the daemon's Docker Engine API, with docker-style error mapping.

Commands only ever see decoded JSON or a `CliError`: daemon errors become
`Error response from daemon: <message>` (as the docker CLI prints them) and transport failures
become one actionable "daemon not running" message instead of a traceback.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote, urlsplit

import httpx

from shoal import __version__
from shoal.cli.errors import CliError, DaemonError, DaemonUnreachable

DEFAULT_HOST = "unix:///run/shoal/shoal.sock"
START_HINT = "Start it with `sudo shoald`, or point -H/--host (or SHOAL_HOST) at a running daemon."
DEFAULT_TCP_PORT = 2375
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


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
            transport = httpx.HTTPTransport(uds=self.endpoint.uds) if self.endpoint.uds else httpx.HTTPTransport()
        self.prefix = f"/v{api_version}" if api_version else ""
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
            kwargs["content"] = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._http.request(method, self.prefix + path, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._daemon_error(response)
        return response

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
