"""Late and ambiguous cluster writes (a review's findings, each a regression test): a
delete that comes second, an orphan sweep that races a new claim of the same subnet, and
a create whose last answer was lost after it applied. Hosts share one MemoryKV
(tests/unit/clusterworld.py); the races are forced by wrapping one host's store client."""

import asyncio

import pytest

from shoal.errors import NotFound, Unavailable
from shoal.model import NetworkSpec
from shoal.store.kv import StoreUnavailable

from .clusterworld import ClusterWorld

VNI = "com.docker.network.driver.overlay.vxlanid_list"


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 8.0))


def overlay(name: str) -> NetworkSpec:
    return NetworkSpec(name=name, driver="overlay")


def named(host, name: str):
    return next(n for n in host.ctl.networks.values() if n.name == name)


def test_a_second_delete_takes_nothing_of_the_network_made_since():
    """b removes x while a already has, and c has made y with x's VNI and subnet meanwhile:
    b is told x is gone, and y keeps its VNI, name, pool and addresses."""
    async def go():
        world = await ClusterWorld(3).start()
        try:
            a, b, c = world.hosts
            x = await a.ctl.create_network(overlay("x"))
            await asyncio.sleep(0.05)
            real_txn = b.kv.txn

            async def txn(compares, success, failure=()):
                result = await real_txn(compares, success, failure)
                if not compares and any(op.key.endswith(f"members/{x.id}") for op in success):
                    b.kv.txn = real_txn  # once: b has read x; now a removes it and c makes y
                    await a.ctl.delete_network("x")
                    await c.ctl.create_network(overlay("y"))
                return result

            b.kv.txn = txn
            with pytest.raises(NotFound):
                await b.ctl.delete_network(x.id)
            y = named(c, "y")
            assert y.options[VNI] == x.options[VNI] and y.ipam_configs[0].subnet == x.ipam_configs[0].subnet
            z = await a.ctl.create_network(overlay("z"))
            assert z.options[VNI] != y.options[VNI]
            assert z.ipam_configs[0].subnet != y.ipam_configs[0].subnet
            ep = await c.run("y", "c1")
            assert ep.ipv4
        finally:
            await world.stop()

    run(go())


def test_an_orphan_sweep_spares_a_pool_claimed_again_by_another_network():
    async def go():
        world = await ClusterWorld(3).start()
        try:
            a, b, c = world.hosts
            x = await a.ctl.create_network(overlay("x"))
            await asyncio.sleep(0.05)
            xb = b.ctl.networks[x.id]
            await b.cluster.delete_network(xb)  # b's delete cut short before its pools went
            await asyncio.sleep(0.05)  # a has seen x go
            real_get = a.kv.get
            fired = []

            async def get(key):
                if "/ipam/GlobalDefault/pools/" in key and not fired:
                    fired.append(key)  # a's sweep has listed x's pool as an orphan
                    await b.ctl._release_pools(xb)
                    await c.ctl.create_network(overlay("y"))
                    await c.run("y", "c1")
                return await real_get(key)

            a.kv.get = get
            await a.cluster._drop_own_leftovers({})
            a.kv.get = real_get
            assert fired and named(c, "y").ipam_configs[0].subnet == x.ipam_configs[0].subnet
            assert (await c.run("y", "c2")).ipv4  # y's pool is still there
        finally:
            await world.stop()

    run(go())


def test_a_create_whose_answer_was_lost_keeps_its_pools():
    """The record was written but the client saw the store fail: its subnet must not be
    handed to the next network, and the network works once seen."""
    async def go():
        world = await ClusterWorld(2).start()
        try:
            a, b = world.hosts
            real_txn = a.kv.txn

            async def txn(compares, success, failure=()):
                result = await real_txn(compares, success, failure)
                if any("/names/" in op.key for op in success):
                    raise StoreUnavailable("injected: the answer was lost after the txn applied")
                return result

            a.kv.txn = txn
            with pytest.raises(Unavailable):
                await a.ctl.create_network(overlay("x"))
            a.kv.txn = real_txn
            y = await b.ctl.create_network(overlay("y"))
            await asyncio.sleep(0.05)
            x = named(b, "x")
            assert x.ipam_configs[0].subnet != y.ipam_configs[0].subnet
            assert (await b.run("x", "c1")).ipv4
        finally:
            await world.stop()

    run(go())
