"""N shoal hosts over fakes sharing one MemoryKV: the cluster controller without root,
kernel or etcd (tests/unit/test_cluster.py).

Each host has its own MemoryStore, FakeSandboxKernel, DefaultIpam, drivers, Controller and
Cluster, and its own `HostKV` handle on the shared MemoryKV. The handle stands for one
daemon's etcd client: it yields to the event loop before every call (MemoryKV never
suspends, so without it "concurrent" hosts would simply run one after the other), it can
be taken down (every call raises StoreUnavailable naming the store, as EtcdKV does) or
have its watches cut (a lost watch connection), and its close() ends only its own
watches, where MemoryKV.close() would end every host's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import tempfile
from pathlib import Path

from shoal.controller import Controller
from shoal.controller.cluster import Cluster
from shoal.controller.restore import restore
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.drivers.overlay import OverlayDriver
from shoal.drivers.routed import RoutedDriver
from shoal.ipam import DefaultIpam, default_pools, ula_pool
from shoal.kernel import FakeSandboxKernel
from shoal.store import MemoryKV, MemoryStore
from shoal.store.kv import StoreUnavailable

TTL = 15


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HostKV:
    """One host's client of the shared store (see module doc)."""

    def __init__(self, inner: MemoryKV, name: str, rng: random.Random) -> None:
        self.inner = inner
        self.url = f"etcd://{name}:2379"
        self.rng = rng
        self.down = False
        self.watch_cut = False
        self.calls_left: int | None = None  # go down after this many more calls

    def fail_after(self, calls: int) -> None:
        self.calls_left = calls

    async def _enter(self) -> None:
        for _ in range(self.rng.randrange(3)):
            await asyncio.sleep(0)
        if self.calls_left is not None:
            self.down, self.calls_left = self.calls_left <= 0, self.calls_left - 1
        if self.down:
            raise StoreUnavailable(f"cluster store {self.url}: no member answered (injected): check that etcd "
                                   "is running and reachable at these addresses")

    async def get(self, key):
        await self._enter()
        return await self.inner.get(key)

    async def list(self, prefix):
        await self._enter()
        return await self.inner.list(prefix)

    async def put(self, key, value, *, lease=0):
        await self._enter()
        return await self.inner.put(key, value, lease=lease)

    async def delete(self, key):
        await self._enter()
        return await self.inner.delete(key)

    async def txn(self, compares, success, failure=()):
        await self._enter()
        return await self.inner.txn(compares, success, failure)

    async def grant(self, ttl):
        await self._enter()
        return await self.inner.grant(ttl)

    async def keepalive(self, lease):
        await self._enter()
        return await self.inner.keepalive(lease)

    async def revoke(self, lease):
        await self._enter()
        return await self.inner.revoke(lease)

    async def watch(self, prefix, start_revision):
        await self._enter()
        if self.watch_cut:
            raise StoreUnavailable(f"cluster store {self.url}: watch cut (injected)")
        inner = self.inner.watch(prefix, start_revision)
        try:
            async for batch in inner:
                if self.down or self.watch_cut:
                    raise StoreUnavailable(f"cluster store {self.url}: watch lost (injected)")
                yield batch
        finally:
            await inner.aclose()

    async def close(self) -> None:
        pass


class Host:
    """One daemon. `restart()` makes a new Controller and Cluster over the same store and
    kernel (what survives a restart of shoald)."""

    def __init__(self, world: ClusterWorld, index: int) -> None:
        self.world = world
        self.name = chr(ord("a") + index)
        self.ip = f"192.0.2.{index + 1}"
        self.advertise = f"{self.ip}:2376"
        self.engine_id = f"{index + 1:x}" * 64
        self.store = MemoryStore()
        self.kernel = FakeSandboxKernel()
        self.kernel.local_addresses = {self.ip: "eth0"}
        self.exec_root = str(Path(tempfile.gettempdir()) / f"sht-unit-{secrets.token_hex(6)}")
        self.running = False

    async def start(self) -> Host:
        self.kv = HostKV(self.world.kv, self.name, self.world.rng)
        ipam = DefaultIpam(default_pools(), [ula_pool(self.engine_id)])
        self.overlay = OverlayDriver(self.kernel, vtep=self.ip, underlay_mtu=1500)
        self.routed = RoutedDriver(self.kernel)
        self.routed.clustered = True
        drivers = {"bridge": BridgeDriver(self.kernel), "host": HostDriver(), "null": NullDriver(),
                   "overlay": self.overlay, "routed": self.routed}
        self.ctl = Controller(self.store, self.kernel, ipam, drivers, self.engine_id, exec_root=self.exec_root)
        self.cluster = Cluster(self.ctl, self.kv, advertise=self.advertise, vtep=self.ip, ttl=TTL,
                               resync=self.world.resync, older_prefixes=("/shoal/v1/",))
        self.ctl.cluster = self.cluster
        await restore(self.ctl)
        await self.cluster.start()
        self.running = True
        return self

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.cluster.stop()

    async def restart(self) -> Host:
        await self.stop()
        return await self.start()

    async def sandbox(self, name: str) -> str:
        sid = f"{self.name}-{name}-".ljust(64, "0")
        await self.ctl.create_sandbox(sid, host=False)
        return sid

    async def run(self, net: str, name: str, **kw):
        """A sandbox joined to `net`: the endpoint."""
        return await self.ctl.connect(net, await self.sandbox(name), name=name, **kw)

    def fdb(self, network_id: str) -> dict[str, str]:
        return self.kernel.fdb.get(f"vx-{network_id[:12]}", {})

    def neighbours(self, network_id: str) -> dict[str, str]:
        return self.kernel.neighbours.get(f"vx-{network_id[:12]}", {})


class ClusterWorld:
    def __init__(self, n: int = 3, *, resync: float = 3600.0, seed: int = 0) -> None:
        self.clock = FakeClock()
        self.kv = MemoryKV(self.clock)
        self.rng = random.Random(seed)
        self.resync = resync
        self.hosts = [Host(self, i) for i in range(n)]

    async def start(self) -> ClusterWorld:
        for host in self.hosts:
            await host.start()
        return self

    async def stop(self) -> None:
        for host in self.hosts:
            await host.stop()

    async def pass_time(self, seconds: float, *, alive: list[Host]) -> None:
        """Advance the store's clock in steps shorter than the TTL, keeping `alive` hosts'
        leases fed (their keepalive loops run on real time, far slower), then expire."""
        while seconds > 0:
            step = min(seconds, TTL / 3)
            self.clock.now += step
            seconds -= step
            for host in alive:
                await self.kv.keepalive(host.cluster.lease)
        self.kv.expire()

    async def listing(self) -> list[tuple[str, bytes, int]]:
        items, _ = await self.kv.list("")
        return [(kv.key, kv.value, kv.mod_revision) for kv in items]


@contextlib.asynccontextmanager
async def cluster_world(n: int = 3, **kw):
    world = ClusterWorld(n, **kw)
    try:
        yield await world.start()
    finally:
        await world.stop()


async def eventually(pred, timeout: float = 3.0, what: str = "condition"):
    """Poll `pred` (watch-driven convergence) until true or `timeout` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.005)
