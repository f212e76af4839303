"""Bridge policy: what a network's Linux bridge is called and what the firewall enforces
on it, parsed once from Docker's string options. Shared by every driver whose endpoints
hang off a bridge (bridge, overlay) and by the controller, which asks drivers for it."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.drivers.options import parse_bool, parse_int, parse_ipv4
from shoal.model import validate

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
            bridge_name=validate.ifname(name, "bridge name"),
            enable_icc=parse_bool(options, OPT_ICC, True),
            enable_ip_masquerade=parse_bool(options, OPT_MASQ, True),
            host_binding_ipv4=parse_ipv4(options, OPT_HOST_BINDING, "0.0.0.0"),
            mtu=parse_int(options, OPT_MTU, default_mtu, 68, 65535),
            default_bridge=parse_bool(options, OPT_DEFAULT, False),
            inhibit_ipv4=parse_bool(options, OPT_INHIBIT, False),
            iface_prefix=options.get(OPT_IFACE_PREFIX) or "eth",
        )
