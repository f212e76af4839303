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
import dataclasses
import ipaddress
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from shoal.controller.globalipam import GlobalIpam
from shoal.drivers import NetworkDriver
from shoal.drivers.overlay import OPT_VNI, overlay_plan_vni
from shoal.errors import Forbidden, ShoalError, Unavailable
from shoal.model import Endpoint, IPAMConfig, Network, NetworkSpec, Peer
from shoal.store import Store
from shoal.store.kv import KV, Compacted, LeaseExpired, StoreUnavailable, WatchEvent

if TYPE_CHECKING:
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

    def driver(self, name: str) -> NetworkDriver: ...
    def mirror_network(self, network: Network) -> None: ...
    async def dematerialize_network(self, network: Network) -> None: ...


class Cluster:
    def __init__(self, ctl: Mirrored, kv: KV, *, advertise: str, vtep: str, prefix: str = "/shoal/v1/",
                 ttl: int = 15, resync: float = 30.0, records: DnsRecords | None = None) -> None:
        self.ctl = ctl
        self.kv = kv
        self.advertise = advertise
        self.vtep = vtep
        self.prefix = prefix
        self.ttl = ttl
        self.resync = resync
        self.records = records
        self.ipam = GlobalIpam(kv, prefix)
        self.lease = 0
        self.joined = False  # start() finished: host key, mirror and watch in place
        self.known_hosts: dict[str, dict[str, Any]] = {}  # advertise -> host record, self included
        self.peers: dict[str, Peer] = {}  # endpoints/<nid>/<eid> key -> peer
        self._tasks: list[asyncio.Task] = []

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
        """Our endpoints and address claims the store still has but this host no longer
        does (a withdraw, or a connect's rollback, cut short by the store: the claims are on
        our lease, which we keep alive, so nothing else would ever free them). Under the
        controller's lock, so no connect is between claiming and publishing."""
        async with self.ctl.lock:
            for peer in seen.values():
                if peer.host == self.advertise and peer.endpoint_id not in self.ctl.endpoints:
                    await self.ipam.withdraw_endpoint(peer.network_id, peer.endpoint_id)
                    for cidr in (peer.ipv4, peer.ipv6):
                        if cidr:
                            await self.ipam.release_address(peer.network_id, cidr.split("/")[0], peer.endpoint_id)
            for claim in await self.ipam.held_on(self.lease):
                owner = claim.value.decode()
                if owner not in self.ctl.endpoints:
                    network_id, address = claim.key.rsplit("/", 2)[-2:]
                    await self.ipam.release_address(network_id, address, owner)

    async def network_seen(self, net: Network) -> None:
        self.ctl.mirror_network(net)
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_CACHE, net.id, net.to_dict())

    async def network_gone(self, network_id: str) -> None:
        for key in [k for k, p in self.peers.items() if p.network_id == network_id]:
            self.peers.pop(key, None)
        net = self.ctl.networks.get(network_id)
        if net is not None:
            await self.ctl.dematerialize_network(net)
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
    async def create_network(self, spec: NetworkSpec, build: Callable[..., Network]) -> Network:
        """One transaction claims the name, the subnets and the VNI and writes the network."""
        self._need_joined()
        wanted = [(c.subnet, c.is_v6) for c in spec.ipam_configs if c.subnet]
        if spec.enable_ipv4 and not any(not v6 for _, v6 in wanted):
            wanted.insert(0, ("", False))
        avoid = [ipaddress.ip_network(c.subnet) for n in self.ctl.networks.values() if n.scope != "global"
                 for c in n.ipam_configs]
        given = {c.subnet: c for c in spec.ipam_configs if c.subnet}
        made: list[Network] = []

        def record(vni: int, subnets: list[str]) -> bytes:
            configs = [_config(s, given.get(s)) for s in subnets]
            options = {**spec.options, OPT_VNI: str(vni)}
            net = dataclasses.replace(build(dataclasses.replace(spec, options=options, scope="global"), configs, False),
                                      id=network_id)
            made[:] = [net]
            return json.dumps(net.to_dict()).encode()

        network_id = secrets.token_hex(32)
        await self.ipam.claim_network(network_id, spec.name, wanted, avoid, record,
                                      vni_wanted=overlay_plan_vni(spec.options))
        net = made[0]
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_CACHE, net.id, net.to_dict())
        return net

    async def delete_network(self, network: Network) -> None:
        subnets = [c.subnet for c in network.ipam_configs]
        vni = int(network.options.get(OPT_VNI, "0") or 0)
        if not await self.ipam.release_network(network.id, network.name, subnets, vni):
            eps, _ = await self.kv.list(f"{self.prefix}endpoints/{network.id}/")
            names = ", ".join(sorted(json.loads(kv.value).get("name", "?") for kv in eps)) or "a host joining it"
            raise Forbidden(f"error while removing network: network {network.name} has active endpoints ({names})")
        async with self.ctl.store.transaction() as tx:
            tx.delete(KIND_CACHE, network.id)

    def _need_joined(self) -> None:
        if not self.lease:
            raise Unavailable(f"not joined to the cluster store {self.kv.url} yet: check that etcd is "
                              "reachable (shoald retries on its own)")

    async def claim_address(self, network: Network, wanted: str, v6: bool, owner: str) -> str:
        """An address unique across the cluster, as "ip/len"; the gateway is never handed out."""
        self._need_joined()
        configs = network.v6_configs if v6 else network.v4_configs
        if wanted:
            ip = ipaddress.ip_address(wanted)
            configs = tuple(c for c in configs if ip in ipaddress.ip_network(c.subnet))[:1]
        for i, cfg in enumerate(configs):
            reserved = {cfg.gateway, *cfg.aux_addresses.values()}
            try:
                addr = await self.ipam.claim_address(network.id, cfg.subnet, reserved, wanted, owner, self.lease)
            except StoreUnavailable:
                raise  # the store, not a full subnet: the next one would wait out the timeout again
            except Unavailable:
                if i == len(configs) - 1:
                    raise
                continue
            return f"{addr}/{cfg.subnet.split('/')[1]}"
        raise Unavailable(f"no subnet of network {network.name} holds the address {wanted}")

    async def release_address(self, network: Network, cidr: str) -> None:
        await self.ipam.release_address(network.id, cidr.split("/")[0])

    # -- this host's endpoints -----------------------------------------------------------
    def endpoint_record(self, ep: Endpoint) -> bytes:
        peer = Peer(network_id=ep.network_id, endpoint_id=ep.id, host=self.advertise, vtep=self.vtep, mac=ep.mac,
                    ipv4=ep.ipv4, ipv6=ep.ipv6, name=ep.name, aliases=ep.aliases, sandbox_id=ep.sandbox_id)
        return json.dumps(peer.__dict__).encode()

    async def publish_endpoint(self, ep: Endpoint) -> None:
        await self.ipam.publish_endpoint(ep.network_id, ep.id, self.endpoint_record(ep), self.lease)

    async def withdraw_endpoint(self, ep: Endpoint) -> None:
        await self.ipam.withdraw_endpoint(ep.network_id, ep.id)
        for cidr in (ep.ipv4, ep.ipv6):
            if cidr:
                await self.ipam.release_address(ep.network_id, cidr.split("/")[0], ep.id)

    async def republish_local(self) -> None:
        """This host's endpoints and addresses under its current lease (after a new lease,
        or a store that lost them), so peers and uniqueness hold again."""
        for ep in list(self.ctl.endpoints.values()):
            net = self.ctl.networks.get(ep.network_id)
            if net is None or net.scope != "global":
                continue
            lost = [cidr for cidr in (ep.ipv4, ep.ipv6) if cidr and not await self.ipam.reclaim_address(
                ep.network_id, cidr.split("/")[0], ep.id, self.lease)]
            if lost:  # the other endpoint keeps it: publishing ours would steal its peers' entries
                log.error("endpoint %s on network %s: address %s is another endpoint's now (it came free while "
                          "this host's lease was gone); not published: reconnect the container",
                          ep.name, net.name, ", ".join(lost))
                continue
            await self.publish_endpoint(ep)


def _config(subnet: str, given: IPAMConfig | None) -> IPAMConfig:
    """The gateway as given, else the subnet's first host address (Docker's default)."""
    net = ipaddress.ip_network(subnet)
    gateway = given.gateway if given and given.gateway else str(net.network_address + 1)
    return IPAMConfig(subnet=subnet, gateway=gateway, ip_range=given.ip_range if given else "",
                      aux_addresses=dict(given.aux_addresses) if given else {})
