"""The GlobalDefault address space in the cluster store: pools and addresses claimed by
compare-and-swap, so two hosts asking at once can never both win.

It implements `ipam.api.Ipam` and lives here, not in the ipam package, because it is made
of the store's vocabulary (compares, ops, leases, revisions): mirroring that in ipam as a
protocol would be a second copy of `store.kv` to keep in step, for one caller. What is
pure allocation (the first free subnet over claimed spans) it borrows from ipam.

Every claim is a key created only if absent. A pool claim also compares a generation key
that every pool claim bumps, because overlap is a property of the whole set (a /16 and a
/24 inside it have different keys). Each claim's value names its owner (`OPT_OWNER`), so a
write retried by the etcd client after a lost answer is recognised as ours, a replayed
request after a restart gets what it holds (moved to the host's current lease), and a
late release leaves another owner's claim alone. Host-bound claims (an endpoint's
address) live on the host's lease: a dead host's addresses come free once it expires.

Keys, under the cluster prefix:

    ipam/GlobalDefault/pools/<a.b.c.d-len>                {"owner": network id, "host": advertise}
    ipam/GlobalDefault/pools.generation                    bumped by every pool claim
    ipam/GlobalDefault/addresses/<a.b.c.d-len>/<ip>        owner (gateway, aux: the network's,
                                                           no lease; endpoints': on the lease)
    ipam/GlobalDefault/blocks/<pool>/<block>               a routed pool's blocks (controller.kvblocks)

A routed pool's host-bound addresses come from this host's blocks: `blocks` picks the
address (claiming a block when needed) and the claim below is the same as any other's.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

from shoal.errors import Forbidden, InvalidParameter, NotFound, Unavailable
from shoal.ipam.api import (
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    OPT_HOST_BOUND,
    OPT_OWNER,
    Capabilities,
    IPNetwork,
    NoAddressAvailable,
    make_pool_id,
    parse_pool_id,
)
from shoal.controller.kvblocks import Blocks
from shoal.ipam.pools import EXHAUSTED, OVERLAP, Spans, first_gap
from shoal.store.kv import KV, Compare, KeyValue, Op, TxnResult

log = logging.getLogger("shoal.ipam")
GLOBAL_POOL = ipaddress.ip_network("10.0.0.0/8")  # Docker's global default: 10.0.0.0/8 in /24s
GLOBAL_SIZE = 24
RETRIES = 20


def _key_part(subnet: str) -> str:
    net = ipaddress.ip_network(subnet)
    return f"{net.network_address}-{net.prefixlen}"


def _hosts(net: IPNetwork, rng: IPNetwork) -> Iterator[str]:
    """Dynamic candidates in order, without building the list (a /64 has 2**64): the
    range's addresses less the subnet's network (and v4 broadcast) address."""
    reserved = {int(net.network_address)}
    if net.version == 4 and net.prefixlen < 31:
        reserved.add(int(net.broadcast_address))
    for value in range(int(rng.network_address), int(rng.broadcast_address) + 1):
        if value not in reserved:
            yield str(ipaddress.ip_address(value))


class KVIpam:
    """GlobalDefault over a `KV`. `lease()` is the host's current lease (it raises while
    the host has not joined): host-bound claims go on it."""

    capabilities = Capabilities()  # the store is its record: nothing to replay at start

    def __init__(self, kv: KV, prefix: str, *, host: str, lease: Callable[[], int],
                 space: str = GLOBAL_DEFAULT) -> None:
        self.kv = kv
        self.host = host
        self.space = space
        self._lease = lease
        self.base = f"{prefix}ipam/{space}/"
        self._owners: dict[tuple[str, str], str] = {}  # (pool id, ip) -> owner, for what this host claimed
        self.blocks = Blocks(kv, self.base, host, lease)

    async def get_default_address_spaces(self) -> tuple[str, str]:
        return LOCAL_DEFAULT, GLOBAL_DEFAULT

    async def pool_status(self, pool_id: str) -> dict[str, int] | None:
        return None  # not worth a store round trip per inspect

    async def allocations(self, address_space: str) -> dict[str, list[str]] | None:
        return None  # the cluster's truth spans hosts: a host's check does not own it

    def _pool_key(self, subnet: str) -> str:
        return f"{self.base}pools/{_key_part(subnet)}"

    def _addresses(self, subnet: str) -> str:
        return f"{self.base}addresses/{_key_part(subnet)}/"

    # -- pools -------------------------------------------------------------------------
    async def request_pool(self, address_space: str, pool: str = "", sub_pool: str = "",
                           options: Mapping[str, str] | None = None, v6: bool = False,
                           exclude: Iterable[IPNetwork] = ()) -> tuple[str, str, dict[str, str]]:
        if address_space != self.space:
            raise InvalidParameter(f"invalid address space {address_space}: this allocator serves {self.space}")
        owner = (options or {}).get(OPT_OWNER, "")
        record = json.dumps({"owner": owner, "host": self.host}).encode()
        avoid = Spans(exclude)
        gen_key = f"{self.base}pools.generation"
        for _ in range(RETRIES):
            # one listing holds the pools and the generation, so both are read at one revision:
            # a generation read apart from the pools could be newer than them, and then a pool
            # claimed in between would pass the compare unseen
            items, _ = await self.kv.list(f"{self.base}pools")
            gen = next((kv for kv in items if kv.key == gen_key), None)
            claimed = Spans(ipaddress.ip_network(kv.key.rsplit("/", 1)[-1].replace("-", "/"))
                            for kv in items if kv.key != gen_key)
            net = self._pick(pool, v6, claimed, avoid)
            key = self._pool_key(str(net))
            result = await self.kv.txn([Compare.absent(key), Compare.at(gen_key, gen.mod_revision if gen else 0)],
                                       [Op.put(key, record), Op.put(gen_key, owner.encode())], [Op.get(key)])
            if result.succeeded or (owner and _first(result) is not None and _first(result).value == record):
                return make_pool_id(self.space, str(net), sub_pool), str(net), {}  # the second: ours, retried
        raise Unavailable("could not claim a subnet in the cluster store: too many concurrent changes; try again")

    @staticmethod
    def _pick(pool: str, v6: bool, claimed: Spans, avoid: Spans) -> IPNetwork:
        if pool:
            net = ipaddress.ip_network(pool)
            if claimed.clash(net.version, int(net.network_address), int(net.broadcast_address)) is not None:
                raise Forbidden(OVERLAP)
            return net
        if v6:
            raise Forbidden("the global address space has no default IPv6 pool: an IPv6 overlay network needs "
                            "an explicit --subnet")
        found = first_gap(GLOBAL_POOL, GLOBAL_SIZE, [claimed, avoid])
        if found is None:
            raise InvalidParameter(EXHAUSTED)
        return found

    async def release_pool(self, pool_id: str, options: Mapping[str, str] | None = None) -> None:
        """The pool and all its addresses in one transaction, pinned to the claim read (and,
        with an owner given, only if it is that owner's): the subnet may have been claimed
        again since, by another network. Not retried after a lost answer (a prefix delete
        cannot be pinned); the creator's resync frees an orphan."""
        _, subnet, _ = parse_pool_id(pool_id)
        key = self._pool_key(subnet)
        held = await self.kv.get(key)
        owner = (options or {}).get(OPT_OWNER, "")
        if held is not None and owner and json.loads(held.value).get("owner") != owner:
            log.info("pool %s is another network's now: not released", pool_id)
            held = None
        if held is not None:
            await self.kv.txn([Compare.at(key, held.mod_revision)],
                              [Op.delete(key), Op.delete_prefix(self._addresses(subnet)),
                               Op.delete_prefix(self.blocks.prefix(subnet))])
        for k in [k for k in self._owners if k[0] == pool_id]:
            del self._owners[k]

    async def pools_made_here(self) -> list[tuple[str, str]]:
        """(pool id, owner) of every pool this host claimed: the creator frees its orphans
        (a create or delete cut short between the pool and the network record)."""
        items, _ = await self.kv.list(f"{self.base}pools/")
        out = []
        for kv in items:
            record = json.loads(kv.value)
            if record.get("host") == self.host and record.get("owner"):
                subnet = kv.key.rsplit("/", 1)[-1].replace("-", "/")
                out.append((make_pool_id(self.space, subnet), record["owner"]))
        return out

    # -- addresses ---------------------------------------------------------------------
    async def request_address(self, pool_id: str, address: str = "",
                              options: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """`address`, or the lowest free one of the range; unique across every host. A
        request for an address its owner already holds is a replay: it is answered with it
        and the claim moves to the host's current lease."""
        opts = options or {}
        _, subnet, _ = parse_pool_id(pool_id)
        if opts.get(OPT_HOST_BOUND) == "true" and self.blocks.blocked(subnet):
            async with self.blocks.lock:  # one claim of this host at a time: see kvblocks
                wanted = self._wanted(ipaddress.ip_network(subnet), address)
                for _ in range(RETRIES):
                    ip = await self.blocks.pick(subnet, wanted, self._addresses(subnet), self._pool_key(subnet))
                    try:
                        return await self._request_address(pool_id, ip, opts)
                    except Forbidden:
                        if wanted:
                            raise  # else: taken under us (a static address): pick again
                raise Unavailable("could not claim an address in the cluster store: too many concurrent changes")
        return await self._request_address(pool_id, address, opts)

    async def _request_address(self, pool_id: str, address: str,
                               opts: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        owner = opts.get(OPT_OWNER, "")
        lease = self._lease() if opts.get(OPT_HOST_BOUND) == "true" else 0
        _, subnet, sub_pool = parse_pool_id(pool_id)
        net = ipaddress.ip_network(subnet)
        wanted = self._wanted(net, address)
        prefix, pool_key = self._addresses(subnet), self._pool_key(subnet)
        for _ in range(RETRIES):
            items, _ = await self.kv.list(prefix)
            taken = {kv.key[len(prefix):]: kv for kv in items}
            candidate = wanted or next((h for h in _hosts(net, ipaddress.ip_network(sub_pool) if sub_pool else net)
                                        if h not in taken), "")
            if not candidate:
                raise NoAddressAvailable(f"no available addresses on this pool ({subnet})")
            mine = taken.get(candidate)
            if mine is not None:
                if not (owner and mine.value == owner.encode()):
                    raise Forbidden("Address already in use")
                if mine.lease == lease or await self._move(mine, owner, lease):
                    return self._claimed(pool_id, candidate, net, owner)
                continue
            result = await self.kv.txn([Compare.absent(prefix + candidate), Compare(pool_key, "version", ">", 0)],
                                       [Op.put(prefix + candidate, owner.encode(), lease=lease)],
                                       [Op.get(prefix + candidate), Op.get(pool_key)])
            if result.succeeded:
                return self._claimed(pool_id, candidate, net, owner)
            holder, pool_now = _first(result), _first(result, 1)
            if pool_now is None:
                raise NotFound(f"pool {pool_id} not found: its network was removed")
            if holder is not None and owner and holder.value == owner.encode() and holder.lease == lease:
                return self._claimed(pool_id, candidate, net, owner)  # ours, retried after a lost answer
            if wanted:
                raise Forbidden("Address already in use")
        raise Unavailable("could not claim an address in the cluster store: too many concurrent changes; try again")

    @staticmethod
    def _wanted(net: IPNetwork, address: str) -> str:
        if not address:
            return ""
        ip = ipaddress.ip_address(address)
        if ip not in net:
            raise InvalidParameter(f"requested address {ip} is out of range of subnet {net}")
        if ip == net.network_address or (net.version == 4 and net.prefixlen < 31 and ip == net.broadcast_address):
            raise Forbidden("Address already in use")
        return str(ip)

    async def _move(self, held: KeyValue, owner: str, lease: int) -> bool:
        result = await self.kv.txn([Compare.at(held.key, held.mod_revision)],
                                   [Op.put(held.key, owner.encode(), lease=lease)])
        return result.succeeded

    def _claimed(self, pool_id: str, ip: str, net: IPNetwork, owner: str) -> tuple[str, dict[str, str]]:
        if owner:
            self._owners[(pool_id, ip)] = owner
        return f"{ip}/{net.prefixlen}", {}

    async def release_address(self, pool_id: str, address: str) -> None:
        """Only while the claim is still the one this host made (its owner, or, for a claim
        made before a restart, this host's lease): a late release must not free an address
        another endpoint claimed since."""
        _, subnet, _ = parse_pool_id(pool_id)
        ip = str(ipaddress.ip_interface(address).ip)
        owner = self._owners.pop((pool_id, ip), "")
        key = self._addresses(subnet) + ip
        held = await self.kv.get(key)
        if held is None:
            return
        if (owner and held.value != owner.encode()) or (not owner and held.lease != self._current_lease()):
            return
        await self.kv.txn([Compare.at(key, held.mod_revision)], [Op.delete(key)])
        if self.blocks.blocked(subnet):
            async with self.blocks.lock:
                await self.blocks.release_if_empty(subnet, ip, self._addresses(subnet))

    def _current_lease(self) -> int:
        try:
            return self._lease()
        except Unavailable:
            return -1  # not joined: no claim is known to be ours

    async def release_unowned(self, lease: int, keep: set[str]) -> None:
        """Free every claim on `lease` (this host's) whose owner is not in `keep` (its
        endpoints): a release or a connect's rollback cut short by the store, which nothing
        else would free while the host keeps its lease alive."""
        items, _ = await self.kv.list(f"{self.base}addresses/")
        for kv in items:
            if kv.lease == lease and kv.value.decode() not in keep:
                await self.kv.txn([Compare.at(kv.key, kv.mod_revision)], [Op.delete(kv.key)])
        await self.blocks.release_all_empty(self._addresses)


def _first(result: TxnResult, index: int = 0) -> KeyValue | None:
    """The key read by the failure branch's `index`th get, None when it was absent."""
    if len(result.responses) > index and result.responses[index]:
        return result.responses[index][0]
    return None
