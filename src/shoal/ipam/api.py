"""The IPAM protocol: libnetwork's ipamapi verbs, async, so that any allocator (the local
one in memory, the cluster one in etcd, later a remote plugin over HTTP) stands behind
the same calls and the controller never asks which one it is talking to.

Pool ids are opaque to callers. The allocators here spell them as Docker's default IPAM
does, `AddressSpace/Subnet[/SubPool]` (e.g. `LocalDefault/10.1.0.0/24/10.1.0.128/25`),
so an id names its address space and `AddressSpaces` can route it without a table.

Options are strings, as on the wire. Besides Docker's own keys, shoal passes two of its
own so that an allocator which keeps its claims somewhere shared can tell whose they are:

* `OPT_OWNER`: the object an allocation belongs to (the network for a pool, its gateway
  and aux addresses; the endpoint for an endpoint's address). A claim records it, so a
  request retried after a lost answer recognises its own write, a replayed request is
  answered with what it already holds, and a late release cannot free what another
  owner claimed since.
* `OPT_HOST_BOUND`: the allocation lives and dies with this host (an endpoint's address):
  a shared allocator frees it once the host is gone for good.

An allocator that keeps nothing (the local one) ignores both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Protocol

from shoal.errors import NotFound, Unavailable

LOCAL_DEFAULT = "LocalDefault"
GLOBAL_DEFAULT = "GlobalDefault"

REQUEST_ADDRESS_TYPE = "RequestAddressType"  # Docker's option key, with the value below
GATEWAY = "com.docker.network.gateway"
OPT_OWNER = "com.shoal.ipam.owner"
OPT_HOST_BOUND = "com.shoal.ipam.host-bound"

IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True)
class Capabilities:
    """The remote protocol's GetCapabilities: whether the allocator wants the endpoint's
    MAC in RequestAddress options, and whether it keeps nothing across a restart, so the
    daemon must replay every pool and address it holds (Docker's built-in IPAM does)."""

    requires_mac_address: bool = False
    requires_request_replay: bool = False


class NoAddressAvailable(Unavailable):
    """The pool is full (503, `no available addresses on this pool`). Its own class because
    the caller then tries the network's next subnet, and must not do so for an allocator
    that is merely unreachable (also a 503)."""


class Ipam(Protocol):
    @property
    def capabilities(self) -> Capabilities: ...

    async def get_default_address_spaces(self) -> tuple[str, str]:
        """(local, global): the spaces local-scope and global-scope networks draw from."""
        ...

    async def request_pool(self, address_space: str, pool: str = "", sub_pool: str = "",
                           options: Mapping[str, str] | None = None, v6: bool = False,
                           exclude: Iterable[IPNetwork] = ()) -> tuple[str, str, dict[str, str]]:
        """(pool id, subnet CIDR, data). `pool` empty: the first free default pool, skipping
        `exclude` (moby's PoolRequest.Exclude: prefixes in use elsewhere, such as the host's
        routes); `sub_pool`: the range dynamic addresses come from."""
        ...

    async def release_pool(self, pool_id: str, options: Mapping[str, str] | None = None) -> None:
        """Frees the pool and every address still held in it; unknown ids are no error.
        `OPT_OWNER` in `options`: only while the pool is still that owner's (a late
        release must not free a pool claimed again since by another network)."""
        ...

    async def request_address(self, pool_id: str, address: str = "",
                              options: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """(address CIDR, data): `address` if free, else the lowest free one of the sub-pool."""
        ...

    async def release_address(self, pool_id: str, address: str) -> None: ...

    async def pool_status(self, pool_id: str) -> dict[str, int] | None:
        """Inspect's Status.IPAM.Subnets entry (moby's PoolStatuser), None when not known."""
        ...

    async def allocations(self, address_space: str) -> dict[str, list[str]] | None:
        """Every pool of `address_space` this allocator holds, with its taken addresses
        (bare IPs): what the invariant checker compares with the networks and endpoints.
        None when the allocator cannot list them cheaply (a remote or cluster one)."""
        ...


def make_pool_id(space: str, subnet: str, sub_pool: str = "") -> str:
    return f"{space}/{subnet}/{sub_pool}" if sub_pool else f"{space}/{subnet}"


def parse_pool_id(pool_id: str) -> tuple[str, str, str]:
    """(space, subnet, sub_pool) of an id made by `make_pool_id`; for the allocators only,
    callers keep ids opaque."""
    parts = pool_id.split("/")
    if len(parts) not in (3, 5):
        raise NotFound(f"pool {pool_id} not found")
    sub_pool = "/".join(parts[3:5]) if len(parts) == 5 else ""
    return parts[0], "/".join(parts[1:3]), sub_pool


def space_of(pool_id: str) -> str:
    return pool_id.split("/", 1)[0]
