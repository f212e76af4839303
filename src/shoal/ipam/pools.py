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


def _merged(nets: Iterable[IPNetwork]) -> list[tuple[int, int]]:
    """Taken subnets as sorted, merged [first, last] integer ranges."""
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets)
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _first_gap(base: IPNetwork, size: int, taken: list[tuple[int, int]], starts: list[int]) -> IPNetwork | None:
    """The lowest subnet of prefix `size` inside `base` that overlaps no taken range."""
    if size < base.prefixlen:
        size = base.prefixlen
    block = 1 << (base.max_prefixlen - size)
    cand, end = int(base.network_address), int(base.broadcast_address)
    while cand + block - 1 <= end:
        i = bisect.bisect_right(starts, cand + block - 1) - 1
        if i >= 0 and taken[i][1] >= cand:  # the range starting last before our end reaches us
            cand = (taken[i][1] // block + 1) * block  # jump past it, staying aligned
            continue
        return ipaddress.ip_network((cand, size))
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

    # -- pools -------------------------------------------------------------------------
    def request_pool(
        self,
        subnet: str = "",
        *,
        v6: bool = False,
        ip_range: str = "",
        reserved: Iterable[IPNetwork] = (),
    ) -> Pool:
        """An explicit subnet must not overlap another pool; none means first free default."""
        if subnet:
            net = ipaddress.ip_network(subnet)
            if any(net.overlaps(p.subnet) for p in self._pools.values()):
                raise Forbidden(OVERLAP)
        else:
            net = self._first_free(v6, list(reserved))
        rng = ipaddress.ip_network(ip_range) if ip_range else None
        pool = Pool(str(net), net, rng, AddressSet(net))
        self._pools[pool.id] = pool
        return pool

    def _first_free(self, v6: bool, reserved: list[IPNetwork]) -> IPNetwork:
        """First fit over the predefined pools, skipping taken ranges by bisection: with
        thousands of networks each step is O(log n), not a scan of every taken subnet."""
        version = 6 if v6 else 4
        taken = _merged(n for n in [p.subnet for p in self._pools.values()] + reserved if n.version == version)
        starts = [a for a, _ in taken]
        for spec in self.v6_pools if v6 else self.v4_pools:
            found = _first_gap(ipaddress.ip_network(spec.base), spec.size, taken, starts)
            if found is not None:
                return found
        raise InvalidParameter(EXHAUSTED)

    def release_pool(self, pool_id: str) -> None:
        self._pools.pop(pool_id, None)

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
