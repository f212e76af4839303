"""The `ipvlan` driver name, on a kernel that may not have ipvlan.

dockerd registers ipvlan whatever the kernel, and a network create on a kernel without
the module fails deep in a netlink call ("operation not supported"). shoal asks the
kernel once, at the first create, whether it can make ipvlan links, and says plainly
what is missing before anything exists. Kept as a driver object, so nothing outside
the drivers branches on the name.
"""

from __future__ import annotations

from collections.abc import Mapping

from shoal.drivers.base import Capabilities, Problem
from shoal.errors import Forbidden, NotImplementedYet
from shoal.kernel import Kernel, LinkInfo
from shoal.model import Endpoint, Network, NetworkSpec


class IpvlanDriver:
    name = "ipvlan"
    capabilities = Capabilities()

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._supported: bool | None = None  # asked once

    def validate(self, spec: NetworkSpec) -> None:
        pass  # the kernel's answer needs a netlink call: create_network gives it, before any link

    def bridge_of(self, network: Network) -> None:
        return None

    async def create_network(self, network: Network, alias: str) -> None:
        if self._supported is None:
            self._supported = await self._kernel.has_link_kind("ipvlan")
        if not self._supported:
            raise Forbidden("ipvlan networks need the kernel's ipvlan support, and this kernel has none "
                            "(no ipvlan module); -d macvlan gives containers addresses on the LAN too")
        raise NotImplementedYet("this kernel has ipvlan, but shoal has no ipvlan driver yet; use -d macvlan")

    async def delete_network(self, network: Network) -> None:
        pass

    async def restore_network(self, network: Network, alias: str) -> None:
        pass

    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        raise NotImplementedYet("shoal has no ipvlan driver")

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        pass

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        return []

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        return ep
