"""Docker's default IPAM for the LocalDefault space: predefined pools handed out first fit,
addresses lowest free, all in memory.

It implements `ipam.api.Ipam`. Keeping nothing means it must be told again at every start
what it had handed out (`requires_request_replay`, as Docker's built-in IPAM): the
controller replays the stored networks and endpoints, which are the one record of it.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from shoal.errors import Forbidden, InvalidParameter, NotFound
from shoal.ipam.addrset import AddressSet, IPNetwork
from shoal.ipam.api import GLOBAL_DEFAULT, LOCAL_DEFAULT, Capabilities, make_pool_id
from shoal.model.network import PoolSpec

DEFAULT_V4_POOLS = (
    PoolSpec("172.17.0.0/16", 16),
    PoolSpec("172.18.0.0/16", 16),
    PoolSpec("172.19.0.0/16", 16),
    PoolSpec("172.20.0.0/14", 16),
    PoolSpec("172.24.0.0/14", 16),
    PoolSpec("172.28.0.0/14", 16),
    PoolSpec("192.168.0.0/16", 20),
)

OVERLAP = "invalid pool request: Pool overlaps with other one on this address space"
EXHAUSTED = "all predefined address pools have been fully subnetted"


def default_pools() -> list[PoolSpec]:
    return list(DEFAULT_V4_POOLS)


def ula_pool(host_id: str) -> PoolSpec:
    """A ULA /48 derived from the host id, cut into /64s, as Docker 27+ does."""
    digest = hashlib.sha256(host_id.encode()).digest()
    global_id = int.from_bytes(digest[:8], "big") & ((1 << 40) - 1)
    base = (0xFD << 120) | (global_id << 80)
    return PoolSpec(str(ipaddress.IPv6Network((base, 48))), 64)


class Spans:
    """Sorted, disjoint [first, last] integer ranges of taken subnets, per IP version.

    Pools never overlap, so the pools' spans stay disjoint as they come and go; route
    lists, which may nest, are merged when built (once per refresh of the host's routes).
    Either way a clash test is one bisection, whatever the number of networks."""

    def __init__(self, nets: Iterable[IPNetwork] = ()) -> None:
        self.ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        nets = list(nets)
        for version in (4, 6):
            spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets if n.version == version)
            for lo, hi in spans:
                merged = self.ranges[version]
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
                else:
                    merged.append((lo, hi))

    def add(self, net: IPNetwork) -> None:
        bisect.insort(self.ranges[net.version], (int(net.network_address), int(net.broadcast_address)))

    def remove(self, net: IPNetwork) -> None:
        spans = self.ranges[net.version]
        item = (int(net.network_address), int(net.broadcast_address))
        i = bisect.bisect_left(spans, item)
        if i < len(spans) and spans[i] == item:
            del spans[i]

    def __iter__(self) -> Iterator[IPNetwork]:
        """The spans as networks, for an allocator that wants plain prefixes (the local one
        bisects the spans themselves)."""
        for version, spans in self.ranges.items():
            addr = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            for lo, hi in spans:
                yield from ipaddress.summarize_address_range(addr(lo), addr(hi))

    def clash(self, version: int, lo: int, hi: int) -> int | None:
        """The end of the taken range overlapping [lo, hi], or None (ranges are disjoint, so
        only the last one starting at or before `hi` can reach back to `lo`)."""
        spans = self.ranges[version]
        i = bisect.bisect_right(spans, (hi, 1 << 130)) - 1
        if i >= 0 and spans[i][1] >= lo:
            return spans[i][1]
        return None


def first_gap(base: IPNetwork, size: int, taken: list[Spans]) -> IPNetwork | None:
    """The lowest subnet of prefix `size` inside `base` that overlaps no taken range."""
    size = max(size, base.prefixlen)
    block = 1 << (base.max_prefixlen - size)
    cand, end = int(base.network_address), int(base.broadcast_address)
    while cand + block - 1 <= end:
        hit = max((e for s in taken if (e := s.clash(base.version, cand, cand + block - 1)) is not None),
                  default=None)
        if hit is None:
            return ipaddress.ip_network((cand, size))
        cand = (hit // block + 1) * block  # jump past the clash, staying aligned
    return None


@dataclass
class Pool:
    """A subnet owned by one network, with the range dynamic addresses come from."""

    id: str
    subnet: IPNetwork
    ip_range: IPNetwork | None
    addresses: AddressSet = field(repr=False)

    def stats(self) -> dict[str, int]:
        return {
            "IPsInUse": self.addresses.in_use,
            "DynamicIPsAvailable": self.addresses.available(self.ip_range),
        }


def as_spans(nets: Iterable[IPNetwork] | Spans) -> Spans:
    return nets if isinstance(nets, Spans) else Spans(nets)


class DefaultIpam:
    """Memory-only allocator; the controller persists its results with their owners."""

    capabilities = Capabilities(requires_request_replay=True)

    def __init__(self, v4_pools: Iterable[PoolSpec], v6_pools: Iterable[PoolSpec] = (),
                 space: str = LOCAL_DEFAULT) -> None:
        self.v4_pools = list(v4_pools)
        self.v6_pools = list(v6_pools)
        self.space = space
        self._pools: dict[str, Pool] = {}
        self._spans = Spans()

    async def get_default_address_spaces(self) -> tuple[str, str]:
        return LOCAL_DEFAULT, GLOBAL_DEFAULT

    # -- pools -------------------------------------------------------------------------
    async def request_pool(self, address_space: str, pool: str = "", sub_pool: str = "",
                           options: Mapping[str, str] | None = None, v6: bool = False,
                           exclude: Iterable[IPNetwork] | Spans = ()) -> tuple[str, str, dict[str, str]]:
        """An explicit subnet must not overlap another pool; none means first free default
        (`exclude` only steers that choice, as in Docker: an explicit subnet may cover a route)."""
        if address_space != self.space:
            raise InvalidParameter(f"invalid address space {address_space}: this allocator serves {self.space}")
        if pool:
            net = ipaddress.ip_network(pool)
            if self._spans.clash(net.version, int(net.network_address), int(net.broadcast_address)) is not None:
                raise Forbidden(OVERLAP)
        else:
            net = self._first_free(v6, as_spans(exclude))
        rng = ipaddress.ip_network(sub_pool) if sub_pool else None
        found = Pool(make_pool_id(self.space, str(net), sub_pool), net, rng, AddressSet(net))
        self._pools[found.id] = found
        self._spans.add(net)
        return found.id, str(net), {}

    def _first_free(self, v6: bool, reserved: Spans) -> IPNetwork:
        """First fit over the predefined pools, skipping taken ranges by bisection."""
        for spec in self.v6_pools if v6 else self.v4_pools:
            found = first_gap(ipaddress.ip_network(spec.base), spec.size, [self._spans, reserved])
            if found is not None:
                return found
        raise InvalidParameter(EXHAUSTED)

    async def release_pool(self, pool_id: str, options: Mapping[str, str] | None = None) -> None:
        pool = self._pools.pop(pool_id, None)
        if pool is not None:
            self._spans.remove(pool.subnet)

    def pool(self, pool_id: str) -> Pool:
        try:
            return self._pools[pool_id]
        except KeyError:
            raise NotFound(f"pool {pool_id} not found") from None

    def pools(self) -> list[Pool]:
        return list(self._pools.values())

    async def pool_status(self, pool_id: str) -> dict[str, int] | None:
        pool = self._pools.get(pool_id)
        return pool.stats() if pool is not None else None

    async def allocations(self, address_space: str) -> dict[str, list[str]] | None:
        if address_space != self.space:
            return None
        return {p.id: [str(ip) for ip in p.addresses.taken()] for p in self._pools.values()}

    # -- addresses ---------------------------------------------------------------------
    async def request_address(self, pool_id: str, address: str = "",
                              options: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """A given address may be anywhere in the subnet; a dynamic one comes from the range."""
        pool = self.pool(pool_id)
        if address:
            ip = pool.addresses.take(ipaddress.ip_address(address))
        else:
            ip = pool.addresses.take_any(pool.ip_range)
        return f"{ip}/{pool.subnet.prefixlen}", {}

    async def release_address(self, pool_id: str, address: str) -> None:
        pool = self._pools.get(pool_id)
        if pool is not None:
            pool.addresses.release(ipaddress.ip_interface(address).ip)
