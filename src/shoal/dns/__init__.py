"""Docker's embedded DNS (the 127.0.0.11 resolver) and a container's resolv.conf/hosts.

- records: `DnsRecords`, `DnsEntry`: who is on which network under which names (pure).
- conf: `render_resolv_conf`, `render_hosts`, `embedded_upstreams`, `parse_resolv_conf` (pure).
- message: parse, answer locally (A, AAAA, PTR), truncate; `Resolver`, the per-message pipeline.
- forward: `Forwarder`: unknown names to at most 3 upstreams, 4 s each, 1024 in flight.
- sockets: UDP+TCP listeners at 127.0.0.11:53 inside a sandbox netns (a throwaway thread setns).
- server: `DnsServer`: one asyncio object serving every sandbox of the daemon.
"""

from shoal.dns.conf import (
    EMBEDDED_NAMESERVER,
    ResolvConf,
    embedded_upstreams,
    parse_resolv_conf,
    render_hosts,
    render_resolv_conf,
)
from shoal.dns.forward import Forwarder, parse_upstream
from shoal.dns.message import Resolver, SandboxConf
from shoal.dns.records import DnsEntry, DnsRecords, Resolution
from shoal.dns.server import DnsServer

__all__ = [
    "EMBEDDED_NAMESERVER",
    "DnsEntry",
    "DnsRecords",
    "DnsServer",
    "Forwarder",
    "ResolvConf",
    "Resolution",
    "Resolver",
    "SandboxConf",
    "embedded_upstreams",
    "parse_resolv_conf",
    "parse_upstream",
    "render_hosts",
    "render_resolv_conf",
]
