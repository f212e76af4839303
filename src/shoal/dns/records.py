"""What the embedded DNS knows: per network, the names and addresses of its containers.

Pure data and lookups, no I/O.  The controller owns one `DnsRecords`, updates it on
connect and disconnect, and the server reads it on every query (same event loop, so no
locks).  Resolution follows libnetwork's `Sandbox.ResolveName` / `ResolveIP`:

* a querying sandbox sees only the networks it is attached to itself;
* names are the container name, its network aliases, the 12-hex short id and the
  hostname, compared case-insensitively;
* `a.b.c` is tried as the name `a.b.c` on every shared network, then as `a.b` on the
  network named `c`, then `a` on `b.c` (network names may contain dots);
* the answer comes from the first shared network, in the order the querier joined them,
  that knows the name; on that network every container carrying the name contributes
  its address (an alias shared by several containers gives several records);
* a name known for the other address family only is a "miss": NOERROR with no data;
* reverse lookups answer `<container name>.<network name>` for addresses on shared networks;
* a link's alias (`EndpointSettings.Links`, "target:alias") is the target's name, for the
  linking container only (libnetwork's endpoint alias map).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from shoal.model import Endpoint

SHORT_ID_LEN = 12


def _bare_ip(value: str) -> str:
    """'172.18.0.2/16' or '172.18.0.2' -> '172.18.0.2' (canonical form); '' stays ''."""
    if not value:
        return ""
    return str(ipaddress.ip_interface(value).ip)


@dataclass(frozen=True)
class DnsEntry:
    """One container on one network.  Addresses may be given with or without a prefix."""

    sandbox_id: str
    name: str = ""
    aliases: tuple[str, ...] = ()
    ipv4: str = ""
    ipv6: str = ""
    hostname: str = ""
    container_id: str = ""  # defaults to sandbox_id (they are the same in shoal)
    links: tuple[tuple[str, str], ...] = ()  # (alias, target name): this container's links on this network

    def __post_init__(self) -> None:
        object.__setattr__(self, "ipv4", _bare_ip(self.ipv4))
        object.__setattr__(self, "ipv6", _bare_ip(self.ipv6))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if not self.container_id:
            object.__setattr__(self, "container_id", self.sandbox_id)

    @classmethod
    def from_endpoint(cls, ep: Endpoint, *, name: str = "", hostname: str = "",
                      links: tuple[tuple[str, str], ...] = ()) -> DnsEntry:
        """`name` defaults to the endpoint name (the container name, without a leading '/')."""
        return cls(
            sandbox_id=ep.sandbox_id, name=(name or ep.name).lstrip("/"), aliases=ep.aliases,
            ipv4=ep.ipv4, ipv6=ep.ipv6, hostname=hostname, links=tuple(links),
        )

    def dns_names(self) -> list[str]:
        """Docker's `DNSNames` order: name, aliases, short id, hostname; no duplicates."""
        names = [self.name, *self.aliases, self.container_id[:SHORT_ID_LEN], self.hostname]
        out: list[str] = []
        for n in names:
            if n and n.lower() not in {o.lower() for o in out}:
                out.append(n)
        return out

    def ptr_name(self) -> str:
        """libnetwork uses the endpoint name, or the first alias for an anonymous one."""
        return self.name or (self.aliases[0] if self.aliases else "")


@dataclass
class _Net:
    name: str
    entries: dict[str, DnsEntry] = field(default_factory=dict)  # sandbox id -> entry
    by_name: dict[str, list[str]] = field(default_factory=dict)  # lower name -> sandbox ids


@dataclass(frozen=True)
class Resolution:
    """`addresses` to answer with; `known` is True when the name exists (maybe without this family)."""

    addresses: tuple[str, ...] = ()
    known: bool = False


