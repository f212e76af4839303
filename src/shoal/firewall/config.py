"""The firewall's typed inputs, and the whole state it renders from.

- NetworkConfig: one bridge network (subnets, ICC, masquerade, internal, default host IP),
  or one routed network (its pool, nat-outgoing, internal).
- EndpointConfig: one endpoint, named by the host end of its veth (needed for ICC off).
- PortMapping: one published port or port range (host ip:port -> container ip:port).
- State: every network, endpoint and mapping; immutable, changed by `with_*`/`without_*`.

The controller builds these from `model.Network`/`model.Endpoint` and the parsed bridge
options; the firewall never sees the store or the API. Constructors validate, so nothing
that reaches the ruleset builder needs quoting or can break an `nft` batch.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Iterable

from shoal.errors import InvalidParameter, NotFound
from shoal.model import validate

PROTOCOLS = ("tcp", "udp", "sctp")


def check_ifname(name: str, what: str) -> str:
    """Interface names end up quoted in nft text: the one rule of model.validate.ifname."""
    return validate.ifname(name, f"{what} name")


def _subnet(text: str, version: int) -> str:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidParameter(f"invalid subnet {text!r}: {exc}") from None
    if net.version != version:
        raise InvalidParameter(f"subnet {text} is not IPv{version}")
    return str(net)


def _address(text: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text!r}") from None


def _refuse_ipv6_loopback(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """DNAT from [::1] cannot leave lo (IPv6 has no route_localnet): refuse, don't half-work."""
    if addr.version == 6 and addr.is_loopback:
        raise InvalidParameter("cannot publish on ::1 without a userland proxy; use 127.0.0.1 or ::")


@dataclass(frozen=True)
class NetworkConfig:
    """One bridge network as the firewall needs it; subnets are normalised to CIDR."""

    bridge: str
    subnets4: tuple[str, ...] = ()
    subnets6: tuple[str, ...] = ()
    icc: bool = True
    """`com.docker.network.bridge.enable_icc`: containers on this bridge may talk."""
    masquerade: bool = True
    """`com.docker.network.bridge.enable_ip_masquerade`: SNAT egress to the host's address."""
    internal: bool = False
    """No traffic to or from other interfaces; ports are never published."""
    host_binding_ipv4: str = ""
    """`com.docker.network.bridge.host_binding_ipv4`: the host IP for mappings without one."""
    routed: int = 0
    """Not a bridge: a routed network (drivers.routed), whose endpoints are host veths of
    their own. The number tags the network in the ruleset (a packet's pool and a port's
    network compare equal through it); `bridge` is then only the network's key (its host
    veths' name prefix), and `masquerade` is nat-outgoing."""

    def __post_init__(self) -> None:
        check_ifname(self.bridge, "bridge")
        if not 0 <= self.routed < 1 << 32:
            raise InvalidParameter(f"invalid routed network tag {self.routed}")
        object.__setattr__(self, "subnets4", tuple(_subnet(s, 4) for s in self.subnets4))
        object.__setattr__(self, "subnets6", tuple(_subnet(s, 6) for s in self.subnets6))
        if self.host_binding_ipv4:
            binding = _address(self.host_binding_ipv4, "host_binding_ipv4")
            _refuse_ipv6_loopback(binding)
            object.__setattr__(self, "host_binding_ipv4", str(binding))


@dataclass(frozen=True)
class EndpointConfig:
    """An endpoint on `bridge`; `port` is the host end of its veth (a bridge port);
    `addresses` are the container's (no prefix length), for hairpin."""

    bridge: str
    port: str
    addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_ifname(self.bridge, "bridge")
        check_ifname(self.port, "bridge port")
        object.__setattr__(self, "addresses", tuple(str(_address(a, "endpoint address")) for a in self.addresses))


