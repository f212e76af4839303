"""Create, delete, find and list networks; every change is all-or-nothing.

A create runs IPAM, then the driver (kernel), then one store transaction; any failure
runs the undo stack, so neither the kernel nor the store keeps a half-made network.
Mutations hold one asyncio lock: they are short, and it makes "check the name, then
take it" and IPAM allocation exact under concurrency without further care.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from shoal.controller.endpoints import EndpointOps
from shoal.controller.firewalling import network_config
from shoal.controller.ids import new_id, now_rfc3339
from shoal.controller.undo import Undo
from shoal.drivers import NetworkDriver
from shoal.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    ShoalError,
    Unavailable,
)
from shoal.firewall import Firewall, NoneFirewall, network_sysctls
from shoal.ipam import GATEWAY, OPT_OWNER, REQUEST_ADDRESS_TYPE, AddressSpaces, Ipam
from shoal.ipam.pools import OVERLAP, Spans
from shoal.ipam.validate import check_ipam_configs
from shoal.kernel import Kernel
from shoal.model import Endpoint, IPAMConfig, Network, NetworkSpec, Sandbox
from shoal.model.network import PREDEFINED
from shoal.store import Store

if TYPE_CHECKING:
    from shoal.controller.cluster import Cluster

KIND_NETWORK = "network"
ROUTES_TTL = 5.0
log = logging.getLogger("shoal.controller")


class Plugins(Protocol):
    """Where driver and IPAM names the controller does not know are looked up (Docker's
    remote plugins: shoal.plugins.PluginRegistry, given by the daemon). The lookups
    without `resolve_` ask nothing yet, so a stored network of a plugin that is away is
    still listed, inspected and removed; `resolve_*` finds and activates the plugin,
    raising the user's error (404 `plugin "x" not found`)."""

    def driver(self, name: str) -> NetworkDriver: ...
    def ipam(self, name: str) -> Ipam: ...
    async def resolve_driver(self, name: str) -> NetworkDriver: ...
    async def resolve_ipam(self, name: str) -> Ipam: ...
    async def warm(self, name: str, kind: str) -> bool: ...
    async def close(self) -> None: ...


class SideWatcher(Protocol):
    """Told when this host's side of a global network is built or taken down (the served
    Docker plugins keep dockerd's FORWARD chain open for exactly the bridges that exist);
    asked by the invariant checker what of that is missing, and by repair to put it back."""

    async def side_built(self, network: Network) -> None: ...

    async def side_gone(self, network: Network) -> None: ...

    async def findings(self) -> list[tuple[str, str]]:
        """(subject, problem) for each thing it keeps that is not there."""
        ...

    async def repair(self) -> list[str]:
        """Put back what `findings` would report; what was done."""
        ...


