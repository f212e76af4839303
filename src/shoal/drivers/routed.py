"""The routed driver: every container routed at layer 3 across hosts, no encapsulation
(Calico's design; docs/design.md, "Routed networks").

A network has no kernel object of its own on a host: no bridge, no tunnel. Each
endpoint is a veth pair (kernel.routed): the container's end holds its address as a /32
and routes everything via 169.254.1.1, which the host's end answers; the host routes the
/32 back to that veth. Between hosts, each host's BIRD announces the address blocks the
host holds (controller.kvblocks, controller.routing), so a packet leaves with the
container addresses on the wire and the underlay routes it to the block's host.
Isolation (only the same network's pool may enter a routed veth), `--internal` and
nat-outgoing are nftables elements (firewall.elements), keyed by the network's tag.

Options: `block-size` (IPv4 prefix length of the blocks hosts claim, 20 to 30, default
26: Calico's), `nat-outgoing` (masquerade what leaves every routed pool, default true),
`com.docker.network.driver.mtu`. IPv6 is not routed yet (refused with a 400).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from shoal.drivers.base import Capabilities, Problem
from shoal.drivers.l2 import OPT_MTU
from shoal.drivers.options import parse_bool, parse_int
from shoal.errors import Forbidden, InvalidParameter
from shoal.kernel import Kernel, LinkInfo
from shoal.kernel.routed import GATEWAY4
from shoal.model import Endpoint, Network, NetworkSpec, Peer

OPT_BLOCK = "block-size"
OPT_NAT = "nat-outgoing"
KNOWN = {OPT_BLOCK, OPT_NAT, OPT_MTU}
BLOCK_MIN, BLOCK_MAX, BLOCK_DEFAULT = 20, 30, 26


@dataclass(frozen=True)
class RoutedOptions:
    block_size: int = BLOCK_DEFAULT
    nat_outgoing: bool = True
    mtu: int = 1500

    @classmethod
    def parse(cls, options: Mapping[str, str], default_mtu: int = 1500) -> RoutedOptions:
        opts = dict(options)
        return cls(block_size=parse_int(opts, OPT_BLOCK, BLOCK_DEFAULT, BLOCK_MIN, BLOCK_MAX),
                   nat_outgoing=parse_bool(opts, OPT_NAT, True),
                   mtu=parse_int(opts, OPT_MTU, default_mtu, 68, 65535))


def routed_tag(network_id: str) -> int:
    """The network's number in the firewall's sets (32 bits of its id, never 0)."""
    return int(network_id[:8], 16) or 1


def veth_prefix(network_id: str) -> str:
    return f"rt{network_id[:6]}"


class RoutedDriver:
    """Veths and /32 routes per endpoint; blocks and BGP are the cluster's (see module doc)."""

    name = "routed"
    capabilities = Capabilities(scope="global", needs_gateway=False, routed=True)

    def __init__(self, kernel: Kernel, *, mtu: int = 1500) -> None:
        self._kernel = kernel
        self.mtu = mtu
        self.clustered = False  # set when a cluster store is attached

    def validate(self, spec: NetworkSpec) -> None:
        if not self.clustered:
            raise Forbidden("routed networks need a cluster store: start shoald with --cluster-store etcd://HOST:PORT "
                            "and --cluster-advertise IP (or IFACE)")
        unknown = sorted(set(spec.options) - KNOWN)
        if unknown:
            raise InvalidParameter(f"unknown routed driver options: {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(KNOWN))})")
        opts = RoutedOptions.parse(spec.options, self.mtu)
        if spec.enable_ipv6 or any(c.is_v6 for c in spec.ipam_configs):
            raise InvalidParameter("routed networks do not route IPv6 yet: leave out --ipv6 and IPv6 subnets")
        for cfg in spec.ipam_configs:
            if cfg.gateway:
                raise InvalidParameter(f"routed networks have no gateway address (containers route via 169.254.1.1): "
                                       f"leave out --gateway {cfg.gateway}")
            if cfg.ip_range:
                raise InvalidParameter("routed networks hand out addresses by block: leave out --ip-range")
            if cfg.subnet and ipaddress.ip_network(cfg.subnet, strict=False).prefixlen > opts.block_size:
                raise InvalidParameter(f"subnet {cfg.subnet} is smaller than one address block (/{opts.block_size}): "
                                       f"give a larger subnet or a larger -o {OPT_BLOCK}")

    def options(self, network: Network) -> RoutedOptions:
        return RoutedOptions.parse(network.options, self.mtu)

    def bridge_of(self, network: Network) -> None:
        """No bridge (`capabilities.routed`: the controller's firewalling knows routed networks)."""

    # -- network objects: none of its own on a host ----------------------------------------
    async def create_network(self, network: Network, alias: str) -> None:
        pass

    async def restore_network(self, network: Network, alias: str) -> None:
        pass

    async def delete_network(self, network: Network) -> None:
        pass

    # -- endpoints -----------------------------------------------------------------------
    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        """Without the default route (another endpoint gives it, or the network is internal)
        the container still reaches the network's pools through this link."""
        if not netns_path:
            raise InvalidParameter("routed networks are not served to other engines: no sandbox to configure")
        host = f"{veth_prefix(network.id)}{ep.id[:5]}"
        pools = [c.subnet for c in network.v4_configs]
        default = gateway and not network.internal
        await self._kernel.add_routed_veth(host, ep.ifname, netns_path, mac=ep.mac, mtu=self.options(network).mtu,
                                           alias=alias,
                                           addresses=[a for a in (ep.ipv4,) if a], default_route=default,
                                           routes=[] if default else pools)
        # what the container holds: a /32, and its gateway is the link-local next hop
        ipv4 = f"{ep.ipv4.split('/')[0]}/32" if ep.ipv4 else ""
        return ep.with_changes(host_ifname=host, ipv4=ipv4, gateways=() if network.internal else (GATEWAY4,))

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        if ep.host_ifname:  # the /32 route goes with the link
            await self._kernel.retire_veth(ep.host_ifname, netns_path, ep.ifname, ep.id)

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        out = []
        for ep in endpoints:
            link = links.get(ep.host_ifname)
            if link is None:
                out.append(Problem(f"endpoint {ep.name}: veth {ep.host_ifname} is missing", ep.id))
            elif not link.up:
                out.append(Problem(f"endpoint {ep.name}: veth {ep.host_ifname} is down", ep.id))
        return out

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        if not ep.host_ifname or await self._kernel.link(ep.host_ifname) is None:
            return await self.join(network, ep, netns_path, alias, gateway)
        await self._kernel.routed_host_routes(ep.host_ifname, [a for a in (ep.ipv4,) if a])
        return ep

    # -- the cluster's verbs: routes come by block through BGP, not per endpoint -----------
    async def peer_added(self, network: Network, peer: Peer) -> None:
        pass

    async def peer_removed(self, network: Network, peer: Peer) -> None:
        pass

    async def reconcile_peers(self, network: Network, peers: list[Peer]) -> None:
        pass

    async def discover_new(self, host: dict[str, str]) -> None:
        """Nothing here: controller.routing re-renders BGP's peers from the cluster's hosts."""

    async def discover_delete(self, host: dict[str, str]) -> None:
        """As discover_new."""
