"""Docker's default IPAM: predefined pools handed out first fit, addresses lowest free.

The verbs follow libnetwork's ipamapi (request/release pool, request/release address)
so that a remote IPAM plugin can later stand behind the same calls.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal.errors import Forbidden, InvalidParameter, NotFound
from shoal.ipam.addrset import AddressSet, IPAddress, IPNetwork
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

    def clash(self, version: int, lo: int, hi: int) -> int | None:
        """The end of the taken range overlapping [lo, hi], or None (ranges are disjoint, so
        only the last one starting at or before `hi` can reach back to `lo`)."""
        spans = self.ranges[version]
        i = bisect.bisect_right(spans, (hi, 1 << 130)) - 1
        if i >= 0 and spans[i][1] >= lo:
            return spans[i][1]
        return None


def _first_gap(base: IPNetwork, size: int, taken: list[Spans]) -> IPNetwork | None:
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
    """A subnet owned by one network; `id` is the subnet in CIDR form."""

    id: str
    subnet: IPNetwork
    ip_range: IPNetwork | None
    addresses: AddressSet = field(repr=False)

    def stats(self) -> dict[str, int]:
        return {
            "IPsInUse": self.addresses.in_use,
            "DynamicIPsAvailable": self.addresses.available(self.ip_range),
        }


class DefaultIpam:
    """Memory-only allocator; the controller persists its results with their owners."""

    name = "default"

    def __init__(self, v4_pools: Iterable[PoolSpec], v6_pools: Iterable[PoolSpec] = ()) -> None:
        self.v4_pools = list(v4_pools)
        self.v6_pools = list(v6_pools)
        self._pools: dict[str, Pool] = {}
        self._spans = Spans()

    # -- pools -------------------------------------------------------------------------
    def request_pool(
        self,
        subnet: str = "",
        *,
        v6: bool = False,
        ip_range: str = "",
        reserved: Iterable[IPNetwork] | Spans = (),
    ) -> Pool:
        """An explicit subnet must not overlap another pool; none means first free default."""
        if subnet:
            net = ipaddress.ip_network(subnet)
            lo, hi = int(net.network_address), int(net.broadcast_address)
            if self._spans.clash(net.version, lo, hi) is not None:
                raise Forbidden(OVERLAP)
        else:
            net = self._first_free(v6, reserved if isinstance(reserved, Spans) else Spans(reserved))
        rng = ipaddress.ip_network(ip_range) if ip_range else None
        pool = Pool(str(net), net, rng, AddressSet(net))
        self._pools[pool.id] = pool
        self._spans.add(net)
        return pool

    def _first_free(self, v6: bool, reserved: Spans) -> IPNetwork:
        """First fit over the predefined pools, skipping taken ranges by bisection."""
        for spec in self.v6_pools if v6 else self.v4_pools:
            found = _first_gap(ipaddress.ip_network(spec.base), spec.size, [self._spans, reserved])
            if found is not None:
                return found
        raise InvalidParameter(EXHAUSTED)

    def release_pool(self, pool_id: str) -> None:
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

    # -- addresses ---------------------------------------------------------------------
    def request_address(self, pool_id: str, address: str = "") -> IPAddress:
        """A given address may be anywhere in the subnet; a dynamic one comes from the range."""
        pool = self.pool(pool_id)
        if address:
            return pool.addresses.take(ipaddress.ip_address(address))
        return pool.addresses.take_any(pool.ip_range)

    def release_address(self, pool_id: str, address: str) -> None:
        pool = self._pools.get(pool_id)
        if pool is not None:
            pool.addresses.release(ipaddress.ip_address(address))