class Controller(EndpointOps):
    def __init__(
        self,
        store: Store,
        kernel: Kernel,
        ipam: Ipam,
        drivers: dict[str, NetworkDriver],
        engine_id: str,
        clock: Callable[[], str] = now_rfc3339,
        exec_root: str = "/run/shoal",
        firewall: Firewall | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.plugins = plugins
        self.firewall: Firewall = firewall or NoneFirewall()
        self.store = store
        self.kernel = kernel
        self.ipam = AddressSpaces(local=ipam)  # the cluster serves GlobalDefault when it joins
        self.ipam_drivers: dict[str, Ipam] = {"default": self.ipam}  # remote IPAM plugins go here
        self.drivers = drivers
        self.engine_id = engine_id
        self.clock = clock
        self.lock = asyncio.Lock()
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.exec_root = exec_root
        self._routes = Spans()
        self._routes_at: float | None = None
        self.cluster: Cluster | None = None  # set by the daemon when it joins a cluster store
        self.built: set[str] = set()  # global networks whose side this host has built
        self.side_watchers: list[SideWatcher] = []

    # -- ownership marks ---------------------------------------------------------------
    @property
    def alias_prefix(self) -> str:
        return f"shoal:{self.engine_id[:12]}:"

    def alias(self, kind: str, object_id: str) -> str:
        return f"{self.alias_prefix}{kind}:{object_id}"

    # -- lookups -----------------------------------------------------------------------
    def find_network(self, ref: str) -> Network:
        """Full id, then exact name, then unique id prefix (Docker's order)."""
        if ref in self.networks:
            return self.networks[ref]
        by_name = [n for n in self.networks.values() if n.name == ref]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(by_name)} matches found on name)")
        by_prefix = [n for n in self.networks.values() if ref and n.id.startswith(ref)]
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise InvalidParameter(
                f"network {ref} is ambiguous ({len(by_prefix)} matches found based on ID prefix)"
            )
        raise NotFound(f"network {ref} not found")

    def list_networks(self) -> list[Network]:
        return sorted(self.networks.values(), key=lambda n: n.name)

    def endpoints_of(self, network_id: str) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.network_id == network_id]

    def driver(self, name: str) -> NetworkDriver:
        found = self.drivers.get(name)
        if found is not None:
            return found
        if self.plugins is None:
            raise NotFound(f'plugin "{name}" not found')
        return self.plugins.driver(name)

    def ipam_of(self, network: Network | NetworkSpec) -> Ipam:
        name = network.ipam_driver or "default"
        found = self.ipam_drivers.get(name)
        if found is not None:
            return found
        if self.plugins is None:
            raise NotFound(f'plugin "{name}" not found')
        return self.plugins.ipam(name)

    async def _resolve(self, spec: NetworkSpec) -> None:
        """A driver or IPAM driver shoal does not have is a plugin: found and activated now,
        outside the lock (finding one may take dockerd's ~15 s of retries)."""
        if self.plugins is None:
            return
        if spec.driver not in self.drivers:
            self.drivers[spec.driver] = await self.plugins.resolve_driver(spec.driver)
        if self.drivers[spec.driver].capabilities.uses_ipam and (spec.ipam_driver or "default") not in self.ipam_drivers:
            await self.plugins.resolve_ipam(spec.ipam_driver)

    async def address_space(self, network: Network | NetworkSpec, driver: NetworkDriver) -> str:
        """libnetwork's rule: a global-scope driver's networks draw from the global space."""
        local, global_ = await self.ipam_of(network).get_default_address_spaces()
        return global_ if driver.capabilities.scope == "global" else local

    async def ipam_status(self, network: Network) -> dict[str, dict[str, int]]:
        out = {}
        ipam = self.ipam_of(network)
        for cfg in network.ipam_configs:
            status = await ipam.pool_status(cfg.pool_id) if cfg.pool_id else None
            if status is not None:
                out[cfg.subnet] = status
        return out

    # -- create ------------------------------------------------------------------------
    async def blocks_of(self, network: Network) -> dict[str, dict[str, list[str]]] | None:
        """A routed network's address blocks by pool and host, from the cluster store; None
        for other networks, or while the store cannot be read (inspect still answers)."""
        if self.cluster is None or not self.driver(network.driver).capabilities.routed:
            return None
        try:
            return await self.cluster.blocks_of(network)
        except ShoalError as exc:
            log.warning("network %s: blocks not read: %s", network.name, exc)
            return None

    def _check_name(self, spec: NetworkSpec) -> None:
        if spec.name in PREDEFINED:
            raise Forbidden(f"operation is not permitted on predefined {spec.name} network ")
        if not spec.name.strip():  # dockerd takes any other name ("test 01", "x:y"); nothing here parses it
            raise InvalidParameter(f"invalid name: {spec.name}")
        if any(n.name == spec.name for n in self.networks.values()):
            raise Conflict(f"network with name {spec.name} already exists")

    def _check_new(self, spec: NetworkSpec) -> NetworkDriver:
        self._check_name(spec)
        driver = self.driver(spec.driver)
        if driver.capabilities.singleton and any(n.driver == spec.driver for n in self.networks.values()):
            raise Forbidden(f'only one instance of "{spec.driver}" network is allowed')
        driver.validate(spec)
        check_ipam_configs(spec.ipam_configs)
        self.ipam_of(spec)
        return driver

    async def create_network(self, spec: NetworkSpec, *, predefined: bool = False, network_id: str = "") -> Network:
        """`network_id`: the id another engine chose (a network made through shoal's served
        Docker plugins is known by Docker's NetworkID); a new one by default."""
        if not predefined:  # dockerd's order: the name, then the driver, then IPAM
            self._check_name(spec)
            await self._resolve(spec)
        async with self.lock:
            driver = self.drivers[spec.driver] if predefined else self._check_new(spec)
            if network_id and network_id in self.networks:
                raise Conflict(f"network {network_id[:12]} already exists")
            if driver.capabilities.scope == "global":
                return await self._create_global(spec, driver, network_id)
            undo = Undo()
            network_id = network_id or new_id()
            try:
                routes = await self._host_routes() if driver.capabilities.uses_ipam else Spans()
                configs = await self._allocate(spec, driver, undo, network_id, routes)
                network = self._build(spec, configs, predefined, network_id)
                await driver.create_network(network, self.alias("net", network.id))
                undo.push("delete network objects", lambda: driver.delete_network(network))
                await self._firewall_add(network, undo)
                async with self.store.transaction() as tx:
                    tx.put(KIND_NETWORK, network.id, network.to_dict())
            except BaseException:
                await undo.run()
                raise
            self.networks[network.id] = network
            return network

    async def _create_global(self, spec: NetworkSpec, driver: NetworkDriver, network_id: str = "") -> Network:
        """Subnets from the global address space, then the cluster claims the name and the
        VNI with the record. No host builds its side yet: each does at its first endpoint
        on the network (`build_global`), so a create costs the cluster one watch event per
        host, whatever its size."""
        if self.cluster is None:  # (the driver's validate has said what to start shoald with)
            raise Forbidden("global networks need a cluster store")
        self.cluster.need_joined()
        local = [ipaddress.ip_network(c.subnet) for n in self.networks.values() if n.scope != "global"
                 for c in n.ipam_configs]
        for cfg in spec.ipam_configs:  # this host would route such a subnet to its bridge
            if cfg.subnet and any(ipaddress.ip_network(cfg.subnet, strict=False).overlaps(n) for n in local):
                raise Forbidden(OVERLAP)
        undo = Undo()
        network_id = network_id or new_id()
        try:
            configs = await self._allocate(spec, driver, undo, network_id, local)
            network = self._build(dataclasses.replace(spec, scope="global"), configs, False, network_id)
            network = await self.cluster.create_network(network)
        except Unavailable:
            # the store's last answer was lost: the record may exist with these pools, so
            # they stay; this host's resync frees them if the network was never made
            log.warning("global network %s: cluster store unavailable mid-create; its pools stay claimed until "
                        "the next resync finds whether it was made", spec.name)
            raise
        except BaseException:
            await undo.run()
            raise
        self.networks[network.id] = network
        return network

    def mirror_network(self, network: Network) -> None:
        """A global network made elsewhere: known here (listed, inspectable), not built."""
        self.networks.setdefault(network.id, network)

    async def build_global(self, network: Network) -> bool:
        """This host's side of a global network (bridge, VXLAN device, firewall elements, the
        peers known so far), made when its first local endpoint joins; idempotent. True when
        it was made now (the caller's undo takes it down again). The caller holds the lock."""
        if network.scope != "global" or network.id in self.built:
            return False
        await self._materialize(network)
        self.built.add(network.id)
        try:
            for watcher in self.side_watchers:
                await watcher.side_built(network)
        except BaseException:
            await self._teardown(network)
            raise
        if self.cluster is not None:
            await self.cluster.network_built(network)
        return True

    async def unbuild_global(self, network: Network) -> None:
        if not self.endpoints_of(network.id):
            await self._teardown(network)

    async def _materialize(self, network: Network) -> None:
        """restore_network, not create_network: the same ensure, and a host that built its
        side before a restart finds its bridge there already."""
        driver = self.driver(network.driver)
        undo = Undo()
        try:
            await driver.restore_network(network, self.alias("net", network.id))
            undo.push("delete network objects", lambda: driver.delete_network(network))
            await self._firewall_add(network, undo)
        except BaseException:
            await undo.run()
            raise
        self.networks[network.id] = network

    async def dematerialize_network(self, network: Network) -> None:
        """A global network removed elsewhere: take this host's side down, if it has one."""
        async with self.lock:
            if self.networks.pop(network.id, None) is not None:
                await self._teardown(network)

    async def _teardown(self, network: Network) -> None:
        """This host's kernel side of a network, if it has one (a global network only once
        built here)."""
        if network.scope == "global" and network.id not in self.built:
            return
        self.built.discard(network.id)
        try:
            fw = network_config(self, network)
            if fw is not None:
                await self.firewall.remove_network(fw.bridge)
            await self.driver(network.driver).delete_network(network)
        except Exception:  # noqa: BLE001 - the store is the truth; restore removes leftovers
            log.exception("network %s removed, but its kernel objects were not", network.name)
        for watcher in self.side_watchers:
            try:
                await watcher.side_gone(network)
            except Exception:  # noqa: BLE001 - the side is gone; a watcher's leftovers are its own
                log.exception("network %s: taken down, but a watcher failed", network.name)

    async def _firewall_add(self, network: Network, undo: Undo) -> None:
        cfg = network_config(self, network)
        if cfg is None:
            return
        await self.kernel.set_sysctls(network_sysctls(cfg))
        await self.firewall.add_network(cfg)
        undo.push("firewall", lambda: self.firewall.remove_network(cfg.bridge))

    def _build(self, spec: NetworkSpec, configs: list[IPAMConfig], predefined: bool, network_id: str) -> Network:
        uses_ipam = self.driver(spec.driver).capabilities.uses_ipam
        fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(NetworkSpec)}
        fields.update(scope=spec.scope or "local", ipam_driver=spec.ipam_driver or "default",
                      ipam_configs=tuple(configs))
        created = self.clock() if uses_ipam or not predefined else "0001-01-01T00:00:00Z"
        return Network(**fields, id=network_id, created=created, predefined=predefined)

    async def _allocate(self, spec: NetworkSpec, driver: NetworkDriver, undo: Undo, network_id: str,
                        exclude: Spans | list) -> list[IPAMConfig]:
        """Pools and reserved addresses for each family, v4 first (Docker's order), from the
        address space the driver's scope draws on; `exclude` steers dynamic pools."""
        if not driver.capabilities.uses_ipam:
            return []
        space = await self.address_space(spec, driver)
        out: list[IPAMConfig] = []
        for v6, enabled in ((False, spec.enable_ipv4), (True, spec.enable_ipv6)):
            if not enabled:
                continue
            wanted = [c for c in spec.ipam_configs if c.subnet and c.is_v6 == v6]
            wanted += [c for c in spec.ipam_configs if not c.subnet and not v6]
            for cfg in wanted or [IPAMConfig(subnet="")]:
                out.append(await self._allocate_one(spec, space, cfg, v6, exclude, undo, network_id))
        return out

    async def _host_routes(self) -> Spans:
        """The host's routes, for skipping pools that overlap them.  Re-read at most every
        ROUTES_TTL seconds: with a thousand bridges a dump still costs ~20 ms (the first
        version, through pyroute2's parser, 3 s), and routes shoal adds itself are its own
        pools, which IPAM already knows."""
        now = time.monotonic()
        if self._routes_at is None or now - self._routes_at > ROUTES_TTL:
            self._routes = Spans(ipaddress.ip_network(r) for r in await self.kernel.routes())
            self._routes_at = now
        return self._routes

    async def _allocate_one(self, spec: NetworkSpec, space: str, cfg: IPAMConfig, v6: bool, exclude: Spans | list,
                            undo: Undo, network_id: str) -> IPAMConfig:
        """libnetwork's order: the pool, then the gateway (the given one, or the first of
        the range), then the aux addresses; all owned by the network."""
        ipam = self.ipam_of(spec)
        subnet = str(ipaddress.ip_network(cfg.subnet, strict=False)) if cfg.subnet else ""
        options = {**(spec.ipam_options or {}), OPT_OWNER: network_id}
        pool_id, cidr, data = await ipam.request_pool(space, subnet, cfg.ip_range, options, v6, exclude)
        undo.push(f"release pool {pool_id}", lambda: ipam.release_pool(pool_id, {OPT_OWNER: network_id}))
        gateway = data.get(GATEWAY, "")  # an allocator may name the gateway with the pool (libnetwork)
        if not self.driver(spec.driver).capabilities.needs_gateway:
            gateway = ""
        elif cfg.gateway or not gateway:
            gateway, _ = await ipam.request_address(pool_id, cfg.gateway, {REQUEST_ADDRESS_TYPE: GATEWAY,
                                                                            OPT_OWNER: network_id})
        for aux in cfg.aux_addresses.values():
            await ipam.request_address(pool_id, aux, {OPT_OWNER: network_id})
        return IPAMConfig(subnet=cidr, gateway=gateway.split("/")[0], ip_range=cfg.ip_range,
                          aux_addresses=dict(cfg.aux_addresses), pool_id=pool_id, address_space=space)

    async def _release_pools(self, network: Network) -> None:
        """After the record is gone: a pool that cannot be released now (the cluster store
        went) is freed by its creator's next resync, never reused before."""
        ipam = self.ipam_of(network)
        for cfg in network.ipam_configs:
            if network.scope != "global":  # libnetwork's order: gateway, aux addresses, then the pool
                for ip in (cfg.gateway, *cfg.aux_addresses.values()):
                    try:
                        if ip:
                            await ipam.release_address(cfg.pool_id, ip)
                    except ShoalError as exc:  # the pool's release frees it anyway
                        log.warning("network %s: address %s not released: %s", network.name, ip, exc)
            try:
                await ipam.release_pool(cfg.pool_id, {OPT_OWNER: network.id})
            except ShoalError as exc:
                log.warning("network %s: pool %s not released: %s", network.name, cfg.pool_id, exc)

    # -- delete ------------------------------------------------------------------------
    async def delete_network(self, ref: str) -> Network:
        async with self.lock:
            network = self.find_network(ref)
            if network.predefined:
                raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
            eps = self.endpoints_of(network.id)
            if eps:
                names = ", ".join(sorted(e.name for e in eps))
                raise Forbidden(
                    f"error while removing network: network {network.name} has active endpoints ({names})"
                )
            if network.scope == "global" and self.cluster is not None:
                await self.cluster.delete_network(network)  # refused while any host has endpoints
                await self._release_pools(network)
                del self.networks[network.id]
                await self._teardown(network)
                return network
            undo = Undo()
            try:  # the kernel side first: a failure anywhere puts it back, and the store keeps it
                await self._take_down(network, undo)
                async with self.store.transaction() as tx:
                    tx.delete(KIND_NETWORK, network.id)
            except BaseException:
                await undo.run()
                raise
            await self._release_pools(network)
            del self.networks[network.id]
            return network

    async def _take_down(self, network: Network, undo: Undo) -> None:
        """A local network's firewall elements and kernel objects, each undoable; a crash
        before the store's delete is repaired by restore (the network is still stored)."""
        fw = network_config(self, network)
        if fw is not None:
            await self.firewall.remove_network(fw.bridge)
            undo.push("firewall", lambda: self.firewall.add_network(fw))
        driver = self.driver(network.driver)
        # first: a delete that fails half-way (down, addresses gone) is repaired by the same ensure
        undo.push("network objects", lambda: driver.restore_network(network, self.alias("net", network.id)))
        await driver.delete_network(network)

    async def prune(self, keep: Callable[[Network], bool]) -> list[str]:
        """Remove unused user networks for which `keep` is False; returns their names."""
        removed = []
        for network in self.list_networks():
            if network.predefined or self.endpoints_of(network.id) or keep(network):
                continue
            try:
                await self.delete_network(network.id)
            except (NotFound, Forbidden):
                continue
            removed.append(network.name)
        return removed
