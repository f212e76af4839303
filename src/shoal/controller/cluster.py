"""This host's membership in a cluster: its lease, the global networks it mirrors, and the
remote endpoints it programs into the kernel.

The cluster store (etcd) is the one source of truth for global objects; each host keeps
a cache of the global networks it knows in its own store, so that a daemon started while
etcd is unreachable still knows which kernel objects are its own (restore never deletes
what it cannot see) and running containers keep talking. Events come from a watch that
resumes from the last revision it saw; a watch that falls behind compaction re-lists,
and the kernel's FDB and neighbour tables are also reconciled against the store every
`resync` seconds, not only on events (stale entries are the anchors' most reported bug).

A host is known by its advertise address. Its endpoints and addresses live under its
lease: a host that dies loses them when the lease expires, and the other hosts then
remove its peers. A restarted daemon keeps the lease it had (its id is kept locally), so
its containers stay reachable throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from shoal.controller.claims import GONE, IN_USE, ClusterClaims
from shoal.controller.kvipam import KVIpam
from shoal.drivers import NetworkDriver
from shoal.drivers.overlay import OPT_VNI, overlay_plan_vni
from shoal.drivers.routed import RoutedOptions
from shoal.errors import Forbidden, NotFound, ShoalError, Unavailable
from shoal.ipam import GLOBAL_DEFAULT, OPT_HOST_BOUND, OPT_OWNER, AddressSpaces
from shoal.model import Endpoint, Network, Peer
from shoal.store import Store
from shoal.store.kv import KV, Compacted, LeaseExpired, WatchEvent

if TYPE_CHECKING:
    from shoal.controller.routing import Routing
    from shoal.dns import DnsRecords

log = logging.getLogger("shoal.cluster")
KIND_CACHE = "cluster-network"
KIND_META = "meta"


class Mirrored(Protocol):
    """What the Cluster reads and calls on the Controller it mirrors into (a protocol, so
    this module needs no import of the controller)."""

    store: Store
    engine_id: str
    lock: asyncio.Lock
    networks: dict[str, Network]
    endpoints: dict[str, Endpoint]
    drivers: dict[str, NetworkDriver]
    built: set[str]  # global networks with a side on this host
    ipam: AddressSpaces  # the cluster serves GlobalDefault in it

    def driver(self, name: str) -> NetworkDriver: ...
    def mirror_network(self, network: Network) -> None: ...
    async def dematerialize_network(self, network: Network) -> None: ...


class Cluster:
    def __init__(self, ctl: Mirrored, kv: KV, *, advertise: str, vtep: str, prefix: str = "/shoal/v2/",
                 ttl: int = 15, resync: float = 30.0, records: DnsRecords | None = None,
                 older_prefixes: tuple[str, ...] = ()) -> None:
        self.ctl = ctl
        self.kv = kv
        self.advertise = advertise
        self.vtep = vtep
        self.prefix = prefix
        self.ttl = ttl
        self.resync = resync
        self.records = records
        self.claims = ClusterClaims(kv, prefix)
        self.older_prefixes = older_prefixes
        self.older_data: list[str] = []  # older layouts that still hold networks (for /info)
        self.ipam = KVIpam(kv, prefix, host=advertise, lease=self.current_lease)
        ctl.ipam.serve(GLOBAL_DEFAULT, self.ipam)
        self.lease = 0
        self.joined = False  # start() finished: host key, mirror and watch in place
        self.known_hosts: dict[str, dict[str, Any]] = {}  # advertise -> host record, self included
        self.peers: dict[str, Peer] = {}  # endpoints/<nid>/<eid> key -> peer
        self._tasks: list[asyncio.Task] = []
        self.routing: Routing | None = None  # this host's BGP, when routed networks may exist
        self._routed_pools: dict[str, list[str]] = {}  # routed network id -> its pools (blocks registered)

    def attach_routing(self, routing: Routing) -> None:
        """BGP hears of hosts, routed pools and this host's blocks from here."""
        self.routing = routing
        routing.hosts = lambda: [h.get("vtep") or a.split(":")[0] for a, h in self.known_hosts.items()
                                 if a != self.advertise]
        routing.pools = lambda: sorted(c.subnet for n in self.ctl.networks.values() if self._routed(n)
                                       for c in n.v4_configs)
        routing.blocks = self.ipam.blocks.held_here
        self.ipam.blocks.changed = routing.poke

    def _routed(self, net: Network) -> bool:
        driver = self.ctl.drivers.get(net.driver)
        return net.scope == "global" and driver is not None and driver.capabilities.routed

    def _poke_routing(self) -> None:
        if self.routing is not None:
            self.routing.poke()

    def _blocks_for(self, net: Network) -> None:
        """A routed network's pools hand out addresses by block (controller.kvblocks)."""
        if self._routed(net):
            size = RoutedOptions.parse(net.options).block_size
            self._routed_pools[net.id] = [cfg.subnet for cfg in net.v4_configs]
            for subnet in self._routed_pools[net.id]:
                self.ipam.blocks.register(subnet, size)
            self._poke_routing()

    async def blocks_of(self, net: Network) -> dict[str, dict[str, list[str]]]:
        """pool -> host -> the blocks it holds, as the store has them (inspect)."""
        return {cfg.subnet: await self.ipam.blocks.holders(cfg.subnet) for cfg in net.v4_configs}

    # -- start / stop --------------------------------------------------------------------
    def load_cache(self) -> list[Network]:
        """The global networks this host knew, before the store is asked (see module doc)."""
        return [Network.from_dict(d) for d in self.ctl.store.list(KIND_CACHE)]

    async def start(self) -> None:
        """Join: the lease (the old one if it is still alive), the host key, the networks and
        peers as they are now, then watch and keep alive in the background."""
        self.lease = await self._lease()
        host = {"advertise": self.advertise, "vtep": self.vtep, "engine": self.ctl.engine_id}
        await self.kv.put(f"{self.prefix}hosts/{self.advertise}", json.dumps(host).encode(), lease=self.lease)
        self.older_data = [p for p in self.older_prefixes if (await self.kv.list(f"{p}networks/"))[0]]
        for p in self.older_data:
            log.warning("the cluster store holds networks of an older shoal under %s: they are not read; "
                        "remove them with that version, or delete the keys (etcdctl del --prefix %s)", p, p)
        revision = await self.resync_all()
        await self.republish_local()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keepalive()), loop.create_task(self._watch(revision + 1)),
                       loop.create_task(self._periodic())]
        self.joined = True

    async def stop(self) -> None:
        """Leave the lease alive: a restarted daemon takes it over and its containers stay
        reachable; a host that never comes back loses it after `ttl` seconds."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.routing is not None:
            await self.routing.stop()
        await self.kv.close()

    async def _lease(self) -> int:
        meta = self.ctl.store.get(KIND_META, "cluster") or {}
        old = int(meta.get("lease") or 0)
        if old and meta.get("advertise") == self.advertise:
            with contextlib.suppress(LeaseExpired):
                await self.kv.keepalive(old)
                return old
        lease = await self.kv.grant(self.ttl)
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_META, "cluster", {"lease": lease, "advertise": self.advertise})
        return lease

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.ttl / 3))
            try:
                await self.kv.keepalive(self.lease)
            except LeaseExpired:
                log.warning("cluster lease expired (store unreachable for over %ss); joining again", self.ttl)
                with contextlib.suppress(ShoalError):
                    await self._rejoin()
            except ShoalError as exc:
                log.warning("cluster store: keepalive failed: %s", exc)

    async def _rejoin(self) -> None:
        self.lease = await self.kv.grant(self.ttl)
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_META, "cluster", {"lease": self.lease, "advertise": self.advertise})
        host = {"advertise": self.advertise, "vtep": self.vtep, "engine": self.ctl.engine_id}
        await self.kv.put(f"{self.prefix}hosts/{self.advertise}", json.dumps(host).encode(), lease=self.lease)
        await self.republish_local()

    # -- the mirror ----------------------------------------------------------------------
    async def resync_all(self) -> int:
        """Make local networks and kernel peers match the store as it is now; returns the
        revision read at, from which the watch goes on."""
        nets, rev = await self.kv.list(f"{self.prefix}networks/")
        wanted = {n.id: n for n in (Network.from_dict(json.loads(kv.value)) for kv in nets)}
        for net in [n for n in self.ctl.networks.values() if n.scope == "global" and n.id not in wanted]:
            await self.network_gone(net.id)
        for net in wanted.values():
            await self.network_seen(net)
        await self.ipam.blocks.refresh()
        hosts, _ = await self.kv.list(f"{self.prefix}hosts/")
        await self._hosts_changed({kv.key.rsplit("/", 1)[-1]: json.loads(kv.value) for kv in hosts})
        eps, rev2 = await self.kv.list(f"{self.prefix}endpoints/")
        seen = {kv.key: Peer.from_json(json.loads(kv.value)) for kv in eps}
        for key in [k for k in self.peers if k not in seen]:
            await self._peer_gone(key)
        for key, peer in seen.items():
            await self._peer_seen(key, peer)
        await self._drop_own_leftovers(seen)
        await self.reconcile_kernel()
        return min(rev, rev2)

    async def _drop_own_leftovers(self, seen: dict[str, Peer]) -> None:
        """Our endpoints, address claims and pools the store still has but this host no
        longer does (a withdraw, a connect's rollback, a network create or delete cut short
        by the store: the claims are ours, which nothing else would ever free). Under the
        controller's lock, so no connect or create of ours is half-way."""
        async with self.ctl.lock:
            for peer in seen.values():
                if peer.host == self.advertise and peer.endpoint_id not in self.ctl.endpoints:
                    await self.claims.withdraw_endpoint(peer.network_id, peer.endpoint_id)
            await self.ipam.release_unowned(self.lease, set(self.ctl.endpoints))
            for pool_id, owner in await self.ipam.pools_made_here():
                if owner not in self.ctl.networks and not await self.claims.network_exists(owner):
                    log.info("releasing pool %s: its network %s was never made or is gone", pool_id, owner[:12])
                    await self.ipam.release_pool(pool_id, {OPT_OWNER: owner})

    async def network_seen(self, net: Network) -> None:
        self.ctl.mirror_network(net)
        self._blocks_for(net)
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_CACHE, net.id, net.to_dict())

    async def fetch_network(self, network_id: str) -> Network | None:
        """A global network asked for by id before the watch brought it (a dockerd learns
        of a network from its own cluster store and may send an endpoint at once): read
        from the store and mirrored now; None when the store has no such network."""
        found = await self.kv.get(f"{self.prefix}networks/{network_id}")
        if found is None:
            return None
        net = Network.from_dict(json.loads(found.value))
        await self.network_seen(net)
        return self.ctl.networks.get(net.id)

    async def network_gone(self, network_id: str) -> None:
        for key in [k for k, p in self.peers.items() if p.network_id == network_id]:
            self.peers.pop(key, None)
        net = self.ctl.networks.get(network_id)
        if net is not None:
            await self.ctl.dematerialize_network(net)
        if network_id in self._routed_pools:  # (a delete made here has dropped `net` already)
            for subnet in self._routed_pools.pop(network_id):
                self.ipam.blocks.forget(subnet)
            self._poke_routing()
        async with self.ctl.store.transaction() as tx:
            tx.delete(KIND_CACHE, network_id)

    async def _peer_seen(self, key: str, peer: Peer) -> None:
        if peer.host == self.advertise:
            return
        old = self.peers.get(key)
        if old == peer:
            return
        net = self.ctl.networks.get(peer.network_id)
        if net is None:
            return
        built = net.id in self.ctl.built  # a host without endpoints on it has no device to program
        if built and old is not None and (old.mac, old.vtep) != (peer.mac, peer.vtep):
            await self._driver(net).peer_removed(net, old)
        self.peers[key] = peer
        if built:
            await self._driver(net).peer_added(net, peer)
        if self.records is not None:
            from shoal.dns import DnsEntry

            self.records.add(net.id, net.name, DnsEntry(sandbox_id=peer.sandbox_id or peer.endpoint_id,
                                                        name=peer.name, aliases=peer.aliases,
                                                        ipv4=peer.ipv4, ipv6=peer.ipv6))

    async def _peer_gone(self, key: str) -> None:
        peer = self.peers.pop(key, None)
        if peer is None:
            return
        net = self.ctl.networks.get(peer.network_id)
        if net is not None:
            if net.id in self.ctl.built:
                await self._driver(net).peer_removed(net, peer)
            if self.records is not None:
                self.records.remove(net.id, peer.sandbox_id or peer.endpoint_id)

    def dns_pairs(self) -> set[tuple[str, str]]:
        """(network id, sandbox id) of the names `_peer_seen` serves for other hosts'
        endpoints: wanted, though no endpoint or container of this host stands for them."""
        return {(p.network_id, p.sandbox_id or p.endpoint_id) for p in self.peers.values()
                if p.network_id in self.ctl.networks}

    def _driver(self, net: Network) -> Any:
        return self.ctl.driver(net.driver)

    async def reconcile_kernel(self) -> None:
        """Each global network's driver makes its kernel state exactly the peers, nothing else
        (the periodic check that events alone are not trusted with)."""
        for net in [n for n in self.ctl.networks.values() if n.scope == "global" and n.id in self.ctl.built]:
            await self.network_built(net)

    async def network_built(self, net: Network) -> None:
        """Program every peer known so far into a network's side that was just built (and
        on every resync: exactly the peers, nothing else)."""
        peers = [p for p in self.peers.values() if p.network_id == net.id]
        try:
            await self._driver(net).reconcile_peers(net, peers)
        except ShoalError as exc:
            log.warning("network %s: cannot reconcile its peers: %s", net.name, exc)

    # -- events --------------------------------------------------------------------------
    async def _watch(self, revision: int) -> None:
        while True:
            try:
                async for batch in self.kv.watch(self.prefix, revision):
                    for event in batch:
                        revision = max(revision, event.kv.mod_revision + 1)
                        await self._handle(event)
            except Compacted:
                log.warning("cluster watch fell behind compaction; re-listing")
                with contextlib.suppress(ShoalError):
                    revision = await self.resync_all() + 1
            except ShoalError as exc:
                log.warning("cluster watch: %s; retrying", exc)
                await asyncio.sleep(1.0)
            except Exception:  # noqa: BLE001 - one bad event must not end the watch
                log.exception("cluster watch: an event failed; re-listing")
                await asyncio.sleep(1.0)
                with contextlib.suppress(ShoalError):
                    revision = await self.resync_all() + 1

    async def _handle(self, event: WatchEvent) -> None:
        rest = event.kv.key[len(self.prefix):]
        kind = rest.split("/", 1)[0]
        if kind == "networks":
            if event.kind == "put":
                await self.network_seen(Network.from_dict(json.loads(event.kv.value)))
            else:
                await self.network_gone(rest.split("/", 1)[1])
        elif kind == "endpoints":
            if event.kind == "put":
                await self._peer_seen(event.kv.key, Peer.from_json(json.loads(event.kv.value)))
            else:
                await self._peer_gone(event.kv.key)
        elif kind == "hosts":
            hosts = dict(self.known_hosts)
            advertise = rest.split("/", 1)[1]
            if event.kind == "put":
                hosts[advertise] = json.loads(event.kv.value)
            else:
                hosts.pop(advertise, None)
            await self._hosts_changed(hosts)

    async def _hosts_changed(self, hosts: dict[str, dict[str, Any]]) -> None:
        """libnetwork's DiscoverNew / DiscoverDelete: every global-scope driver hears of hosts
        that joined or left (a routed driver re-renders its BGP peers from them)."""
        joined = [h for a, h in hosts.items() if a not in self.known_hosts and a != self.advertise]
        left = [h for a, h in self.known_hosts.items() if a not in hosts and a != self.advertise]
        self.known_hosts = hosts
        if joined or left:
            self._poke_routing()
        drivers = {n: d for n, d in self.ctl.drivers.items() if d.capabilities.scope == "global"}
        for driver in drivers.values():
            for host in joined:
                await driver.discover_new(host)
            for host in left:
                await driver.discover_delete(host)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            try:
                await self.resync_all()
            except ShoalError as exc:
                log.warning("cluster resync: %s", exc)

    # -- global networks -----------------------------------------------------------------
    async def create_network(self, network: Network) -> Network:
        """Claim the name and the VNI and write the record, in one transaction. Its subnets
        were claimed before, through IPAM (GlobalDefault); the caller releases them if this
        fails."""
        self.need_joined()
        made: list[Network] = []

        def record(vni: int) -> bytes:
            made[:] = [network.with_changes(options={**network.options, OPT_VNI: str(vni)})]
            return json.dumps(made[0].to_dict()).encode()

        await self.claims.claim_network(network.id, network.name, record, vni_wanted=overlay_plan_vni(network.options))
        net = made[0]
        self._blocks_for(net)
        try:  # only the offline-start cache: the watch writes it again (network_seen)
            async with self.ctl.store.transaction() as tx:
                tx.put(KIND_CACHE, net.id, net.to_dict())
        except Exception:  # noqa: BLE001 - the network exists in the cluster: not a failed create
            log.exception("network %s: not cached locally", net.name)
        return net

    async def delete_network(self, network: Network) -> None:
        """Remove the record and its claims (refused while any host has an endpoint); the
        caller releases the pools after."""
        vni = int(network.options.get(OPT_VNI, "0") or 0)
        outcome = await self.claims.release_network(network.id, network.name, vni)
        if outcome == GONE:  # removed from another host meanwhile; the watch drops it here
            raise NotFound(f"network {network.name} not found")
        if outcome == IN_USE:
            records = await self.claims.endpoint_names(network.id)
            names = ", ".join(sorted(json.loads(v).get("name", "?") for v in records)) or "a host joining it"
            raise Forbidden(f"error while removing network: network {network.name} has active endpoints ({names})")
        async with self.ctl.store.transaction() as tx:
            tx.delete(KIND_CACHE, network.id)

    def need_joined(self) -> None:
        if not self.lease:
            raise Unavailable(f"not joined to the cluster store {self.kv.url} yet: check that etcd is "
                              "reachable (shoald retries on its own)")

    def current_lease(self) -> int:
        """The lease host-bound claims go on (KVIpam asks at every claim)."""
        self.need_joined()
        return self.lease

    # -- this host's endpoints -----------------------------------------------------------
    def endpoint_record(self, ep: Endpoint) -> bytes:
        peer = Peer(network_id=ep.network_id, endpoint_id=ep.id, host=self.advertise, vtep=self.vtep, mac=ep.mac,
                    ipv4=ep.ipv4, ipv6=ep.ipv6, name=ep.name, aliases=ep.aliases, sandbox_id=ep.sandbox_id)
        return json.dumps(peer.__dict__).encode()

    async def publish_endpoint(self, ep: Endpoint) -> None:
        await self.claims.publish_endpoint(ep.network_id, ep.id, self.endpoint_record(ep), self.lease)

    async def withdraw_endpoint(self, ep: Endpoint) -> None:
        """The peer record only: its addresses go back through IPAM (controller.endpoints)."""
        await self.claims.withdraw_endpoint(ep.network_id, ep.id)

    async def republish_local(self) -> None:
        """This host's endpoints and addresses under its current lease (after a new lease,
        or a store that lost them), so peers and uniqueness hold again. The addresses are
        replayed through IPAM: a claim its endpoint still holds moves to the lease, one
        another endpoint holds now (it came free while this host's lease was gone) is
        refused, and taking it with a plain put would make two endpoints share it."""
        for ep in list(self.ctl.endpoints.values()):
            net = self.ctl.networks.get(ep.network_id)
            if net is None or net.scope != "global":
                continue
            lost = await self._replay_addresses(net, ep)
            if lost is None:
                continue
            if lost:  # the other endpoint keeps it: publishing ours would steal its peers' entries
                log.error("endpoint %s on network %s: address %s is another endpoint's now (it came free while "
                          "this host's lease was gone); not published: reconnect the container",
                          ep.name, net.name, ", ".join(lost))
                continue
            await self.publish_endpoint(ep)

    async def _replay_addresses(self, net: Network, ep: Endpoint) -> list[str] | None:
        """The addresses another endpoint holds now; None when the network's pool is gone
        (the network was removed meanwhile: its mirror goes on the next event)."""
        lost = []
        for cidr in (ep.ipv4, ep.ipv6):
            cfg = net.config_for(cidr)
            if cfg is None:
                continue
            try:
                await self.ipam.request_address(cfg.pool_id, cidr.split("/")[0],
                                                {OPT_OWNER: ep.id, OPT_HOST_BOUND: "true"})
            except Forbidden:
                lost.append(cidr)
            except NotFound:
                return None
        return lost
