"""Docker's legacy ("v1") plugins: find one by name, call it with JSON over HTTP.

dockerd's rules (moby pkg/plugins), kept because plugin authors wrote against them:

* A plugin NAME is a unix socket `SOCKETS/NAME.sock` or `SOCKETS/NAME/NAME.sock`, else a
  spec file `NAME.spec` (one URL) or `NAME.json` (`{"Addr", "TLSConfig"}`), directly or in
  `NAME/`, in each spec directory in turn.
* Every call is `POST /<Method>` with a JSON body (empty for none) and the plugins'
  media type in Accept; on a unix socket the Host is `plugin.moby.localhost`.
* A plugin that cannot be found, or refuses the connection, is tried again with a backoff
  of 1, 2, 4, 8 s while that fits in `retry` (dockerd: about 15 s): plugins are often
  containers started next to the daemon. A call that was sent is never repeated, so an
  allocation is not made twice.
* A status other than 200 is an error whose text is the body's `Err`, else the body.

dockerd's legacy client waits for an answer forever; shoal gives each call `timeout`
seconds (30 by default), so a plugin that hangs cannot hang the API with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import stat
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from shoal.errors import NotFound, ShoalError

ACCEPT = "application/vnd.docker.plugins.v1.2+json"
DUMMY_HOST = "plugin.moby.localhost"
SOCKETS_DIR = "/run/docker/plugins"
SPEC_DIRS = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
log = logging.getLogger("shoal.plugins")
T = TypeVar("T")


class PluginNotFound(NotFound):
    """No socket or spec file names the plugin (dockerd: 404 `plugin "x" not found`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f'plugin "{name}" not found')


class PluginError(ShoalError):
    """A plugin that could not be reached, timed out, refused a call or answered garbage
    (500, as dockerd's untyped plugin errors). `status` of the plugin's answer, 0 if none."""

    def __init__(self, message: str, plugin_status: int = 0) -> None:
        super().__init__(message)
        self.plugin_status = plugin_status


