"""The overlay driver: one network stretched over every host of a cluster with VXLAN.

On each host a network is a Linux bridge `ov-<id 12>` holding the network's gateway
address, with a VXLAN device `vx-<id 12>` enslaved to it (Docker's classic overlay
without its per-network namespace, the "host mode" it falls back to; isolation comes
from shoal's nftables tables as for bridges). Every host holds the same gateway address:
a distributed gateway. That is safe because no broadcast ever crosses hosts: the VXLAN
device has learning off, no flood entry and proxy ARP from a neighbour table that the
cluster fills with one permanent entry per remote endpoint (and an FDB entry to its
host's VTEP). So a container's ARP for its gateway is answered by its own host, and its
egress and published ports go through its own host like a bridge network's (Docker
needs a second network, docker_gwbridge, for that).

Remote endpoints arrive from the cluster store (`controller.cluster`) as `Peer`s through
the global-scope verbs `peer_added`, `peer_removed` and `reconcile_peers`; this driver
only turns them into kernel entries, and the cluster never knows how.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shoal.drivers.base import Capabilities, Problem
from shoal.drivers.bridge import BridgeDriver
from shoal.drivers.l2 import OPT_ICC, BridgeOptions
from shoal.drivers.options import parse_bool, parse_int
from shoal.errors import Forbidden, InvalidParameter
from shoal.kernel import Kernel, LinkInfo
from shoal.model import Endpoint, Network, NetworkSpec, Peer

OPT_MTU = "com.docker.network.driver.mtu"
OPT_VNI = "com.docker.network.driver.overlay.vxlanid_list"
VXLAN_OVERHEAD = 50  # inner Ethernet 14 + outer IPv4 20 + UDP 8 + VXLAN 8
VXLAN_PORT = 4789
KNOWN = {OPT_MTU, OPT_VNI, OPT_ICC}
MIN_MTU_V4, MIN_MTU_V6 = 68, 1280


@dataclass(frozen=True)
class OverlayPlan:
    """What a host needs to know to build its side of an overlay network."""

    vni: int
    mtu: int  # the containers' (and the bridge's) MTU: the base less the VXLAN overhead


def overlay_plan_vni(options: dict[str, str]) -> int:
    """The VXLAN id a user asked for (Docker's option, first id of the list), or 0."""
    raw = options.get(OPT_VNI, "")
    try:
        vni = int(raw.split(",")[0]) if raw else 0
    except ValueError:
        raise InvalidParameter(f"invalid {OPT_VNI} {raw!r}: expected a VXLAN id from 1 to 16777215") from None
    if raw and not 1 <= vni < 1 << 24:
        raise InvalidParameter(f"invalid {OPT_VNI} {raw!r}: expected a VXLAN id from 1 to 16777215")
    return vni


def overlay_plan(network: Network, underlay_mtu: int) -> OverlayPlan:
    """The VNI is decided once, cluster-wide, and kept in the network's options."""
    opts = network.options
    base = parse_int(opts, OPT_MTU, underlay_mtu, MIN_MTU_V4 + VXLAN_OVERHEAD, 65535)
    try:
        vni = int(opts.get(OPT_VNI, "0").split(",")[0])
    except ValueError:
        raise InvalidParameter(f"invalid {OPT_VNI} {opts.get(OPT_VNI)!r}: expected a VXLAN id") from None
    return OverlayPlan(vni=vni, mtu=min(base, underlay_mtu) - VXLAN_OVERHEAD)


class OverlayDriver(BridgeDriver):
    """A bridge plus a VXLAN device per network and host; peers programmed on request."""

    name = "overlay"
    capabilities = Capabilities(scope="global")

    def __init__(self, kernel: Kernel, *, vtep: str = "", underlay_mtu: int = 1500, port: int = VXLAN_PORT) -> None:
        super().__init__(kernel, default_mtu=underlay_mtu)
        self.vtep = vtep  # empty: no cluster store, no overlay networks
        self.underlay_mtu = underlay_mtu
        self.port = port

    # -- options -------------------------------------------------------------------------
    def validate(self, spec: NetworkSpec) -> None:
        if not self.vtep:
            raise Forbidden(
                "overlay networks need a cluster store: start shoald with --cluster-store etcd://HOST:PORT "
                "and --cluster-advertise IP (or IFACE)"
            )
        unknown = sorted(set(spec.options) - KNOWN)
        if unknown:
            raise InvalidParameter(f"unknown overlay driver options: {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(KNOWN))})")
        self._check_mtu(spec)
        parse_bool(spec.options, OPT_ICC, True)
        overlay_plan_vni(spec.options)

    def _check_mtu(self, spec: NetworkSpec) -> None:
        """The containers get the lower of the option and the underlay's MTU, less VXLAN's
        overhead (`overlay_plan`), so that is what must reach the floor: an option above a
        small underlay's MTU does not lift it."""
        base = parse_int(spec.options, OPT_MTU, self.underlay_mtu, 1, 65535)
        mtu = min(base, self.underlay_mtu) - VXLAN_OVERHEAD
        floor = MIN_MTU_V6 if spec.enable_ipv6 else MIN_MTU_V4
        if mtu >= floor:
            return
        family = "IPv6 " if spec.enable_ipv6 else ""
        if base <= self.underlay_mtu and OPT_MTU in spec.options:
            raise InvalidParameter(f"invalid {OPT_MTU} {base}: containers would get {mtu}, below the {family}"
                                   f"minimum {floor} (give at least {floor + VXLAN_OVERHEAD})")
        raise InvalidParameter(f"the underlay's MTU {self.underlay_mtu} is too small for an {family}overlay: "
                               f"containers would get {mtu}, below the {family}minimum {floor}")

    def options(self, network: Network) -> BridgeOptions:
        plan = overlay_plan(network, self.underlay_mtu)
        return BridgeOptions(bridge_name=f"ov-{network.id[:12]}", mtu=plan.mtu,
                             enable_icc=parse_bool(network.options, OPT_ICC, True))

    @staticmethod
    def vxlan_name(network: Network) -> str:
        return f"vx-{network.id[:12]}"

    # -- network objects ---------------------------------------------------------------
    async def create_network(self, network: Network, alias: str) -> None:
        await super().create_network(network, alias)
        try:
            await self._ensure_vxlan(network, alias)
        except BaseException:
            await super().delete_network(network)
            raise

    async def restore_network(self, network: Network, alias: str) -> None:
        await super().restore_network(network, alias)
        await self._ensure_vxlan(network, alias)

    async def _ensure_vxlan(self, network: Network, alias: str) -> None:
        plan = overlay_plan(network, self.underlay_mtu)
        await self._kernel.ensure_vxlan(
            self.vxlan_name(network), vni=plan.vni, local=self.vtep, port=self.port, mtu=plan.mtu,
            bridge=self.options(network).bridge_name, alias=alias,
        )

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        out = super().verify(network, alias, endpoints, links)
        name, bridge = self.vxlan_name(network), links.get(self.options(network).bridge_name)
        vxlan = links.get(name)
        if vxlan is None:
            out.append(Problem(f"vxlan device {name} is missing"))
        elif bridge is not None and vxlan.master != bridge.index:
            out.append(Problem(f"vxlan device {name} is not a port of {bridge.name}"))
        return out

    async def delete_network(self, network: Network) -> None:
        link = await self._kernel.link(self.vxlan_name(network))
        if link is not None and link.alias.endswith(network.id):
            await self._kernel.delete_link(link.name)
        await super().delete_network(network)

    # -- peers (remote endpoints) --------------------------------------------------------
    async def peer_added(self, network: Network, peer: Peer) -> None:
        """ARP/ND for it answered locally from the neighbour table, frames to its MAC sent
        to its host. Replace semantics: an address that moved hosts is updated."""
        dev = self.vxlan_name(network)
        await self._kernel.fdb_replace(dev, peer.mac, peer.vtep)
        for ip in peer.ips:
            await self._kernel.neigh_replace(dev, ip, peer.mac)

    async def peer_removed(self, network: Network, peer: Peer) -> None:
        dev = self.vxlan_name(network)
        for ip in peer.ips:
            await self._kernel.neigh_delete(dev, ip)
        await self._kernel.fdb_delete(dev, peer.mac, peer.vtep)

    async def reconcile_peers(self, network: Network, peers: list[Peer]) -> None:
        """The device's FDB and neighbour tables become exactly `peers`: stale entries go
        (the anchors' most reported overlay bug), missing ones come back."""
        dev = self.vxlan_name(network)
        want_fdb = {(p.mac, p.vtep) for p in peers}
        want_neigh = {(ip, p.mac) for p in peers for ip in p.ips}
        have_fdb = set(await self._kernel.fdb_entries(dev))
        have_neigh = set(await self._kernel.neigh_entries(dev))
        for mac, dst in have_fdb - want_fdb:
            await self._kernel.fdb_delete(dev, mac, dst)
        for ip, _ in have_neigh - want_neigh:
            await self._kernel.neigh_delete(dev, ip)
        for mac, dst in want_fdb - have_fdb:
            await self._kernel.fdb_replace(dev, mac, dst)
        for ip, mac in want_neigh - have_neigh:
            await self._kernel.neigh_replace(dev, ip, mac)

    async def discover_new(self, host: dict[str, str]) -> None:
        """Nothing to do: peers are programmed per endpoint, and a host without endpoints
        needs no entry (flannel's per-host routes are the other design, see docs)."""

    async def discover_delete(self, host: dict[str, str]) -> None:
        """Nothing to do: the host's endpoint keys expire with its lease, and their delete
        events remove its peers."""
