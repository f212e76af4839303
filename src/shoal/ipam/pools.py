"""Docker's default IPAM: predefined pools handed out first fit, addresses lowest free.

The verbs follow libnetwork's ipamapi (request/release pool, request/release address)
so that a remote IPAM plugin can later stand behind the same calls.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
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
        taken = [p.subnet for p in self._pools.values()] + reserved
        for candidate in self._candidates(self.v6_pools if v6 else self.v4_pools):
            if not any(candidate.version == t.version and candidate.overlaps(t) for t in taken):
                return candidate
        raise InvalidParameter(EXHAUSTED)

    @staticmethod
    def _candidates(specs: list[PoolSpec]) -> Iterator[IPNetwork]:
        for spec in specs:
            base = ipaddress.ip_network(spec.base)
            if spec.size < base.prefixlen:
                yield base
            else:
                yield from base.subnets(new_prefix=spec.size)

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
