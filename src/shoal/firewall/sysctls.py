"""Kernel settings the ruleset relies on; the kernel layer sets them, never the firewall.

Keys are paths under /proc/sys with `/` separators, so a bridge name with a dot in it
stays unambiguous. All are per network namespace: set them in the daemon's host netns.
"""

from __future__ import annotations

from shoal.firewall.config import NetworkConfig, State


def network_sysctls(net: NetworkConfig) -> dict[str, str]:
    """What one network needs, before its first endpoint:

    - `net/ipv4/ip_forward`, `net/ipv6/conf/all/forwarding`: containers reach beyond the
      bridge and published ports are forwarded to them (not needed by internal networks).
    - `net/ipv4/conf/<bridge>/route_localnet`: a connection to 127.0.0.1:<published port>,
      DNATed in the output hook, leaves through the bridge with source 127.0.0.1; without
      this the kernel drops it as a martian. The `guard` chain keeps containers from using
      it to reach the host's loopback. IPv6 has no equivalent, so [::1] is not published.
    """
    if net.internal:
        return {}
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
