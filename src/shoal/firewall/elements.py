"""The contents of shoal's sets and maps for a State: pure, one small function per noun.

The chains never change (see `ruleset`); a state is nothing but these elements. The full
ruleset and every incremental batch are both rendered from `elements(state)`, so applying
`diff(elements(S), elements(S'))` on top of S gives exactly the full ruleset for S'.

- SetSpec, SETS: every set and map, its nft type, and why it exists.
- elements(state): SetRef -> {key: value}, value None for plain sets.
- diff(old, new): the Changes (deletes first, then adds) that turn one into the other.
- published_host_ip(mapping, network): where a mapping listens, after host_binding_ipv4.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterator

from shoal.errors import Conflict
from shoal.firewall.config import EndpointConfig, NetworkConfig, PortMapping, State

INET = "inet"
BRIDGE = "bridge"
SetRef = tuple[str, str]
"""(table family, set name); both tables are called `shoal`."""
Elements = dict[SetRef, dict[str, "str | None"]]
Element = tuple[SetRef, str, "str | None"]


@dataclass(frozen=True)
class SetSpec:
    """One set or map: `type` is nft's, `interval` adds `flags interval`, `map` marks a map."""

    type: str
    comment: str
    interval: bool = False
    map: bool = False


SETS: dict[SetRef, SetSpec] = {
    (INET, "bridges"): SetSpec("ifname", "every shoal bridge"),
    (INET, "internal"): SetSpec("ifname", "bridges of internal networks"),
    (INET, "icc"): SetSpec("ifname . ifname : verdict", "bridge . same bridge: accept, or drop when ICC is off",
                           map=True),
    # by endpoint address, not by subnet: nft re-reads every element of a plain interval set
    # on each batch, and the kernel changes a concatenated interval set (pipapo) in time
    # linear in its size (8.6 ms a delete with a thousand networks); this is a hash
    (INET, "hairpin4"): SetSpec("ifname . ipv4_addr", "bridge . a container address on it"),
    (INET, "hairpin6"): SetSpec("ifname . ipv6_addr", "bridge . a container address on it"),
    (INET, "masquerading"): SetSpec("ifname", "bridges whose egress is masqueraded"),
    (INET, "published4"): SetSpec("ipv4_addr . inet_proto . inet_service", "container address . proto . port"),
    (INET, "published6"): SetSpec("ipv6_addr . inet_proto . inet_service", "container address . proto . port"),
    (INET, "dnat4"): SetSpec("inet_proto . inet_service : ipv4_addr . inet_service",
                             "ports published on every host address", map=True),
    (INET, "dnat4_host"): SetSpec("ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
                                  "ports published on one host address", map=True),
    (INET, "dnat6"): SetSpec("inet_proto . inet_service : ipv6_addr . inet_service",
                             "ports published on every host address", map=True),
    (INET, "dnat6_host"): SetSpec("ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service",
                                  "ports published on one host address", map=True),
    (BRIDGE, "icc_off_ports"): SetSpec("ifname", "bridge ports of endpoints on networks with ICC off"),
    # routed networks: per network, a pool's tag (a one-field interval map, as few elements
    # as networks); per endpoint, its host veth and that veth's network tag (hashes). No
    # concatenated interval set (pipapo), whose updates grow with its size.
    (INET, "routed_ports"): SetSpec("ifname", "host veths of routed endpoints"),
    (INET, "routed_members"): SetSpec("ifname . mark", "routed host veth . its network's tag"),
    (INET, "routed_internal"): SetSpec("ifname", "host veths of endpoints on internal routed networks"),
    (INET, "routed_tags4"): SetSpec("ipv4_addr : mark", "routed pool : its network's tag", interval=True, map=True),
    (INET, "routed_pools4"): SetSpec("ipv4_addr", "every routed pool", interval=True),
    (INET, "routed_masq4"): SetSpec("ipv4_addr", "routed pools with nat-outgoing", interval=True),
}


def _quoted(ifname: str) -> str:
    return f'"{ifname}"'


def network_elements(net: NetworkConfig) -> Iterator[Element]:
    """A bridge's membership, its ICC verdict and egress; a routed network's pools."""
    if net.routed:
        for subnet in net.subnets4:
            yield (INET, "routed_tags4"), subnet, str(net.routed)
            yield (INET, "routed_pools4"), subnet, None
            if net.masquerade and not net.internal:
                yield (INET, "routed_masq4"), subnet, None
        return
    br = _quoted(net.bridge)
    yield (INET, "bridges"), br, None
    yield (INET, "icc"), f"{br} . {br}", "accept" if net.icc else "drop"
    if net.internal:
        yield (INET, "internal"), br, None
    elif net.masquerade:
        yield (INET, "masquerading"), br, None