@dataclass(frozen=True)
class PortMapping:
    """host_ip:host_port.. -> container_ip:container_port.., `count` ports in lockstep.

    The family is the container address's. `host_ip` "" means the network's
    `host_binding_ipv4`, or else every local address of that family ("0.0.0.0" and "::"
    say "every address" explicitly; "::1" is refused, and a "::" mapping is not
    reachable on [::1]: IPv6 cannot forward from loopback). A Docker range
    `8000-8002:80-82` is `host_port=8000, container_port=80, count=3`; the caller has
    already picked the ports.
    """

    proto: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str
    host_ip: str = ""
    count: int = 1

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise InvalidParameter(f"invalid protocol {self.proto!r}: want one of {', '.join(PROTOCOLS)}")
        check_ifname(self.bridge, "bridge")
        if self.count < 1:
            raise InvalidParameter(f"invalid port count {self.count}")
        for port in (self.host_port, self.container_port):
            if not 1 <= port <= 65536 - self.count:
                raise InvalidParameter(f"invalid port range {port}-{port + self.count - 1}")
        container = _address(self.container_ip, "container address")
        object.__setattr__(self, "container_ip", str(container))
        if self.host_ip:
            host = _address(self.host_ip, "host address")
            if host.version != container.version:
                raise InvalidParameter(f"host address {self.host_ip} and container address "
                                       f"{self.container_ip} are of different families")
            _refuse_ipv6_loopback(host)
            object.__setattr__(self, "host_ip", str(host))

    @property
    def version(self) -> int:
        return 6 if ":" in self.container_ip else 4

    def pairs(self) -> Iterable[tuple[int, int]]:
        """(host port, container port) for every port of the range."""
        return ((self.host_port + i, self.container_port + i) for i in range(self.count))


def _by_bridge(networks: Iterable[NetworkConfig]) -> dict[str, NetworkConfig]:
    found: dict[str, NetworkConfig] = {}
    for net in networks:
        if net.bridge in found:
            raise InvalidParameter(f"two networks on bridge {net.bridge}")
        found[net.bridge] = net
    return found


@dataclass(frozen=True)
class State:
    """Everything the ruleset is rendered from. Endpoints and mappings name their bridge,
    which must be one of the networks (else InvalidParameter)."""

    networks: tuple[NetworkConfig, ...] = ()
    endpoints: tuple[EndpointConfig, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    _index: dict[str, NetworkConfig] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = _by_bridge(self.networks)
        object.__setattr__(self, "_index", index)
        for item in (*self.endpoints, *self.ports):
            if item.bridge not in index:
                raise InvalidParameter(f"{type(item).__name__} on unknown bridge {item.bridge}")

    def has_network(self, bridge: str) -> bool:
        return bridge in self._index

    def network(self, bridge: str) -> NetworkConfig:
        try:
            return self._index[bridge]
        except KeyError:
            raise NotFound(f"no firewall network on bridge {bridge}") from None

    def with_network(self, net: NetworkConfig) -> State:
        """Adds `net`, or replaces the network on the same bridge."""
        others = tuple(n for n in self.networks if n.bridge != net.bridge)
        return replace(self, networks=(*others, net))

    def without_network(self, bridge: str) -> State:
        """Drops the network and, with it, its endpoints and mappings."""
        return State(
            tuple(n for n in self.networks if n.bridge != bridge),
            tuple(e for e in self.endpoints if e.bridge != bridge),
            tuple(p for p in self.ports if p.bridge != bridge),
        )

    def with_endpoint(self, ep: EndpointConfig) -> State:
        others = tuple(e for e in self.endpoints if e.port != ep.port)
        return replace(self, endpoints=(*others, ep))

    def without_endpoint(self, port: str) -> State:
        return replace(self, endpoints=tuple(e for e in self.endpoints if e.port != port))

    def with_ports(self, ports: Iterable[PortMapping]) -> State:
        new = tuple(p for p in ports if p not in self.ports)
        return replace(self, ports=(*self.ports, *dict.fromkeys(new)))

    def without_ports(self, ports: Iterable[PortMapping]) -> State:
        gone = set(ports)
        return replace(self, ports=tuple(p for p in self.ports if p not in gone))
