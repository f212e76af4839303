"""This host's BGP for routed networks: what BIRD should say, from what the cluster knows.

The cluster (controller.cluster) pokes it whenever something BIRD depends on changes:
a host joined or left (libnetwork's DiscoverNew/DiscoverDelete, from the hosts' lease
keys), a routed network appeared or went (its pool is what peers may announce), or this
host claimed or released a block (controller.kvblocks). One task turns the latest state
into a `bgp.BgpConfig` and hands it to the supervisor, so a burst of changes costs one
`birdc configure`. BIRD runs only while the cluster holds a routed network; when the
last one goes it is shut down for good (its routes leave the kernel with it), and at
shoald's shutdown it is stopped for a graceful restart (routes kept: see bgp.supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from shoal.bgp import DEFAULT_AS, BgpConfig, Bird
from shoal.errors import ShoalError

log = logging.getLogger("shoal.bgp")


class Routing:
    def __init__(self, bird: Bird, *, router_id: str, local_as: int = DEFAULT_AS,
                 route_reflectors: tuple[str, ...] = ()) -> None:
        self.bird = bird
        self.router_id = router_id
        self.local_as = local_as
        self.route_reflectors = route_reflectors
        # what the cluster answers (set by Cluster.attach_routing)
        self.hosts: Callable[[], list[str]] = list
        self.pools: Callable[[], list[str]] = list
        self.blocks: Callable[[], list[str]] = list
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.applied: BgpConfig | None = None

    def wanted(self) -> BgpConfig | None:
        pools = self.pools()
        if not pools:
            return None
        return BgpConfig(router_id=self.router_id, peers=tuple(self.hosts()), blocks=tuple(self.blocks()),
                         pools=tuple(pools), local_as=self.local_as, route_reflectors=self.route_reflectors)

    def poke(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            cfg = self.wanted()
            try:
                if cfg is None:
                    if self.applied is not None:
                        await self.bird.stop(graceful=False)  # no routed network left: its routes go
                else:
                    await self.bird.apply(cfg)
                self.applied = cfg
            except (OSError, ShoalError) as exc:
                log.error("BIRD not configured: %s", exc)
                await asyncio.sleep(1.0)
                self._wake.set()  # try again

    async def stop(self) -> None:
        """shoald stops: BIRD exits for a graceful restart (routes kept meanwhile)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.bird.stop(graceful=True)
