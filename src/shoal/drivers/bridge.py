"""The bridge driver: one Linux bridge per network, the gateways as its addresses.

Steps are small idempotent `ensure_*` calls on the kernel facade, so `restore_network`
is the same code as `create_network` minus the "is the name free" check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from shoal.drivers.base import Capabilities, Problem
from shoal.drivers.l2 import OPT_NAME, BridgeOptions
from shoal.errors import Forbidden
from shoal.kernel import Kernel, KernelError, LinkInfo
from shoal.model import Endpoint, Network, NetworkSpec


def bridge_mac(alias: str) -> str:
    """A fixed MAC for a bridge, as Docker gives every bridge it makes one: derived from the
    bridge's ownership mark (engine and network id), so a bridge recreated after a reboot
    gets the same one without storing it, and two engines never share one. Locally
    administered, unicast."""
    raw = bytearray(hashlib.sha256(alias.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


class BridgeDriver:
    name = "bridge"
    capabilities = Capabilities()

    def __init__(self, kernel: Kernel, default_mtu: int = 1500) -> None:
        self._kernel = kernel
        self._default_mtu = default_mtu
        self._bridges: dict[str, str] = {}  # network id -> bridge name

    def options(self, network: Network) -> BridgeOptions:
        return BridgeOptions.parse(network.options, network.id, self._default_mtu)

    def validate(self, spec: NetworkSpec) -> None:
        BridgeOptions.parse(spec.options, "", self._default_mtu)

    def bridge_of(self, network: Network) -> BridgeOptions | None:
        return self.options(network)

    def bridge_name(self, network: Network) -> str:
        return self.options(network).bridge_name

    def _addresses(self, network: Network, opts: BridgeOptions) -> list[str]:
        out = []
        for cfg in network.ipam_configs:
            if not cfg.gateway or (opts.inhibit_ipv4 and not cfg.is_v6):
                continue
            out.append(f"{cfg.gateway}/{cfg.subnet.split('/')[1]}")
        return out

    async def create_network(self, network: Network, alias: str) -> None:
        opts = self.options(network)
        name = opts.bridge_name
        for other_id, other in self._bridges.items():
            if other == name and other_id != network.id:
                raise Forbidden(f"bridge name {name} is already used by network {other_id[:12]}")
        if await self._kernel.link(name) is not None:
            raise Forbidden(
                f"bridge name {name} is already in use by an interface shoal does not own; "
                f"choose another with -o {OPT_NAME}=NAME"
            )
        await self._kernel.ensure_bridge(
            name, mtu=opts.mtu, addresses=self._addresses(network, opts), alias=alias, mac=bridge_mac(alias)
        )
        self._bridges[network.id] = name

    async def restore_network(self, network: Network, alias: str) -> None:
        opts = self.options(network)
        existing = await self._kernel.link(opts.bridge_name)
        if existing is not None and existing.alias != alias:
            raise Forbidden(f"bridge {opts.bridge_name} exists but is not shoal's; not touching it")
        await self._kernel.ensure_bridge(
            opts.bridge_name, mtu=opts.mtu, addresses=self._addresses(network, opts), alias=alias,
            mac=bridge_mac(alias),
        )
        self._bridges[network.id] = opts.bridge_name

    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        """Veth pair: host end `veth<7 hex>` on the bridge, container end inside the sandbox.
        No `netns_path` (a sandbox handed off to another engine): the container end stays
        in the host's namespace as `ep.ifname`, unconfigured; that engine moves it."""
        opts = self.options(network)
        host = f"veth{ep.id[:7]}"
        await self._kernel.add_veth(
            host, ep.ifname, netns_path, mac=ep.mac, mtu=opts.mtu, bridge=opts.bridge_name, alias=alias
        )
        if not netns_path:
            return ep.with_changes(host_ifname=host)
        try:
            gws = [gw for addr in (ep.ipv4, ep.ipv6) if (gw := network.gateway_for(addr))]
            addrs = [a for a in (ep.ipv4, ep.ipv6) if a]
            await self._kernel.configure_iface(
                netns_path, ep.ifname, addrs, gws, default_route=gateway and not network.internal
            )
        except BaseException:
            await self._kernel.delete_link(host)
            raise
        return ep.with_changes(host_ifname=host)

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        """Retired, not deleted (as a network's bridge): both ends lose their names and
        addresses at once, the pair's slow unregistration finishes in the background."""
        if ep.host_ifname:
            await self._kernel.retire_veth(ep.host_ifname, netns_path, ep.ifname, ep.id)

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        opts = self.options(network)
        bridge = links.get(opts.bridge_name)
        if bridge is None:
            return [Problem(f"bridge {opts.bridge_name} is missing")] + [
                Problem(f"endpoint {ep.name}: no bridge to be a port of", ep.id) for ep in endpoints]
        out = []
        if bridge.alias != alias:
            out.append(Problem(f"bridge {opts.bridge_name} is not marked as this network's ({bridge.alias!r})"))
        if not bridge.up:
            out.append(Problem(f"bridge {opts.bridge_name} is down"))
        missing = sorted(set(self._addresses(network, opts)) - set(bridge.addresses))
        if missing:
            out.append(Problem(f"bridge {opts.bridge_name} lacks its gateway address {', '.join(missing)}"))
        for ep in endpoints:
            out += self._verify_port(ep, bridge, links)
        return out

    @staticmethod
    def _verify_port(ep: Endpoint, bridge: LinkInfo, links: Mapping[str, LinkInfo]) -> list[Problem]:
        port = links.get(ep.host_ifname)
        if port is None:
            return [Problem(f"endpoint {ep.name}: veth {ep.host_ifname} is missing", ep.id)]
        if port.master != bridge.index:
            return [Problem(f"endpoint {ep.name}: veth {ep.host_ifname} is not a port of {bridge.name}", ep.id)]
        if not port.up:
            return [Problem(f"endpoint {ep.name}: veth {ep.host_ifname} is down", ep.id)]
        return []

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        """A veth deleted from outside is made again (its peer went with it); one that left
        its bridge (the bridge was deleted and recreated) is put back."""
        if not ep.host_ifname or await self._kernel.link(ep.host_ifname) is None:
            return await self.join(network, ep, netns_path, alias, gateway)
        try:
            await self._kernel.attach_port(ep.host_ifname, self.options(network).bridge_name)
        except KernelError:
            await self._kernel.delete_link(ep.host_ifname)
            return await self.join(network, ep, netns_path, alias, gateway)
        return ep

    async def delete_network(self, network: Network) -> None:
        """Retired, not deleted: the name and the subnet are free at once, the kernel's slow
        unregistration finishes in the background (a crash meanwhile leaves a link marked
        ours and owned by nothing, which restore deletes)."""
        opts = self.options(network)
        name = self._bridges.pop(network.id, None) or opts.bridge_name
        await self._kernel.retire_link(name, network.id, self._addresses(network, opts))