class DnsRecords:
    """The table; see the module docstring for the resolution rules."""

    def __init__(self) -> None:
        self._nets: dict[str, _Net] = {}
        self._joined: dict[str, list[str]] = {}  # sandbox id -> network ids, join order

    # -- updates (controller) --------------------------------------------------------
    def add(self, network_id: str, network_name: str, entry: DnsEntry) -> None:
        """Insert or replace the sandbox's entry on this network (connect, or a change)."""
        net = self._nets.setdefault(network_id, _Net(network_name))
        net.name = network_name
        if entry.sandbox_id in net.entries:
            self._unindex(net, net.entries[entry.sandbox_id])
        net.entries[entry.sandbox_id] = entry
        for n in entry.dns_names():
            net.by_name.setdefault(n.lower(), []).append(entry.sandbox_id)
        joined = self._joined.setdefault(entry.sandbox_id, [])
        if network_id not in joined:
            joined.append(network_id)

    def remove(self, network_id: str, sandbox_id: str) -> None:
        """Disconnect; unknown ids are fine.  An empty network is forgotten."""
        net = self._nets.get(network_id)
        if net is not None and sandbox_id in net.entries:
            self._unindex(net, net.entries.pop(sandbox_id))
            if not net.entries:
                del self._nets[network_id]
        joined = self._joined.get(sandbox_id)
        if joined and network_id in joined:
            joined.remove(network_id)
            if not joined:
                del self._joined[sandbox_id]

    def remove_sandbox(self, sandbox_id: str) -> None:
        for network_id in list(self._joined.get(sandbox_id, ())):
            self.remove(network_id, sandbox_id)

    @staticmethod
    def _unindex(net: _Net, entry: DnsEntry) -> None:
        for n in entry.dns_names():
            ids = net.by_name.get(n.lower(), [])
            if entry.sandbox_id in ids:
                ids.remove(entry.sandbox_id)
            if not ids:
                net.by_name.pop(n.lower(), None)

    # -- reads ------------------------------------------------------------------------
    def pairs(self) -> set[tuple[str, str]]:
        """(network id, sandbox id) of every entry: what the checker compares with endpoints."""
        return {(nid, sid) for nid, net in self._nets.items() for sid in net.entries}

    def networks_of(self, sandbox_id: str) -> list[str]:
        return list(self._joined.get(sandbox_id, ()))

    def entry(self, network_id: str, sandbox_id: str) -> DnsEntry | None:
        net = self._nets.get(network_id)
        return net.entries.get(sandbox_id) if net else None

    def resolve(self, sandbox_id: str, qname: str, family: int) -> Resolution:
        """Addresses of `qname` (family 4 or 6) as seen from `sandbox_id`."""
        name = qname.rstrip(".").lower()
        if not name:
            return Resolution()
        labels = name.split(".")
        known = False
        for cut in range(len(labels), 0, -1):
            host, network = ".".join(labels[:cut]), ".".join(labels[cut:])
            res = self._resolve_on(sandbox_id, host, network, family)
            if res.addresses:
                return res
            known = known or res.known
        return Resolution((), known)

    def _resolve_on(self, sandbox_id: str, host: str, network: str, family: int) -> Resolution:
        known = False
        for net in self._shared(sandbox_id):
            if network and net.name.lower() != network:
                continue
            me = net.entries.get(sandbox_id)
            target = next((t for a, t in me.links if a.lower() == host), host) if me else host
            ids = net.by_name.get(target.lower())
            if not ids:
                continue
            known = True
            addrs: list[str] = []
            for sid in ids:
                e = net.entries[sid]
                ip = e.ipv4 if family == 4 else e.ipv6
                if ip and ip not in addrs:
                    addrs.append(ip)
            if addrs:
                return Resolution(tuple(addrs), True)
        return Resolution((), known)

    def reverse(self, sandbox_id: str, ip: str) -> str | None:
        """`name.network` for an address on a network the querier shares, else None."""
        try:
            wanted = str(ipaddress.ip_address(ip))
        except ValueError:
            return None
        for net in self._shared(sandbox_id):
            for e in net.entries.values():
                if wanted in (e.ipv4, e.ipv6) and e.ptr_name():
                    return f"{e.ptr_name()}.{net.name}"
        return None

    def _shared(self, sandbox_id: str) -> list[_Net]:
        return [self._nets[n] for n in self._joined.get(sandbox_id, ()) if n in self._nets]
