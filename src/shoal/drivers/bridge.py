"""The bridge driver: one Linux bridge per network, the gateways as its addresses.

Steps are small idempotent `ensure_*` calls on the kernel facade, so `restore_network`
is the same code as `create_network` minus the "is the name free" check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shoal.drivers.base import Capabilities
from shoal.drivers.options import check_ifname, parse_bool, parse_int, parse_ipv4
from shoal.errors import Forbidden
from shoal.kernel import Kernel
from shoal.model import Endpoint, Network, NetworkSpec

PREFIX = "com.docker.network.bridge."
OPT_NAME = PREFIX + "name"
OPT_ICC = PREFIX + "enable_icc"
OPT_MASQ = PREFIX + "enable_ip_masquerade"
OPT_HOST_BINDING = PREFIX + "host_binding_ipv4"
OPT_DEFAULT = PREFIX + "default_bridge"
OPT_INHIBIT = PREFIX + "inhibit_ipv4"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_IFACE_PREFIX = "com.docker.network.container_iface_prefix"


@dataclass(frozen=True)
class BridgeOptions:
    """Every bridge option shoal interprets, parsed once from the network's string map."""

    bridge_name: str
    enable_icc: bool = True
    enable_ip_masquerade: bool = True
    host_binding_ipv4: str = "0.0.0.0"
    mtu: int = 1500
    default_bridge: bool = False
    inhibit_ipv4: bool = False
    iface_prefix: str = "eth"

    @classmethod
    def parse(cls, options: dict[str, str], network_id: str = "", default_mtu: int = 1500) -> BridgeOptions:
        name = options.get(OPT_NAME) or (f"br-{network_id[:12]}" if network_id else "br-x")
        return cls(
            bridge_name=check_ifname(name, "bridge name"),
            enable_icc=parse_bool(options, OPT_ICC, True),
            enable_ip_masquerade=parse_bool(options, OPT_MASQ, True),
            host_binding_ipv4=parse_ipv4(options, OPT_HOST_BINDING, "0.0.0.0"),
            mtu=parse_int(options, OPT_MTU, default_mtu, 68, 65535),
            default_bridge=parse_bool(options, OPT_DEFAULT, False),
            inhibit_ipv4=parse_bool(options, OPT_INHIBIT, False),
            iface_prefix=options.get(OPT_IFACE_PREFIX) or "eth",
        )


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
        """Veth pair: host end `veth<7 hex>` on the bridge, container end inside the sandbox."""
        opts = self.options(network)
        host = f"veth{ep.id[:7]}"
        await self._kernel.add_veth(
            host, ep.ifname, netns_path, mac=ep.mac, mtu=opts.mtu, bridge=opts.bridge_name, alias=alias
        )
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

    async def leave(self, network: Network, ep: Endpoint) -> None:
        if ep.host_ifname:
            await self._kernel.delete_link(ep.host_ifname)

    async def delete_network(self, network: Network) -> None:
        name = self._bridges.pop(network.id, None) or self.options(network).bridge_name
        link = await self._kernel.link(name)
        if link is not None and link.alias.endswith(network.id):
            await self._kernel.delete_link(name)
