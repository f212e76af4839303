"""Other runtimes' containers on shoal's networks: the backend of the `shoal-cni` plugin.

podman, containerd or a kubelet own the container and its network namespace; shoal only
plumbs an endpoint into that namespace, exactly as for its own containers (the same
driver verbs, IPAM, firewall and restore), under a sandbox marked `external` whose id is
the runtime's container id. The namespace is never created or deleted here; one that
vanished without a CNI DEL is detached by the self-heal (`repair.orphans`).

The verbs follow CNI's: `attach` (ADD) fails when the interface or network is already
attached, `detach` (DEL) is idempotent, `check` (CHECK) lists what differs, `collect`
(GC) detaches what the runtime no longer names. Results are CNI 1.1 result objects, the
same shape as the reference `bridge` plugin's (bridge, host veth, container interface).
CNI's `portMappings` are published the way `docker run -p` is (host ports held by the
Publisher's allocator, DNAT elements in the firewall) and kept on the sandbox's record,
the allocator's owner being the sandbox id, so restore, the checker and repair see them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import TYPE_CHECKING, Any

from shoal.controller.firewalling import network_config
from shoal.controller.undo import Undo
from shoal.errors import Conflict, InvalidParameter, NotFound
from shoal.model import Endpoint, Network, validate
from shoal.model.ports import PortRequest

if TYPE_CHECKING:
    from shoal.controller.controller import Controller
    from shoal.controller.publishing import Publisher

CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")  # CNI's CNI_CONTAINERID rule


def check_container_id(cid: str) -> str:
    if not isinstance(cid, str) or not CONTAINER_ID.match(cid) or len(cid) > 256:
        raise InvalidParameter(f"invalid container id {cid!r}: it must start with a letter or digit, "
                               "then letters, digits, '_', '.' or '-'")
    return cid


class ForeignAttachments:
    def __init__(self, ctl: Controller, publisher: Publisher) -> None:
        self.ctl, self.publisher = ctl, publisher

    async def attach(self, network_ref: str, cid: str, netns: str, ifname: str, *, mac: str = "",
                     ips: tuple[str, ...] = (), ports: tuple[PortRequest, ...] = ()) -> dict[str, Any]:
        ctl = self.ctl
        check_container_id(cid)
        validate.ifname(ifname, "interface name")
        network = ctl.find_network(network_ref)
        if not ctl.driver(network.driver).capabilities.uses_ipam:
            raise InvalidParameter(f"network {network.name} (driver {network.driver}) has no interfaces to attach")
        if ports and (network.internal or network_config(ctl, network) is None):
            raise InvalidParameter(f"network {network.name} cannot publish ports: it is internal or has no bridge")
        if not await ctl.kernel.is_netns(netns):
            raise InvalidParameter(f"{netns} is not a network namespace")
        ipv4, ipv6 = _static(ips)
        known = ctl.sandboxes.get(cid)
        if known is not None and (not known.external or known.path != netns):
            raise Conflict(f"container {cid[:12]} is attached from another namespace ({known.path})")
        await ctl.create_sandbox(cid, external=netns)
        ep = None
        try:
            ep = await ctl.connect(network.id, cid, name=cid, ipv4=ipv4, ipv6=ipv6, mac=mac, ifname=ifname)
            if ports:
                await self._publish(network, ep, ports)
        except BaseException:
            if ep is not None:
                await ctl.disconnect(network.id, cid, force=True)
            if known is None and not ctl.endpoints_in(cid):
                await ctl.delete_sandbox(cid)
            raise
        return await self.result(network, ep, netns)

    async def _publish(self, network: Network, ep: Endpoint, reqs: tuple[PortRequest, ...]) -> None:
        """CNI's portMappings, all or nothing: held, DNATed, then kept on the sandbox."""
        if not ep.ipv4:
            raise InvalidParameter(f"network {network.name} gave no IPv4 address to publish ports to")
        undo = Undo()
        try:
            bindings = await self.publisher.publish_to(ep.sandbox_id, network, ep, list(reqs), undo)
            sb = self.ctl.sandboxes[ep.sandbox_id]
            await self.ctl.update_sandbox(dataclasses.replace(sb, ports=sb.ports + bindings))
        except BaseException:
            await undo.run()
            raise

    async def _unpublish(self, ep: Endpoint) -> None:
        """The ports published to this attachment's addresses (its sandbox may have others)."""
        sb = self.ctl.sandboxes.get(ep.sandbox_id)
        mine = tuple(b for b in sb.ports if b.container_ip in ep.ips) if sb is not None else ()
        if not mine:
            return
        await self.ctl.update_sandbox(dataclasses.replace(sb, ports=tuple(b for b in sb.ports if b not in mine)))
        await self.publisher.unpublish_bindings(ep.sandbox_id, mine)

    async def detach(self, cid: str, ifname: str, network_ref: str = "") -> bool:
        """True if something was detached; a container, interface or network that is not
        (or no longer) there is no error: CNI's DEL must succeed then."""
        ctl = self.ctl
        sb = ctl.sandboxes.get(cid)
        if sb is None or not sb.external:
            return False
        network = _maybe_network(ctl, network_ref)
        gone = [e for e in ctl.endpoints_in(cid) if e.ifname == ifname and (network is None or e.network_id == network.id)]
        for ep in gone:
            await self._unpublish(ep)
            await ctl.disconnect(ep.network_id, cid, force=True)
        if not ctl.endpoints_in(cid):
            await ctl.delete_sandbox(cid)
        return bool(gone)

    async def check(self, network_ref: str, cid: str, ifname: str) -> list[str]:
        """What differs from the attachment ADD made (empty: all is well)."""
        ctl = self.ctl
        network = ctl.find_network(network_ref)
        ep = self._endpoint(network, cid, ifname)
        sb = ctl.sandboxes[cid]
        if not await ctl.kernel.netns_alive(sb.path):
            return [f"the namespace {sb.path} is gone"]
        inside = await ctl.kernel.sandbox_addresses(sb.path)
        if ifname not in inside:
            return [f"interface {ifname} is missing in {sb.path}"]
        return [f"{ifname} lacks {a}" for a in (ep.ipv4, ep.ipv6) if a and a not in inside[ifname]]

    async def collect(self, network_ref: str, valid: set[tuple[str, str]]) -> list[str]:
        """Detach every attachment on the network that `valid` ((container id, ifname)) does
        not name; returns "cid/ifname" of each one detached."""
        ctl = self.ctl
        network = ctl.find_network(network_ref)
        stale = [(e.sandbox_id, e.ifname) for e in ctl.endpoints_of(network.id)
                 if (sb := ctl.sandboxes.get(e.sandbox_id)) is not None and sb.external
                 and (e.sandbox_id, e.ifname) not in valid]
        for cid, ifname in stale:
            await self.detach(cid, ifname, network.id)
        return [f"{cid}/{ifname}" for cid, ifname in stale]

    def status(self, network_ref: str) -> Network:
        return self.ctl.find_network(network_ref)

    def _endpoint(self, network: Network, cid: str, ifname: str) -> Endpoint:
        sb = self.ctl.sandboxes.get(cid)
        found = [e for e in self.ctl.endpoints_in(cid) if e.network_id == network.id and e.ifname == ifname]
        if sb is None or not sb.external or not found:
            raise NotFound(f"container {cid[:12]} has no interface {ifname} on network {network.name}")
        return found[0]

    async def result(self, network: Network, ep: Endpoint, netns: str) -> dict[str, Any]:
        """A CNI result: the bridge and the host end (when the driver has them), then the
        container's interface; its addresses with their gateways; the default routes when
        this endpoint gives the sandbox its gateway (shoal's rule, as for its containers)."""
        ctl = self.ctl
        interfaces = []
        opts = ctl.driver(network.driver).bridge_of(network)
        for name in (opts.bridge_name if opts is not None else "", ep.host_ifname):
            link = await ctl.kernel.link(name) if name else None
            if link is not None:
                interfaces.append({"name": link.name, "mac": link.mac})
        interfaces.append({"name": ep.ifname, "mac": ep.mac, "sandbox": netns})
        index = len(interfaces) - 1
        ips, routes = [], []
        first = ctl.gateway_of(ctl.endpoints_in(ep.sandbox_id))
        for cidr in (ep.ipv4, ep.ipv6):
            if not cidr:
                continue
            entry: dict[str, Any] = {"address": cidr, "interface": index}
            gw = network.gateway_for(cidr)
            if gw:
                entry["gateway"] = gw
                if first is not None and first.id == ep.id and not network.internal:
                    routes.append({"dst": "::/0" if ":" in cidr else "0.0.0.0/0", "gw": gw})
            ips.append(entry)
        return {"interfaces": interfaces, "ips": ips, "routes": routes, "dns": {}}


def _static(ips: tuple[str, ...]) -> tuple[str, str]:
    """CNI's `ips` capability ("10.1.0.5/24" or bare): at most one address per family."""
    v4 = v6 = ""
    for text in ips:
        try:
            addr = ipaddress.ip_interface(text).ip
        except ValueError:
            raise InvalidParameter(f"invalid address {text!r} in ips") from None
        if addr.version == 4:
            if v4:
                raise InvalidParameter("more than one IPv4 address in ips")
            v4 = str(addr)
        else:
            if v6:
                raise InvalidParameter("more than one IPv6 address in ips")
            v6 = str(addr)
    return v4, v6


def _maybe_network(ctl: Controller, ref: str) -> Network | None:
    if not ref:
        return None
    try:
        return ctl.find_network(ref)
    except NotFound:
        return None
