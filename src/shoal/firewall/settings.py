"""Kernel settings the ruleset relies on; the kernel layer applies them, never the firewall.

All are per network namespace: apply them in the daemon's host netns. Sysctl keys are
paths under /proc/sys with `/` separators, so a bridge name with a dot stays unambiguous.

- network_sysctls(net), required_sysctls(state): forwarding and route_localnet.
- br_netfilter_sysctls(on): br_netfilter's per-namespace switches.
- bridge_port_flags(endpoint): hairpin on the endpoint's bridge port.
"""

from __future__ import annotations

from shoal.firewall.config import EndpointConfig, NetworkConfig, State


def network_sysctls(net: NetworkConfig) -> dict[str, str]:
    """What one network needs, set when its bridge is made (before its first endpoint):

    - `net/ipv4/ip_forward`, `net/ipv6/conf/all/forwarding`: containers reach beyond the
      bridge and published ports are forwarded to them (not needed by internal networks).
    - `net/ipv4/conf/<bridge>/route_localnet`: a connection to 127.0.0.1:<published port>,
      DNATed in the output hook, leaves through the bridge with source 127.0.0.1; without
      this the kernel drops it as a martian. The `guard` chain keeps containers from using
      it to reach the host's loopback. IPv6 has no equivalent, so [::1] is not published.
    """
    if net.internal:
        return {}
    if net.routed:  # no bridge: forwarding only (the host veths' own are set by the driver)
        return {"net/ipv4/ip_forward": "1"} if net.subnets4 else {}
    wanted = {}
    if net.subnets4:
        wanted["net/ipv4/ip_forward"] = "1"
        wanted[f"net/ipv4/conf/{net.bridge}/route_localnet"] = "1"
    if net.subnets6:
        wanted["net/ipv6/conf/all/forwarding"] = "1"
    return wanted


def required_sysctls(state: State) -> dict[str, str]:
    """The union over every network of `state`."""
    wanted: dict[str, str] = {}
    for net in state.networks:
        wanted.update(network_sysctls(net))
    return wanted


BR_NETFILTER_KEYS = ("net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables")


def br_netfilter_sysctls(on: bool) -> dict[str, str]:
    """br_netfilter hands every bridged IP frame to the inet hooks (conntrack, shoal's
    chains). No rule of shoal's needs that: ICC off is enforced in the bridge table,
    hairpin traffic is masqueraded and so routed. On an overlay, where each inner frame
    crosses the bridge, turning it off measured ~0.90x -> ~0.97x of a raw VXLAN pair
    (bench/overlay_ab.py). Per namespace; the keys exist only with the module loaded."""
    return {key: "1" if on else "0" for key in BR_NETFILTER_KEYS}


def bridge_port_flags(endpoint: EndpointConfig) -> dict[str, str]:
    """Bridge-port flags for the endpoint's host-side veth, as `ip link set dev <port> type
    bridge_slave <flag> <value>` (netlink: IFLA_BRPORT_MODE for hairpin).

    hairpin: where br_netfilter is active (`net.bridge.bridge-nf-call-iptables=1`, the
    default in every namespace once the module is loaded), a packet DNATed to a container
    on the bridge it came from is bridged, not routed; a container reaching its own
    published port through the host's address then needs the frame sent back out the port
    it arrived on. Without br_netfilter the packet is routed and the flag is harmless.
    Docker sets the same flag when it runs without the userland proxy.
    """
    return {"hairpin": "on"}
