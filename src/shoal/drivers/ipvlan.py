"""The `ipvlan` driver name, on a kernel that may not have ipvlan.

dockerd registers ipvlan whatever the kernel, and a network create on a kernel without
the module fails deep in a netlink call ("operation not supported"). shoal asks the
kernel once, at the first create, whether it can make ipvlan links, and says plainly
what is missing before anything exists. Kept as a driver object, so nothing outside
the drivers branches on the name.
"""

from __future__ import annotations

from shoal.drivers.base import Capabilities
from shoal.drivers.host import HostDriver
from shoal.errors import Forbidden, NotImplementedYet
from shoal.kernel import Kernel
from shoal.model import Endpoint, Network


class IpvlanDriver(HostDriver):
    """Nothing is ever built (no network gets past create), so every other verb is the
    host driver's: nothing to do."""

    name = "ipvlan"
    capabilities = Capabilities()

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._supported: bool | None = None  # asked once

    async def create_network(self, network: Network, alias: str) -> None:
        if self._supported is None:
            self._supported = await self._kernel.has_link_kind("ipvlan")
        if not self._supported:
            raise Forbidden("ipvlan networks need the kernel's ipvlan support, and this kernel has none "
                            "(no ipvlan module); -d macvlan gives containers addresses on the LAN too")
        raise NotImplementedYet("this kernel has ipvlan, but shoal has no ipvlan driver yet; use -d macvlan")

    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        raise NotImplementedYet("shoal has no ipvlan driver")
