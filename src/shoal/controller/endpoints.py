"""Sandboxes and endpoints: attach a network namespace to networks, all-or-nothing.

Kept apart from network create/delete (controller.controller) so each file stays small;
both act on the one Controller and share its lock and store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.controller.firewalling import endpoint_config
from shoal.controller.ids import new_id
from shoal.controller.undo import Undo
from shoal.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    ShoalError,
    Unavailable,
)
from shoal.ipam import OPT_HOST_BOUND, OPT_OWNER, NoAddressAvailable
from shoal.model import Endpoint, Network, Sandbox, validate

if TYPE_CHECKING:
    from shoal.controller.cluster import Cluster
    from shoal.drivers import NetworkDriver
    from shoal.firewall import Firewall
    from shoal.ipam import AddressSpaces, Ipam
    from shoal.kernel import Kernel
    from shoal.store import Store

KIND_ENDPOINT = "endpoint"
MAC_ADDRESS = "com.docker.network.endpoint.macaddress"  # libnetwork's netlabel.MacAddress
log = logging.getLogger("shoal.endpoints")
KIND_SANDBOX = "sandbox"


def mac_for(ipv4: str) -> str:
    """02:42 + the four IPv4 bytes (docker <= 27, and the walkthrough); random without v4."""
    if ipv4:
        raw = ipaddress.ip_interface(ipv4).ip.packed
        return "02:42:" + ":".join(f"{b:02x}" for b in raw)
    octets = [random.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def check_static_address(network: Network, ipv4: str, ipv6: str) -> None:
    """Docker's rules for --ip/--ip6: only on networks with user-configured subnets, inside one."""
    for value, v6 in ((ipv4, False), (ipv6, True)):
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise InvalidParameter(f"invalid IP address {value}") from None
        if network.predefined or not network.ipam_configs:
            raise InvalidParameter(
                "user specified IP address is supported only when connecting to networks with user configured subnets"
            )
        configs = network.v6_configs if v6 else network.v4_configs
        if not any(ip in ipaddress.ip_network(c.subnet) for c in configs):
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {value}")


def check_mac(mac: str) -> None:
    if mac:
        validate.mac(mac)