@dataclass(frozen=True)
class TLSOptions:
    """A .json spec's TLSConfig; without a CA file the server is not verified (dockerd)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file or None)
        if self.insecure_skip_verify or not self.ca_file:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file or None)
        return ctx


@dataclass(frozen=True)
class Address:
    url: str  # unix:///path, tcp://host:port, http://..., https://...
    tls: TLSOptions | None = None


@dataclass(frozen=True)
class Dirs:
    """Where plugins are looked for; tests and side-by-side daemons give their own."""

    sockets: str = SOCKETS_DIR
    specs: tuple[str, ...] = SPEC_DIRS


def _candidates(base: str, name: str, ext: str) -> list[Path]:
    return [Path(base) / f"{name}{ext}", Path(base) / name / f"{name}{ext}"]


def locate(name: str, dirs: Dirs) -> Address | None:
    """The plugin's address by dockerd's lookup order, None when nothing names it. A name
    with a slash could reach outside the directories: it names nothing."""
    if not name or "/" in name or "\0" in name or name.startswith("."):
        return None
    for path in _candidates(dirs.sockets, name, ".sock"):
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return Address(f"unix://{path}")
        except OSError:
            continue
    for base in dirs.specs:
        for path in _candidates(base, name, ".spec") + _candidates(base, name, ".json"):
            if path.exists():
                return read_json_spec(path) if path.suffix == ".json" else read_spec(path)
    return None


def read_spec(path: Path) -> Address:
    url = path.read_text().strip()
    if not urlsplit(url).scheme:
        raise PluginError(f"plugin spec {path}: {url!r} has no scheme (unix://, tcp://, http:// or https://)")
    return Address(url)


def read_json_spec(path: Path) -> Address:
    try:
        data = json.loads(path.read_text())
        addr = data["Addr"]
        tls = data.get("TLSConfig")
        if not isinstance(addr, str) or not urlsplit(addr).scheme or not (tls is None or isinstance(tls, dict)):
            raise ValueError("Addr must be a URL with a scheme, TLSConfig an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PluginError(f"plugin spec {path}: {exc}") from None
    options = None
    if tls is not None:
        options = TLSOptions(ca_file=str(tls.get("CAFile") or ""), cert_file=str(tls.get("CertFile") or ""),
                             key_file=str(tls.get("KeyFile") or ""),
                             insecure_skip_verify=bool(tls.get("InsecureSkipVerify")))
    return Address(addr, options)


async def with_backoff(what: str, attempt: Callable[[], Awaitable[T]], retry: float,
                       again: tuple[type[BaseException], ...]) -> T:
    """`attempt` until it does not raise one of `again`, waiting 1, 2, 4... s between
    tries while the next wait still ends within `retry` s of the first (dockerd's rule)."""
    loop = asyncio.get_running_loop()
    start, delay = loop.time(), 1.0
    while True:
        try:
            return await attempt()
        except again as exc:
            if loop.time() - start + delay > retry:
                raise
            log.warning("%s: %s; retrying in %.0f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay *= 2


class _Refused(Exception):
    """The connection was not made: the request never left, so it may be sent again."""


@dataclass
class Client:
    """One plugin's HTTP client (one keep-alive connection pool)."""

    address: Address
    timeout: float = 30.0
    retry: float = 15.0
    _http: httpx.AsyncClient | None = field(default=None, repr=False)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            parts = urlsplit(self.address.url)
            verify: Any = self.address.tls.context() if self.address.tls else True
            if parts.scheme == "unix":
                transport = httpx.AsyncHTTPTransport(uds=parts.path)
                base = f"http://{DUMMY_HOST}"
            else:  # dockerd speaks TLS only to https:// addresses, whatever the TLSConfig
                transport = httpx.AsyncHTTPTransport(verify=verify if parts.scheme == "https" else True)
                base = f"{'https' if parts.scheme == 'https' else 'http'}://{parts.netloc}"
            self._http = httpx.AsyncClient(transport=transport, base_url=base, timeout=self.timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def call(self, method: str, body: Any = None) -> dict[str, Any]:
        """The answer's JSON object; PluginError for anything else."""
        content = b"" if body is None else json.dumps(body).encode() + b"\n"
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"} if body is not None else {"Accept": ACCEPT}

        async def post() -> httpx.Response:
            try:
                return await self._client().post(f"/{method}", content=content, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise _Refused(str(exc) or type(exc).__name__) from None

        try:
            resp = await with_backoff(f"unable to connect to plugin {self.address.url}{method}", post,
                                      self.retry, (_Refused,))
        except _Refused as exc:
            raise PluginError(f"{method}: cannot connect to plugin at {self.address.url}: {exc}") from None
        except httpx.TimeoutException:
            raise PluginError(f"{method}: the plugin at {self.address.url} did not answer within "
                              f"{self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise PluginError(f"{method}: {exc or type(exc).__name__}") from None
        return decode(method, resp.status_code, resp.content)


def decode(method: str, status: int, raw: bytes) -> dict[str, Any]:
    if status != 200:
        text = raw.decode(errors="replace")
        try:
            err = json.loads(text).get("Err")
        except (ValueError, AttributeError):
            err = None
        raise PluginError(f"{method}: {err if isinstance(err, str) and err else text.strip()}", status)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise PluginError(f"{method}: the plugin's answer is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PluginError(f"{method}: the plugin's answer is not a JSON object: {raw[:80]!r}")
    return data


@dataclass(frozen=True)
class Plugin:
    """An activated plugin: what its handshake said it implements, and how to reach it."""

    name: str
    client: Client
    implements: tuple[str, ...]


def string_field(data: Mapping[str, Any], key: str, where: str) -> str:
    """A plugin's optional string field: absent is "", another type is the plugin's error."""
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PluginError(f"{where}: {key} must be a string, the plugin sent {value!r}")
    return value


class Adaptor:
    """What the network-driver and IPAM adaptors share: the plugin is asked nothing until
    first used, then handshaken once; a verb's answer with its error field set raises.
    The two protocols spell that field differently (`Err`, `Error`)."""

    KIND = ""
    ERROR_FIELD = ""
    name: str
    _get: Callable[[str, str], Awaitable[Plugin]]
    _plugin: Plugin | None

    async def handshake(self, plugin: Plugin) -> None:
        raise NotImplementedError

    async def ready(self) -> None:
        if self._plugin is None:
            plugin = await self._get(self.name, self.KIND)
            if self._plugin is None:
                await self.handshake(plugin)

    @classmethod
    async def _raw(cls, plugin: Plugin, verb: str, body: Any) -> dict[str, Any]:
        data = await plugin.client.call(f"{cls.KIND}.{verb}", body)
        err = data.get(cls.ERROR_FIELD)
        if err:
            raise PluginError(f"remote: {err}")
        return data

    async def _call(self, verb: str, body: Any) -> dict[str, Any]:
        await self.ready()
        assert self._plugin is not None
        return await self._raw(self._plugin, verb, body)
