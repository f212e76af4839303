"""Forwarding names shoal does not know to the upstream servers.

libnetwork's `forwardExtDNS`: the servers are tried in order, at most three, each with a
4 s timeout; a SERVFAIL or REFUSED moves on to the next server (another one may know);
any other answer, NXDOMAIN included, is final.  More than 1024 forwards in flight are
refused at once (the caller answers SERVFAIL) rather than queued, so a flood cannot pile
up sockets.  Queries go out over the client's transport (a truncated UDP answer is passed
on with TC, and the client retries over TCP) from the daemon's own namespace: the
sockets are created on the event loop's thread, which never leaves it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

import dns.asyncquery
import dns.message
import dns.rcode

from shoal.errors import InvalidParameter

log = logging.getLogger(__name__)

MAX_UPSTREAMS = 3
TIMEOUT = 4.0
MAX_CONCURRENT = 1024
RETRY_RCODES = (dns.rcode.SERVFAIL, dns.rcode.REFUSED)

Query = Callable[..., Awaitable[dns.message.Message]]


def parse_upstream(value: str) -> tuple[str, int]:
    """'192.0.2.1', '192.0.2.1:5353', '2001:db8::1', '[2001:db8::1]:5353' -> (address, port)."""
    host, port = value.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            port = _port(value, rest.removeprefix(":"))
    elif host.count(":") == 1:
        host, _, p = host.partition(":")
        port = _port(value, p)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise InvalidParameter(f"invalid DNS server {value!r}: expected an IP address, optionally with :port") from None


def _port(value: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidParameter(f"invalid DNS server {value!r}: bad port")
    return int(text)


class Forwarder:
    """Callable as `await fwd(query, upstreams, tcp)`; returns the reply or None."""

    def __init__(
        self, *, timeout: float = TIMEOUT, max_concurrent: int = MAX_CONCURRENT,
        udp_query: Query = dns.asyncquery.udp, tcp_query: Query = dns.asyncquery.tcp,
    ):
        self.timeout = timeout
        self.max_concurrent = max_concurrent
        self._udp = udp_query
        self._tcp = tcp_query
        self.active = 0

    async def __call__(
        self, query: dns.message.Message, upstreams: Sequence[str], tcp: bool
    ) -> dns.message.Message | None:
        if self.active >= self.max_concurrent:
            log.warning("more than %d concurrent DNS forwards; answering SERVFAIL", self.max_concurrent)
            return None
        self.active += 1
        try:
            for upstream in list(upstreams)[:MAX_UPSTREAMS]:
                resp = await self._one(query, upstream, tcp)
                if resp is not None and resp.rcode() not in RETRY_RCODES:
                    return resp
            return None
        finally:
            self.active -= 1

    async def _one(self, query: dns.message.Message, upstream: str, tcp: bool) -> dns.message.Message | None:
        host, port = parse_upstream(upstream)
        send = self._tcp if tcp else self._udp
        try:
            return await send(query, host, timeout=self.timeout, port=port)
        except Exception as exc:  # timeout, refused, EOF, a reply that does not parse: try the next
            log.debug("DNS forward of %s to %s failed: %r", query.question[0].name, upstream, exc)
            return None
