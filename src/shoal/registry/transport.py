"""TLS per registry host behind one httpx.AsyncClient, and Docker's insecure-registry rule.

One client keeps one connection pool and one redirect policy; the TLS settings still differ
per host (skip verification for an insecure registry, its own CA from certs.d for another),
so the client's transport picks an inner transport by scheme, host and port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from pathlib import Path

import httpx

ALWAYS_INSECURE = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def split_host(domain: str) -> tuple[str, int | None]:
    """("host", port) of "host:port", "[::1]:5000", "host"."""
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = domain.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return domain, None


class InsecureRule:
    """moby's loadInsecureRegistries/isSecureIndex: loopback CIDRs always, plus the configured
    CIDRs and exact "host[:port]" names; a hostname is insecure if any address it resolves
    to falls in an insecure CIDR."""

    def __init__(self, entries: list[str] | tuple[str, ...] = ()) -> None:
        self.networks = list(ALWAYS_INSECURE)
        self.names: set[str] = set()
        for entry in entries:
            entry = entry.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
            if "/" in entry:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                    continue
                except ValueError:
                    pass
            self.names.add(entry)
        self._cache: dict[str, bool] = {}

    async def insecure(self, domain: str) -> bool:
        if domain in self.names:
            return True
        if domain not in self._cache:
            host, _ = split_host(domain)
            if host in self.names:
                self._cache[domain] = True
            else:
                self._cache[domain] = any(self._match(a) for a in await _addresses(host))
        return self._cache[domain]

    def _match(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in net for net in self.networks if net.version == ip.version)


async def _addresses(host: str) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [info[4][0] for info in infos]


def tls_context(certs_dir: Path, domain: str, verify: bool) -> ssl.SSLContext:
    """System CAs plus certs.d/<host:port>/*.crt; a client certificate from *.cert + *.key;
    no verification for an insecure registry (moby's newTLSConfig)."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    folder = certs_dir / domain
    try:
        files = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        files = []
    for f in files:
        if f.suffix == ".crt" and verify:
            ctx.load_verify_locations(cafile=str(f))
        elif f.suffix == ".cert" and f.with_suffix(".key").exists():
            ctx.load_cert_chain(str(f), str(f.with_suffix(".key")))
    return ctx


class HostTransport(httpx.AsyncBaseTransport):
    """Dispatches each request to an inner transport made with that host's TLS context."""

    def __init__(self, certs_dir: Path) -> None:
        self.certs_dir = certs_dir
        self._verify: dict[str, bool] = {}
        self._inner: dict[tuple[str, str], httpx.AsyncHTTPTransport] = {}

    def set_verify(self, domain: str, verify: bool) -> None:
        """Verification for https to `domain` ("host:port" as in the URL); learnt before use.
        A token realm on another host inherits its registry's setting (Docker sends the token
        request through the endpoint's own TLS configuration)."""
        if self._verify.get(domain) != verify:
            self._verify[domain] = verify
            self._inner.pop(("https", domain), None)

    def verifies(self, domain: str) -> bool:
        return self._verify.get(domain, True)

    def knows(self, domain: str) -> bool:
        return domain in self._verify

    def _for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        domain = url.netloc.decode()
        key = (url.scheme, domain if url.scheme == "https" else "")
        if key not in self._inner:
            if url.scheme == "https":
                ctx = tls_context(self.certs_dir, domain, self._verify.get(domain, True))
                self._inner[key] = httpx.AsyncHTTPTransport(verify=ctx)
            else:
                self._inner[key] = httpx.AsyncHTTPTransport()
        return self._inner[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._for(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        for t in list(self._inner.values()):
            await t.aclose()
        self._inner.clear()
