"""From networks and endpoints to the firewall's typed inputs (shoal.firewall.config).

Networks whose driver puts endpoints on a Linux bridge (bridge, overlay) have rules, and
so do routed networks (by their pool and their endpoints' host veths); host and none
have nothing to isolate or publish.
"""

from __future__ import annotations

from typing import Protocol

from shoal.drivers import NetworkDriver
from shoal.drivers.routed import RoutedOptions, routed_tag, veth_prefix
from shoal.firewall import EndpointConfig, NetworkConfig, State
from shoal.model import Endpoint, Network


class Topology(Protocol):
    """What the firewall's view is computed from (the Controller has it): a protocol, so
    this module needs no import of the controller."""

    networks: dict[str, Network]
    endpoints: dict[str, Endpoint]
    drivers: dict[str, NetworkDriver]
    built: set[str]  # global networks with a side on this host (the others have no bridge)


def network_config(ctl: Topology, net: Network) -> NetworkConfig | None:
    """The driver says which Linux bridge the network's endpoints hang off and its policy
    (`bridge_of`); a network without one (host, none) has nothing to isolate or publish."""
    driver = ctl.drivers.get(net.driver)
    if driver is not None and driver.capabilities.routed:
        return routed_config(net)
    opts = driver.bridge_of(net) if driver is not None else None
    if opts is None:
        return None
    return NetworkConfig(
        bridge=opts.bridge_name,
        subnets4=tuple(c.subnet for c in net.v4_configs),
        subnets6=tuple(c.subnet for c in net.v6_configs),
        icc=opts.enable_icc, masquerade=opts.enable_ip_masquerade, internal=net.internal,
        host_binding_ipv4="" if opts.host_binding_ipv4 == "0.0.0.0" else opts.host_binding_ipv4,
    )


def routed_config(net: Network) -> NetworkConfig:
    """A routed network's key is its host veths' name prefix (it has no bridge)."""
    return NetworkConfig(bridge=veth_prefix(net.id), subnets4=tuple(c.subnet for c in net.v4_configs),
                         masquerade=RoutedOptions.parse(net.options).nat_outgoing, internal=net.internal,
                         routed=routed_tag(net.id))


def endpoint_config(ctl: Topology, net: Network, ep: Endpoint) -> EndpointConfig | None:
    cfg = network_config(ctl, net)
    if cfg is None or not ep.host_ifname:
        return None
    return EndpointConfig(cfg.bridge, ep.host_ifname, ep.ips)


def networks_here(ctl: Topology) -> list[Network]:
    """Networks with a side on this host (a global one only once built here)."""
    return [n for n in ctl.networks.values() if n.scope != "global" or n.id in ctl.built]


def state_of(ctl: Topology) -> State:
    """Networks and endpoints as the controller holds them (ports come from containers)."""
    nets = [c for n in networks_here(ctl) if (c := network_config(ctl, n)) is not None]
    eps = []
    for ep in ctl.endpoints.values():
        net = ctl.networks.get(ep.network_id)
        if net is not None and (c := endpoint_config(ctl, net, ep)) is not None:
            eps.append(c)
    return State(networks=tuple(nets), endpoints=tuple(eps))
