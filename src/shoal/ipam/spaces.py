"""Docker's default IPAM driver as one object with two address spaces.

libnetwork's built-in driver answers both LocalDefault and GlobalDefault; the controller
asks it for its default spaces and picks one by the network's scope. Here each space has
its own allocator behind the same protocol (local: memory, replayed at start; global:
the cluster store, present only once the daemon has one), and this router sends each
call to the right one: a pool request by its address space, everything else by the
space its pool id starts with. The controller therefore never knows which allocator
holds a pool, and a remote plugin can take either place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shoal.errors import Forbidden
from shoal.ipam.api import (
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    Capabilities,
    Ipam,
    IPNetwork,
    space_of,
)


class AddressSpaces:
    name = "default"

    def __init__(self, local: Ipam, global_: Ipam | None = None) -> None:
        self._spaces: dict[str, Ipam] = {LOCAL_DEFAULT: local}
        if global_ is not None:
            self._spaces[GLOBAL_DEFAULT] = global_

    def serve(self, space: str, ipam: Ipam) -> None:
        """Put an allocator behind `space` (the cluster store's, when the daemon joins one)."""
        self._spaces[space] = ipam

    def allocator(self, space: str) -> Ipam:
        try:
            return self._spaces[space]
        except KeyError:
            raise Forbidden(f"address space {space} is not available: global networks need a cluster store "
                            "(start shoald with --cluster-store etcd://...)") from None

    @property
    def capabilities(self) -> Capabilities:
        """What any space needs: a replay is harmless to one that keeps its own record."""
        caps = [s.capabilities for s in self._spaces.values()]
        return Capabilities(requires_mac_address=any(c.requires_mac_address for c in caps),
                            requires_request_replay=any(c.requires_request_replay for c in caps))

    async def get_default_address_spaces(self) -> tuple[str, str]:
        return LOCAL_DEFAULT, GLOBAL_DEFAULT

    async def request_pool(self, address_space: str, pool: str = "", sub_pool: str = "",
                           options: Mapping[str, str] | None = None, v6: bool = False,
                           exclude: Iterable[IPNetwork] = ()) -> tuple[str, str, dict[str, str]]:
        return await self.allocator(address_space).request_pool(address_space, pool, sub_pool, options, v6,
                                                                exclude)

    async def release_pool(self, pool_id: str, options: Mapping[str, str] | None = None) -> None:
        ipam = self._spaces.get(space_of(pool_id))
        if ipam is not None:
            await ipam.release_pool(pool_id, options)

    async def request_address(self, pool_id: str, address: str = "",
                              options: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        return await self.allocator(space_of(pool_id)).request_address(pool_id, address, options)

    async def release_address(self, pool_id: str, address: str) -> None:
        ipam = self._spaces.get(space_of(pool_id))
        if ipam is not None:
            await ipam.release_address(pool_id, address)

    async def pool_status(self, pool_id: str) -> dict[str, int] | None:
        ipam = self._spaces.get(space_of(pool_id))
        return await ipam.pool_status(pool_id) if ipam is not None else None

    async def allocations(self, address_space: str) -> dict[str, list[str]] | None:
        ipam = self._spaces.get(address_space)
        return await ipam.allocations(address_space) if ipam is not None else None
