"""Published ports of running containers: host ports held, DNAT elements in the firewall.

Ports go on the endpoint that gives the container its default route (`gateway_of`: the
non-internal network whose name sorts first), as Docker does, and move with it; a container only on internal networks
publishes nothing.  An unspecified host address means the network's host_binding_ipv4
(default 0.0.0.0), plus `::` with the same port when the container has IPv6.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from shoal.controller.firewalling import network_config
from shoal.controller.ports import PortAllocator, parse_port_bindings
from shoal.controller.undo import Undo
from shoal.errors import Conflict
from shoal.firewall import PortMapping
from shoal.model import Container, Endpoint, Network
from shoal.model.ports import PortBinding, PortRequest

if TYPE_CHECKING:
    from shoal.controller.controller import Controller


def gateway_endpoint(ctl: Controller, eps: list[Endpoint]) -> tuple[Network, Endpoint] | None:
    """Ports go where the default route is (`gateway_of`), when it is an IPv4 endpoint on
    a network with a bridge to publish from."""
    ep = ctl.gateway_of(eps)
    net = ctl.networks.get(ep.network_id) if ep is not None else None
    if net is None or not ep.ipv4 or network_config(ctl, net) is None:
        return None
    return net, ep


def mappings(ctl: Controller, sandbox_id: str, bindings: tuple[PortBinding, ...]) -> list[PortMapping]:
    """The firewall's view of `bindings` (of a container, or of a CNI attachment's
    sandbox): each on the bridge of the endpoint holding its container address (read
    once, not per binding: a range publishes hundreds)."""
    bridges: dict[str, str] = {}
    for ep in ctl.endpoints_in(sandbox_id):
        net = ctl.networks.get(ep.network_id)
        cfg = network_config(ctl, net) if net else None
        if cfg is not None:
            for addr in (ep.ipv4, ep.ipv6):
                if addr:
                    bridges.setdefault(addr.split("/")[0], cfg.bridge)
    return [PortMapping(b.proto, b.host_port, b.container_ip, b.container_port, bridges[b.container_ip], b.host_ip)
            for b in bindings if b.container_ip in bridges]


class Publisher:
    def __init__(self, ctl: Controller, allocator: PortAllocator | None = None) -> None:
        self.ctl = ctl
        self.ports = allocator or PortAllocator()

    def requests(self, rec: Container) -> list[PortRequest]:
        return parse_port_bindings(rec.host_config, rec.config.get("ExposedPorts"))

    async def publish(self, rec: Container, eps: list[Endpoint], undo: Undo) -> tuple[PortBinding, ...]:
        reqs = self.requests(rec)
        found = gateway_endpoint(self.ctl, eps)
        if not reqs or found is None:
            return ()
        net, ep = found
        return await self.publish_to(rec.id, net, ep, reqs, undo)

    async def publish_to(self, owner: str, net: Network, ep: Endpoint, reqs: list[PortRequest],
                         undo: Undo) -> tuple[PortBinding, ...]:
        """Hold the host ports of `reqs` for `owner` and DNAT them to `ep`: a container's
        gateway endpoint, or a CNI attachment (whose sandbox may have others: the undo
        releases only what this call took)."""
        before = self.ports.bindings_of(owner)
        undo.push("release host ports", lambda: self.ports.release(
            owner, only=[b for b in self.ports.bindings_of(owner) if b not in before]))
        bindings: list[PortBinding] = []
        default_ip = network_config(self.ctl, net).host_binding_ipv4 or "0.0.0.0"
        for req in reqs:
            bindings += self._bind_one(owner, req, ep, default_ip)
        maps = mappings(self.ctl, owner, tuple(bindings))
        await self.ctl.firewall.add_ports(maps)
        undo.push("firewall ports", lambda: self.ctl.firewall.remove_ports(maps))
        return tuple(bindings)

    def _bind_one(self, owner: str, req: PortRequest, ep: Endpoint, default_ip: str) -> list[PortBinding]:
        v4, v6 = ep.ipv4.split("/")[0], ep.ipv6.split("/")[0] if ep.ipv6 else ""
        if req.host_ip and ipaddress.ip_address(req.host_ip).version == 6:
            return [self.ports.allocate(owner, req, v6)] if v6 else []
        first = self.ports.allocate(owner, PortRequest(req.container_port, req.proto,
                                                       req.host_ip or default_ip, req.host_port), v4)
        out = [first]
        if not req.host_ip and default_ip == "0.0.0.0" and v6:
            out.append(self.ports.allocate(owner, PortRequest(req.container_port, req.proto, "::",
                                                              first.host_port), v6))
        return out

    async def unpublish(self, rec: Container) -> None:
        await self.unpublish_bindings(rec.id, rec.ports)
        self.ports.release(rec.id)

    async def unpublish_bindings(self, owner: str, bindings: tuple[PortBinding, ...]) -> None:
        maps = mappings(self.ctl, owner, bindings)
        if maps:
            await self.ctl.firewall.remove_ports(maps)
        self.ports.release(owner, only=bindings)

    async def republish(self, rec: Container) -> None:
        await self.republish_bindings(rec.id, rec.ports)

    async def republish_bindings(self, owner: str, bindings: tuple[PortBinding, ...]) -> None:
        """After a daemon restart: hold the same host ports again and restore the DNAT."""
        for b in bindings:
            self.ports.allocate(owner, PortRequest(b.container_port, b.proto, b.host_ip, b.host_port),
                                b.container_ip)
        maps = mappings(self.ctl, owner, bindings)
        if maps:
            await self.ctl.firewall.add_ports(maps)

    def check_free(self, rec_host_config: dict, exposed: dict | None) -> None:
        """Explicit host ports taken now fail at create, so nothing is left behind."""
        probe = PortAllocator()
        for req in parse_port_bindings(rec_host_config, exposed):
            if not req.host_port:
                continue
            host_ip = req.host_ip or "0.0.0.0"
            fam_ip = "172.17.0.2" if ":" not in host_ip else "fd00::2"
            if self.ports.taken_by_container(req.proto, host_ip, req.host_port):
                raise Conflict(f"Bind for {host_ip}:{req.host_port} failed: port is already allocated")
            probe.allocate("probe", PortRequest(req.container_port, req.proto, host_ip, req.host_port), fam_ip)
            probe.release("probe")
