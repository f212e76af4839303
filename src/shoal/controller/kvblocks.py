"""Address blocks of routed pools (Calico's block affinity, in shoal's store vocabulary).

A routed network's pool is claimed cluster-wide as any global pool (controller.kvipam);
inside it, each host claims blocks (a /26 by default) with a compare-and-swap on the
block's key, and its endpoints' addresses come only from its own blocks. So a host
announces one route per block, never one per container, and the other hosts route the
whole block to it. The candidate order is a permutation seeded by the host's name: two
hosts starting at once begin far apart and rarely race; when they do, exactly one
create succeeds and the loser moves on to its next candidate.

A block lives on its holder's lease, as its addresses do: a dead host's blocks come
free when its lease expires, at the same moment as its addresses. A replayed request
(a restarted host republishing its endpoints) finds the block its address is in and
moves it to the host's current lease, so a restart never renumbers. An empty block is
released after its last address leaves (a host keeps no block it does not use).

Keys, next to kvipam's, under `ipam/GlobalDefault/`:

    blocks/<pool a.b.c.d-len>/<block a.b.c.d-len>    {"host": advertise}, on the holder's lease

Only this host ever claims an address in its blocks (a static address in another host's
block is refused), and its claims and releases are serialised by one lock, so a block
cannot be released under a claim of this host; the address claim also pins the block's
revision, so a block lost with an expired lease is never claimed into.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
from collections.abc import Callable, Iterator

from shoal.errors import Forbidden, NotFound, Unavailable
from shoal.ipam.api import IPNetwork, NoAddressAvailable
from shoal.store.kv import KV, Compare, KeyValue, Op

log = logging.getLogger("shoal.ipam")
RETRIES = 20


def key_part(net: IPNetwork | str) -> str:
    n = ipaddress.ip_network(net)
    return f"{n.network_address}-{n.prefixlen}"


def _net(part: str) -> IPNetwork:
    return ipaddress.ip_network(part.replace("-", "/"))


def candidates(pool: IPNetwork, size: int, host: str) -> Iterator[IPNetwork]:
    """Every block of `pool` once, in an order seeded by `host`: an odd stride over a
    power-of-two count is a full cycle, so nothing is materialised (a /64 in /122s has
    2**58 blocks)."""
    count = 1 << (size - pool.prefixlen)
    digest = hashlib.sha256(f"{host}|{pool}".encode()).digest()
    start = int.from_bytes(digest[:8], "big") % count
    stride = (int.from_bytes(digest[8:16], "big") | 1) % count or 1
    step = 1 << (pool.max_prefixlen - size)
    base = int(pool.network_address)
    for i in range(count):
        index = (start + i * stride) % count
        yield ipaddress.ip_network((base + index * step, size))


def block_of(ip: str, size: int) -> IPNetwork:
    return ipaddress.ip_network(f"{ip}/{size}", strict=False)


class Blocks:
    """This host's blocks in every routed pool. `sizes` (pool subnet -> block prefix
    length) is told by the cluster for every routed network it knows; `changed()` is
    called after this host's set of blocks changed (BGP announces them)."""

    def __init__(self, kv: KV, base: str, host: str, lease: Callable[[], int]) -> None:
        self.kv = kv
        self.base = base  # ".../ipam/GlobalDefault/"
        self.host = host
        self._lease = lease
        self.sizes: dict[str, int] = {}
        self.mine: dict[str, set[str]] = {}  # pool subnet -> this host's blocks (as known here)
        self.changed: Callable[[], None] = lambda: None
        self.lock = asyncio.Lock()

    def register(self, subnet: str, size: int) -> None:
        self.sizes[str(ipaddress.ip_network(subnet))] = size

    def forget(self, subnet: str) -> None:
        subnet = str(ipaddress.ip_network(subnet))
        self.sizes.pop(subnet, None)
        if self.mine.pop(subnet, None):
            self.changed()

    def blocked(self, subnet: str) -> bool:
        return str(ipaddress.ip_network(subnet)) in self.sizes

    def prefix(self, subnet: str) -> str:
        return f"{self.base}blocks/{key_part(subnet)}/"

    def held_here(self) -> list[str]:
        return sorted({b for blocks in self.mine.values() for b in blocks},
                      key=lambda b: (ipaddress.ip_network(b).version, ipaddress.ip_network(b)))

    def _note(self, subnet: str, block: str, held: bool) -> None:
        have = self.mine.setdefault(subnet, set())
        if (block in have) != held:
            (have.add if held else have.discard)(block)
            self.changed()

    # -- picking an address ------------------------------------------------------------
    async def pick(self, subnet: str, wanted: str, addresses_prefix: str, pool_key: str) -> str:
        """The address the caller then claims (kvipam's compare-and-swap on the address
        key): `wanted` once its block is this host's (claimed now if free), else the lowest
        free address of this host's blocks, claiming a new block when they are full.
        The caller holds `lock`."""
        pool, size = ipaddress.ip_network(subnet), self.sizes[str(ipaddress.ip_network(subnet))]
        if wanted:
            await self._ensure_block(subnet, block_of(wanted, size), pool_key)
            return wanted
        for _ in range(RETRIES):
            blocks, _ = await self.kv.list(self.prefix(subnet))
            mine = sorted((kv for kv in blocks if self._holder(kv) == self.host),
                          key=lambda kv: _net(kv.key.rsplit("/", 1)[-1]))
            items, _ = await self.kv.list(addresses_prefix)
            taken = {kv.key[len(addresses_prefix):] for kv in items}
            for kv in mine:
                block = _net(kv.key.rsplit("/", 1)[-1])
                self._note(subnet, str(block), True)
                free = next((ip for ip in _usable(block, pool) if ip not in taken), "")
                if free:
                    await self._on_lease(kv)
                    return free
            claimed = {kv.key.rsplit("/", 1)[-1] for kv in blocks}
            await self._claim_new(subnet, pool, size, claimed, pool_key)
        raise Unavailable("could not claim an address block in the cluster store: too many concurrent changes")

    @staticmethod
    def _holder(kv: KeyValue) -> str:
        try:
            return str(json.loads(kv.value).get("host", ""))
        except ValueError:
            return ""

    async def _claim_new(self, subnet: str, pool: IPNetwork, size: int, claimed: set[str], pool_key: str) -> None:
        """One create-if-absent on the first free candidate; losing a race is fine (the
        caller lists again and either finds the block ours or takes the next)."""
        for block in candidates(pool, size, self.host):
            if key_part(block) in claimed:
                continue
            if await self._create(subnet, block, pool_key):
                log.info("claimed address block %s of pool %s", block, subnet)
            return
        raise NoAddressAvailable(f"no available addresses on this pool ({subnet}): every block is held")

    async def _create(self, subnet: str, block: IPNetwork, pool_key: str) -> bool:
        key = self.prefix(subnet) + key_part(block)
        record = json.dumps({"host": self.host}).encode()
        result = await self.kv.txn([Compare.absent(key), Compare(pool_key, "version", ">", 0)],
                                   [Op.put(key, record, lease=self._lease())], [Op.get(key), Op.get(pool_key)])
        if result.succeeded:
            self._note(subnet, str(block), True)
            return True
        if not (len(result.responses) > 1 and result.responses[1]):
            raise NotFound(f"pool {subnet} not found: its network was removed")
        return False

    async def _ensure_block(self, subnet: str, block: IPNetwork, pool_key: str) -> None:
        key = self.prefix(subnet) + key_part(block)
        for _ in range(RETRIES):
            held = await self.kv.get(key)
            if held is None:
                if await self._create(subnet, block, pool_key):
                    return
                continue
            holder = self._holder(held)
            if holder != self.host:
                raise Forbidden(f"Address already in use: its block {block} is held by host {holder}")
            self._note(subnet, str(block), True)
            await self._on_lease(held)
            return
        raise Unavailable("could not claim an address block in the cluster store: too many concurrent changes")

    async def _on_lease(self, held: KeyValue) -> None:
        """A block held under an older lease (claimed before a rejoin) moves to the current one."""
        lease = self._lease()
        if held.lease != lease:
            await self.kv.txn([Compare.at(held.key, held.mod_revision)], [Op.put(held.key, held.value, lease=lease)])

    # -- releasing ---------------------------------------------------------------------
    async def release_if_empty(self, subnet: str, ip: str, addresses_prefix: str) -> None:
        """After an address left: its block goes when no address in it is claimed any more."""
        size = self.sizes.get(str(ipaddress.ip_network(subnet)))
        if size is None:
            return
        await self._release_empty(subnet, {block_of(ip, size)}, addresses_prefix)

    async def release_all_empty(self, addresses_prefix_of: Callable[[str], str]) -> None:
        """Every block of this host with no claimed address (a release cut short, a resync)."""
        await self.refresh()
        for subnet in list(self.sizes):
            async with self.lock:
                mine = {ipaddress.ip_network(b) for b in self.mine.get(subnet, ())}
                await self._release_empty(subnet, mine, addresses_prefix_of(subnet))

    async def _release_empty(self, subnet: str, blocks: set[IPNetwork], addresses_prefix: str) -> None:
        if not blocks:
            return
        items, _ = await self.kv.list(addresses_prefix)
        used = {block for block in blocks for kv in items
                if ipaddress.ip_address(kv.key[len(addresses_prefix):]) in block}
        for block in blocks - used:
            key = self.prefix(subnet) + key_part(block)
            held = await self.kv.get(key)
            if held is None or self._holder(held) != self.host:
                self._note(subnet, str(block), False)
                continue
            result = await self.kv.txn([Compare.at(key, held.mod_revision)], [Op.delete(key)])
            if result.succeeded:
                log.info("released empty address block %s of pool %s", block, subnet)
                self._note(subnet, str(block), False)

    # -- reading -----------------------------------------------------------------------
    async def holders(self, subnet: str) -> dict[str, list[str]]:
        """host -> its blocks of the pool, as the store has them now (inspect)."""
        blocks, _ = await self.kv.list(self.prefix(subnet))
        out: dict[str, list[str]] = {}
        for kv in sorted(blocks, key=lambda kv: _net(kv.key.rsplit("/", 1)[-1])):
            out.setdefault(self._holder(kv), []).append(str(_net(kv.key.rsplit("/", 1)[-1])))
        return out

    async def refresh(self) -> None:
        """This host's blocks as the store has them (at join and every resync)."""
        for subnet in list(self.sizes):
            blocks, _ = await self.kv.list(self.prefix(subnet))
            have = {str(_net(kv.key.rsplit("/", 1)[-1])) for kv in blocks if self._holder(kv) == self.host}
            if have != self.mine.get(subnet, set()):
                self.mine[subnet] = have
                self.changed()


def _usable(block: IPNetwork, pool: IPNetwork) -> Iterator[str]:
    """A block's addresses, less the pool's network (and v4 broadcast) address: a block's
    own first and last addresses are ordinary hosts (containers are /32s, no subnet)."""
    reserved = {int(pool.network_address)}
    if pool.version == 4 and pool.prefixlen < 31:
        reserved.add(int(pool.broadcast_address))
    for value in range(int(block.network_address), int(block.broadcast_address) + 1):
        if value not in reserved:
            yield str(ipaddress.ip_address(value))