class EndpointOps:
    """Mixed into Controller, which has what is declared here: declared, not imported, so
    this module needs no import of the controller."""

    sandboxes: dict[str, Sandbox]
    if TYPE_CHECKING:
        lock: asyncio.Lock
        store: Store
        kernel: Kernel
        ipam: AddressSpaces
        firewall: Firewall
        drivers: dict[str, NetworkDriver]
        networks: dict[str, Network]
        endpoints: dict[str, Endpoint]
        built: set[str]
        exec_root: str
        cluster: Cluster | None

        def alias(self, kind: str, object_id: str) -> str: ...
        def find_network(self, ref: str) -> Network: ...
        def endpoints_of(self, network_id: str) -> list[Endpoint]: ...
        def driver(self, name: str) -> NetworkDriver: ...
        def ipam_of(self, network: Network) -> Ipam: ...
        async def build_global(self, network: Network) -> bool: ...
        async def unbuild_global(self, network: Network) -> None: ...

    # -- sandboxes ---------------------------------------------------------------------
    async def create_sandbox(self, sandbox_id: str, *, host: bool = False, external: str = "",
                             handoff: bool = False) -> Sandbox:
        """`external`: the path of another runtime's namespace to use as it is; `handoff`:
        another engine's namespace that shoal never sees (`Sandbox.handoff`)."""
        async with self.lock:
            if sandbox_id in self.sandboxes:
                return self.sandboxes[sandbox_id]
            path = external or ("" if host or handoff else str(Path(self.exec_root) / "netns" / sandbox_id[:12]))
            made = bool(path) and not external
            if made:
                await self.kernel.create_netns(path)  # with lo up
            try:
                sb = Sandbox(sandbox_id, path, external=bool(external) or handoff)
                async with self.store.transaction() as tx:
                    tx.put(KIND_SANDBOX, sb.id, sb.to_dict())
            except BaseException:
                if made:
                    await self.kernel.delete_netns(path)
                raise
            self.sandboxes[sb.id] = sb
            return sb

    async def update_sandbox(self, sb: Sandbox) -> None:
        """A sandbox's record changed (a CNI attachment's published ports): store, then memory."""
        async with self.lock:
            async with self.store.transaction() as tx:
                tx.put(KIND_SANDBOX, sb.id, sb.to_dict())
            self.sandboxes[sb.id] = sb

    async def ensure_sandbox(self, sandbox_id: str) -> Sandbox:
        """After a reboot the netns file is a plain file again: make a fresh namespace there."""
        sb = self.sandbox(sandbox_id)
        if sb.path and not await self.kernel.netns_alive(sb.path):
            async with self.lock:
                await self.kernel.delete_netns(sb.path)
                await self.kernel.create_netns(sb.path)
        return sb

    async def delete_sandbox(self, sandbox_id: str) -> None:
        """Leave every network, then remove the namespace; idempotent."""
        for ep in self.endpoints_in(sandbox_id):
            await self.disconnect(ep.network_id, sandbox_id, force=True)
        async with self.lock:
            async with self.store.transaction() as tx:
                tx.delete(KIND_SANDBOX, sandbox_id)
            sb = self.sandboxes.pop(sandbox_id, None)
            if sb is not None and sb.path and not sb.external:
                try:
                    await self.kernel.delete_netns(sb.path)
                except ShoalError as exc:  # a file no sandbox owns: the self-heal removes it
                    log.warning("sandbox %s: namespace %s not removed: %s", sandbox_id[:12], sb.path, exc)

    def sandbox(self, sandbox_id: str) -> Sandbox:
        try:
            return self.sandboxes[sandbox_id]
        except KeyError:
            raise NotFound(f"sandbox {sandbox_id[:12]} not found") from None

    def gateway_of(self, eps: list[Endpoint]) -> Endpoint | None:
        """The endpoint that gives a sandbox its default route (libnetwork's gateway
        endpoint): of those with an address on a network that is not internal, the one whose
        network's name sorts first, whatever the order they joined in. Measured on dockerd
        20.10: on bridge, `connect zzz` keeps the route on bridge, `connect app` moves it to
        app, disconnecting app moves it back. An endpoint whose driver chose its gateways
        (a plugin's Join) qualifies only when it was given one, as in libnetwork."""
        eligible = [(net.name, ep.id, ep) for ep in eps if (ep.gateways if ep.gateways is not None
                                                             else (ep.ipv4 or ep.ipv6))
                    and (net := self.networks.get(ep.network_id)) is not None and not net.internal]
        return min(eligible)[2] if eligible else None

    def endpoints_in(self, sandbox_id: str) -> list[Endpoint]:
        eps = [e for e in self.endpoints.values() if e.sandbox_id == sandbox_id]
        return sorted(eps, key=lambda e: (len(e.ifname), e.ifname))

    # -- endpoints ---------------------------------------------------------------------
    async def connect(
        self, network_ref: str, sandbox_id: str, *, name: str,
        ipv4: str = "", ipv6: str = "", mac: str = "", aliases: tuple[str, ...] = (), ifname: str = "",
    ) -> Endpoint:
        """`ifname`: the interface's name in the sandbox (CNI_IFNAME); by default the first
        free `ethN`."""
        async with self.lock:
            network = self.find_network(network_ref)
            sb = self.sandbox(sandbox_id)
            present = self.endpoints_in(sandbox_id)
            if any(e.network_id == network.id for e in present):
                raise Conflict(f"container {sandbox_id[:12]} is already attached to network {network.name}")
            if any(e.name == name for e in self.endpoints_of(network.id)):
                raise Forbidden(f"endpoint with name {name} already exists in network {network.name}")
            check_static_address(network, ipv4, ipv6)
            check_mac(mac)
            if ifname and any(e.ifname == ifname for e in present):
                raise Conflict(f"interface {ifname} already exists in sandbox {sandbox_id[:12]}")
            undo = Undo()
            try:
                if await self.build_global(network):
                    undo.push("this host's side of the network", lambda: self.unbuild_global(network))
                ep = await self._new_endpoint(network, sb, present, name, ipv4, ipv6, mac, aliases, undo)
                if ifname and ep.ifname:
                    ep = ep.with_changes(ifname=ifname)
                driver = self.driver(network.driver)
                before = self.gateway_of(present)
                gateway = self.gateway_of([*present, ep]) is ep  # the route moves to it
                if (not sb.is_host or sb.handoff) and driver.capabilities.uses_ipam:
                    ep = await driver.join(network, ep, sb.path, self.alias("ep", ep.id), gateway)
                    undo.push("leave", lambda: driver.leave(network, ep, sb.path))
                    await self._firewall_endpoint(network, ep, undo)
                    await self._hand_over(before, self.gateway_of([*present, ep]), undo)
                    if driver.capabilities.external_connectivity:
                        ext: Any = driver  # drivers.ExternalConnectivity
                        await ext.endpoint_info(network, ep)
                async with self.store.transaction() as tx:
                    tx.put(KIND_ENDPOINT, ep.id, ep.to_dict())
                if network.scope == "global" and self.cluster is not None:
                    undo.push("store", lambda: self._forget_endpoint(ep.id))
                    await self.cluster.publish_endpoint(ep)  # peers program it from here
            except BaseException:
                await undo.run()
                raise
            self.endpoints[ep.id] = ep
            return ep

    async def _hand_over(self, old: Endpoint | None, new: Endpoint | None, undo: Undo | None = None) -> None:
        """The sandbox's gateway endpoint changed: a driver that programs the way out
        itself hears it (libnetwork: Revoke on the old one, then Program on the new). With
        `undo` (a connect) a failure is the connect's; without (a leave), it is logged."""
        if old is new or (old is not None and new is not None and old.id == new.id):
            return
        for ep, verb in ((old, "revoke"), (new, "program")):
            network = self.networks.get(ep.network_id) if ep is not None else None
            if ep is None or network is None:
                continue
            driver = self.driver(network.driver)
            if not driver.capabilities.external_connectivity:
                continue
            ext: Any = driver  # drivers.ExternalConnectivity
            try:
                if verb == "revoke":
                    await ext.revoke_external(network, ep)
                    if undo is not None:
                        undo.push("program again", lambda ext=ext, n=network, e=ep: ext.program_external(n, e))
                elif not network.internal:
                    await ext.program_external(network, ep)
                    if undo is not None:
                        undo.push("revoke", lambda ext=ext, n=network, e=ep: ext.revoke_external(n, e))
            except ShoalError as exc:
                if undo is not None:
                    raise
                log.warning("endpoint %s: external connectivity not %sd: %s", ep.name, verb, exc.message)

    async def _firewall_endpoint(self, network: Network, ep: Endpoint, undo: Undo) -> None:
        cfg = endpoint_config(self, network, ep)
        if cfg is None:
            return
        if not self.driver(network.driver).capabilities.routed:  # a routed veth is no bridge port
            await self.kernel.set_hairpin(ep.host_ifname)
        await self.firewall.add_endpoint(cfg)
        undo.push("firewall endpoint", lambda: self.firewall.remove_endpoint(cfg))

    async def _new_endpoint(
        self, network: Network, sb: Sandbox, present: list[Endpoint], name: str,
        ipv4: str, ipv6: str, mac: str, aliases: tuple[str, ...], undo: Undo,
    ) -> Endpoint:
        ep_id = new_id()
        caps = self.driver(network.driver).capabilities
        uses_iface = (not sb.is_host or sb.handoff) and caps.uses_ipam
        extra = {}
        if uses_iface and self.ipam_of(network).capabilities.requires_mac_address:
            mac = mac or mac_for("")  # the allocator is told the MAC (libnetwork makes a random one)
            extra[MAC_ADDRESS] = mac
        v4 = await self._address(network, ipv4, False, undo, ep_id, extra) if network.v4_configs else ""
        v6 = (await self._address(network, ipv6, True, undo, ep_id, extra)
              if network.enable_ipv6 and network.v6_configs else "")
        used = {e.ifname for e in present}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        if uses_iface and caps.derives_mac:
            mac = mac or mac_for(v4)
        return Endpoint(
            id=ep_id, network_id=network.id, name=name, sandbox_id=sb.id, ipv4=v4, ipv6=v6,
            mac=mac if uses_iface else "", ifname=ifname if uses_iface else "",
            aliases=tuple(aliases), static_ipv4=bool(ipv4), static_ipv6=bool(ipv6),
        )

    async def _forget_endpoint(self, endpoint_id: str) -> None:
        async with self.store.transaction() as tx:
            tx.delete(KIND_ENDPOINT, endpoint_id)

    async def _address(self, network: Network, wanted: str, v6: bool, undo: Undo, owner: str,
                       extra: dict[str, str] | None = None) -> str:
        """A dynamic address comes from the first of the family's subnets with one free, as
        libnetwork tries its pools in order (a full first subnet is not a full network);
        an allocator that cannot be reached is not a full subnet (each try would wait out
        its timeout, and a glitch would skip free addresses). The address is the
        endpoint's and lives with its host (a cluster allocator frees it with the host)."""
        configs = network.v6_configs if v6 else network.v4_configs
        if wanted:
            ip = ipaddress.ip_address(wanted)
            configs = tuple(c for c in configs if ip in ipaddress.ip_network(c.subnet))[:1]
        ipam = self.ipam_of(network)
        for i, cfg in enumerate(configs):
            try:
                addr, _ = await ipam.request_address(cfg.pool_id, wanted, {**(extra or {}), OPT_OWNER: owner,
                                                                           OPT_HOST_BOUND: "true"})
            except NoAddressAvailable:
                if i == len(configs) - 1:
                    raise
                continue
            undo.push(f"release {addr}", lambda cfg=cfg, addr=addr: ipam.release_address(cfg.pool_id, addr))
            return addr
        raise Unavailable(f"no subnet of network {network.name} holds the address {wanted}")

    async def disconnect(self, network_ref: str, sandbox_id: str, *, force: bool = False) -> None:
        async with self.lock:
            try:
                network = self.find_network(network_ref)
            except NotFound:
                if not force:
                    raise
                network = None
            eps = [e for e in self.endpoints_in(sandbox_id) if network is None or e.network_id == network.id]
            if not eps:
                if force:
                    return
                name = network.name if network else network_ref
                raise InvalidParameter(f"container {sandbox_id[:12]} is not connected to network {name}")
            for ep in eps:
                was_gateway = self.gateway_of(self.endpoints_in(sandbox_id)) is ep
                if was_gateway:  # libnetwork revokes before the driver's Leave
                    await self._hand_over(ep, None)
                await self._remove_endpoint(ep)
                if was_gateway:
                    await self._move_default_route(sandbox_id)
                    await self._hand_over(None, self.gateway_of(self.endpoints_in(sandbox_id)))

    async def _move_default_route(self, sandbox_id: str) -> None:
        """The endpoint with the default route left: the next one gives it (libnetwork's
        updateGateway), so the container keeps its egress."""
        sb = self.sandboxes.get(sandbox_id)
        new = self.gateway_of(self.endpoints_in(sandbox_id))
        if sb is None or sb.is_host or new is None or not new.ifname:
            return
        network = self.networks[new.network_id]
        gws = list(new.gateways) if new.gateways is not None else [
            gw for addr in (new.ipv4, new.ipv6) if addr and (gw := network.gateway_for(addr))]
        try:
            await self.kernel.configure_iface(sb.path, new.ifname, [], gws, default_route=True)
        except ShoalError as exc:
            log.warning("sandbox %s: default route not moved to %s: %s", sandbox_id[:12], new.ifname, exc)

    async def _remove_endpoint(self, ep: Endpoint) -> None:
        """The kernel side first, each step undoable, then the store's delete: a failure
        leaves the endpoint whole, a crash before the delete is repaired at restore."""
        network = self.networks.get(ep.network_id)
        if network is not None:
            undo = Undo()
            try:
                await self._unplumb(network, ep, undo)
                await self._forget_endpoint(ep.id)
            except BaseException:
                await undo.run()
                raise
        else:
            await self._forget_endpoint(ep.id)
        self.endpoints.pop(ep.id, None)
        if network is None:
            return
        try:
            if network.scope == "global" and self.cluster is not None:
                await self.cluster.withdraw_endpoint(ep)
            await self._release_addresses(network, ep)
        except ShoalError as exc:  # on our lease: gone at the next resync, or when it expires
            log.warning("endpoint %s: not withdrawn from the cluster store: %s", ep.id[:12], exc)

    async def _unplumb(self, network: Network, ep: Endpoint, undo: Undo) -> None:
        cfg = endpoint_config(self, network, ep)
        if cfg is not None:
            await self.firewall.remove_endpoint(cfg)
            undo.push("firewall endpoint", lambda: self.firewall.add_endpoint(cfg))
        driver = self.driver(network.driver)
        sb = self.sandboxes.get(ep.sandbox_id)
        await driver.leave(network, ep, sb.path if sb is not None and not sb.is_host else "")
        if sb is not None and not sb.is_host and ep.ifname:
            first = self.gateway_of(self.endpoints_in(sb.id))

            async def rejoin() -> None:
                again = await driver.repair_endpoint(network, ep, sb.path, self.alias("ep", ep.id),
                                                     first is not None and first.id == ep.id)
                if cfg is not None and not driver.capabilities.routed:
                    await self.kernel.set_hairpin(again.host_ifname)

            undo.push("rejoin", rejoin)

    async def _release_addresses(self, network: Network, ep: Endpoint) -> None:
        ipam = self.ipam_of(network)
        for cidr in (ep.ipv4, ep.ipv6):
            cfg = network.config_for(cidr)
            if cfg is not None:
                await ipam.release_address(cfg.pool_id, cidr)

    async def rename_endpoints(self, sandbox_id: str, name: str) -> None:
        """A renamed container's endpoints carry its new name (network inspect's `Name`);
        a peer host's copy of a global endpoint keeps the old one until it is published again."""
        async with self.lock:
            renamed = [dataclasses.replace(ep, name=name) for ep in self.endpoints_in(sandbox_id)]
            async with self.store.transaction() as tx:
                for ep in renamed:
                    tx.put(KIND_ENDPOINT, ep.id, ep.to_dict())
            for ep in renamed:
                self.endpoints[ep.id] = ep

    def network_containers(self, network: Network) -> dict[str, Any]:
        """Inspect's `Containers` map: sandbox (container) id -> endpoint summary."""
        out = {}
        for ep in self.endpoints_of(network.id):
            out[ep.sandbox_id] = {
                "Name": ep.name, "EndpointID": ep.id, "MacAddress": ep.mac,
                "IPv4Address": ep.ipv4, "IPv6Address": ep.ipv6,
            }
        return out