def endpoint_elements(ep: EndpointConfig, net: NetworkConfig) -> Iterator[Element]:
    """Its addresses, for hairpin; its port when ICC is off (L2 traffic between endpoints
    never reaches inet). A routed endpoint: its veth and its network's tag."""
    if net.routed:
        yield (INET, "routed_ports"), _quoted(ep.port), None
        yield (INET, "routed_members"), f"{_quoted(ep.port)} . {net.routed}", None
        if net.internal:
            yield (INET, "routed_internal"), _quoted(ep.port), None
        return
    for address in ep.addresses:
        yield (INET, f"hairpin{6 if ':' in address else 4}"), f"{_quoted(ep.bridge)} . {address}", None
    if not net.icc:
        yield (BRIDGE, "icc_off_ports"), _quoted(ep.port), None


def published_host_ip(mapping: PortMapping, net: NetworkConfig) -> str | None:
    """"" for every local address, an address, or None: not published (internal network, or
    a default binding of the other family: Docker publishes `-p 80` on that address only)."""
    if net.internal:
        return None
    ip = mapping.host_ip or net.host_binding_ipv4
    if not ip:
        return ""
    addr = ipaddress.ip_address(ip)
    if addr.is_unspecified:
        return ""
    return str(addr) if addr.version == mapping.version else None


def port_elements(mapping: PortMapping, net: NetworkConfig) -> Iterator[Element]:
    """DNAT entries keyed by the host side, and the container side the forward chain lets in."""
    host = published_host_ip(mapping, net)
    if host is None:
        return
    v, proto = mapping.version, mapping.proto
    for host_port, container_port in mapping.pairs():
        target = f"{mapping.container_ip} . {container_port}"
        yield (INET, f"published{v}"), f"{mapping.container_ip} . {proto} . {container_port}", None
        if host:
            yield (INET, f"dnat{v}_host"), f"{host} . {proto} . {host_port}", target
        else:
            yield (INET, f"dnat{v}"), f"{proto} . {host_port}", target


def all_elements(state: State) -> Iterator[Element]:
    for net in state.networks:
        yield from network_elements(net)
    for ep in state.endpoints:
        yield from endpoint_elements(ep, state.network(ep.bridge))
    for mapping in state.ports:
        yield from port_elements(mapping, state.network(mapping.bridge))


def elements(state: State) -> Elements:
    """Every set's contents; Conflict if one host port would lead to two places."""
    out: Elements = {ref: {} for ref in SETS}
    for ref, key, value in all_elements(state):
        have = out[ref]
        if key in have and have[key] != value:
            raise published_twice(key, have[key], value)
        have[key] = value
    return out


def published_twice(key: str, have: str | None, value: str | None) -> Conflict:
    return Conflict(f"host port {key} is published twice: to {have} and to {value}")


@dataclass(frozen=True)
class Change:
    """Add or delete one element; a map entry whose value changes is deleted, then added."""

    op: str
    ref: SetRef
    key: str
    value: str | None = None


_MISSING = object()


SETS_ORDER = {ref: i for i, ref in enumerate(SETS)}


def natural_key(text: str) -> list:
    """Sort 172.18.0.2 before 172.18.0.10 and port 80 before 443."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", text)]


def _changes(op: str, source: Elements, other: Elements) -> list[Change]:
    """Only the differing keys are sorted: a change costs O(size) dict lookups, not a sort."""
    out = []
    for ref in SETS:
        src, oth = source[ref], other[ref]
        keys = [k for k, v in src.items() if oth.get(k, _MISSING) != v]
        out += [Change(op, ref, key, src[key]) for key in sorted(keys, key=natural_key)]
    return out


def diff(old: Elements, new: Elements) -> list[Change]:
    """Deletes before adds, so a changed map value never meets its old key."""
    return _changes("delete", old, new) + _changes("add", new, old)


def apply_changes(old: Elements, changes: list[Change]) -> Elements:
    """What nft does with a diff, in memory: the fake backend and the tests use it."""
    out = {ref: dict(items) for ref, items in old.items()}
    for change in changes:
        if change.op == "delete":
            del out[change.ref][change.key]
        else:
            out[change.ref][change.key] = change.value
    return out
