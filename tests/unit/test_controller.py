import asyncio

import pytest

from shoal.controller.restore import remove_stale, restore
from shoal.errors import Conflict, Forbidden, InvalidParameter, NotFound, ShoalError
from shoal.kernel.netlink import LinkInfo
from shoal.model import IPAMConfig, NetworkSpec

from .conftest import World


def run(coro):
    return asyncio.run(coro)


async def started():
    return await World().start()


def test_predefined_networks_on_first_start():
    async def go():
        w = await started()
        nets = {n.name: n for n in w.ctl.list_networks()}
        assert set(nets) == {"bridge", "host", "none"}
        assert nets["bridge"].ipam_configs[0].subnet == "172.17.0.0/16"
        assert nets["bridge"].ipam_configs[0].gateway == "172.17.0.1"
        assert nets["none"].driver == "null"
        assert w.kernel.links_by_name["shoal0"].addresses == ("172.17.0.1/16",)
    run(go())


def test_next_network_gets_next_pool_and_owned_bridge():
    async def go():
        w = await started()
        net = await w.ctl.create_network(NetworkSpec(name="my-bridge-network"))
        assert net.ipam_configs[0].subnet == "172.18.0.0/16"
        link = w.kernel.links_by_name[f"br-{net.id[:12]}"]
        assert link.alias == w.ctl.alias("net", net.id)
    run(go())


@pytest.mark.parametrize("fail", ["kernel", "store"])
def test_failure_half_way_rolls_back_kernel_store_and_ipam(fail):
    async def go():
        w = await started()
        before_links = set(w.kernel.links_by_name)
        before_pools = {p.id for p in w.ipam.pools()}
        before_store = dict(w.store.data)
        if fail == "kernel":
            w.kernel.fail_on = "ensure_bridge"
        else:
            w.store.fail_next = True
        with pytest.raises(ShoalError):
            await w.ctl.create_network(NetworkSpec(name="n1"))
        assert set(w.kernel.links_by_name) == before_links
        assert {p.id for p in w.ipam.pools()} == before_pools
        assert w.store.data == before_store
        assert "n1" not in {n.name for n in w.ctl.list_networks()}
        net = await w.ctl.create_network(NetworkSpec(name="n1"))
        assert net.ipam_configs[0].subnet == "172.18.0.0/16"
    run(go())


def test_find_by_id_name_prefix_and_ambiguity():
    async def go():
        w = await started()
        a = await w.ctl.create_network(NetworkSpec(name="alpha"))
        assert w.ctl.find_network(a.id) is a
        assert w.ctl.find_network("alpha") is a
        assert w.ctl.find_network(a.id[:5]) is a
        with pytest.raises(NotFound, match="network nope not found"):
            w.ctl.find_network("nope")
        ids = [n.id for n in w.ctl.list_networks()]
        common = {i[:1] for i in ids}
        for p in common:
            if sum(i.startswith(p) for i in ids) > 1:
                with pytest.raises(InvalidParameter, match="ambiguous"):
                    w.ctl.find_network(p)
    run(go())


def test_bad_input_changes_nothing():
    async def go():
        w = await started()
        snapshot = (dict(w.store.data), set(w.kernel.links_by_name), len(w.ipam.pools()))
        bad = [
            (NetworkSpec(name="bridge"), Forbidden),
            (NetworkSpec(name=" \t"), InvalidParameter),
            (NetworkSpec(name="x", driver="nope"), NotFound),
            (NetworkSpec(name="x", driver="host"), Forbidden),
            (NetworkSpec(name="x", ipam_configs=(IPAMConfig(subnet="10.0.0.1/24"),)), InvalidParameter),
            (NetworkSpec(name="x", ipam_configs=(IPAMConfig(subnet="10.0.0.0/24", gateway="10.1.0.1"),)),
             InvalidParameter),
            (NetworkSpec(name="x", ipam_configs=(IPAMConfig(subnet="172.17.1.0/24"),)), Forbidden),
            (NetworkSpec(name="x", options={"com.docker.network.bridge.name": "a" * 16}), InvalidParameter),
            (NetworkSpec(name="x", options={"com.docker.network.driver.mtu": "big"}), InvalidParameter),
            (NetworkSpec(name="x", options={"com.docker.network.bridge.name": "shoal0"}), Forbidden),
        ]
        for spec, err in bad:
            with pytest.raises(err):
                await w.ctl.create_network(spec)
        assert snapshot == (dict(w.store.data), set(w.kernel.links_by_name), len(w.ipam.pools()))
        await w.ctl.create_network(NetworkSpec(name="dup"))
        with pytest.raises(Conflict, match="already exists"):
            await w.ctl.create_network(NetworkSpec(name="dup"))
    run(go())


def test_bridge_name_taken_by_a_foreign_link():
    async def go():
        w = await started()
        w.kernel.links_by_name["eth9"] = LinkInfo("eth9", 50, "veth", "", 1500, True, "")
        with pytest.raises(Forbidden, match="does not own"):
            await w.ctl.create_network(
                NetworkSpec(name="x", options={"com.docker.network.bridge.name": "eth9"})
            )
        assert w.kernel.links_by_name["eth9"].kind == "veth"
    run(go())


def test_concurrent_creates_get_distinct_subnets():
    async def go():
        w = await started()
        results = await asyncio.gather(
            *(w.ctl.create_network(NetworkSpec(name=f"n{i}")) for i in range(28)),
            return_exceptions=True,
        )
        subnets = [r.ipam_configs[0].subnet for r in results if not isinstance(r, Exception)]
        assert len(subnets) == 28 == len(set(subnets))
    run(go())


def test_restart_restores_and_removes_stale_owned_links_only():
    async def go():
        w = await started()
        net = await w.ctl.create_network(NetworkSpec(name="keep", labels={"a": "b"}))
        w2 = World()
        w2.store = w.store
        w2.kernel = w.kernel
        w2.ctl.store, w2.ctl.kernel = w.store, w.kernel
        w2.ctl.drivers["bridge"]._kernel = w.kernel
        w.kernel.links_by_name.pop(f"br-{net.id[:12]}")  # "after a reboot"
        stale = w.ctl.alias("net", "f" * 64)
        w.kernel.links_by_name["br-stale"] = LinkInfo("br-stale", 60, "bridge", stale, 1500, True, "")
        w.kernel.links_by_name["br-other"] = LinkInfo("br-other", 61, "bridge", "", 1500, True, "")
        await restore(w2.ctl)
        again = w2.ctl.find_network("keep")
        assert again == net
        assert f"br-{net.id[:12]}" in w.kernel.links_by_name
        assert "br-stale" not in w.kernel.links_by_name
        assert "br-other" in w.kernel.links_by_name
        assert {n.name for n in w2.ctl.list_networks()} == {"bridge", "host", "none", "keep"}
        assert await remove_stale(w2.ctl) == []
        nxt = await w2.ctl.create_network(NetworkSpec(name="next"))
        assert nxt.ipam_configs[0].subnet == "172.19.0.0/16"
    run(go())


def test_delete_predefined_forbidden_and_release_pool():
    async def go():
        w = await started()
        with pytest.raises(Forbidden, match="pre-defined"):
            await w.ctl.delete_network("bridge")
        net = await w.ctl.create_network(NetworkSpec(name="a"))
        await w.ctl.delete_network("a")
        assert f"br-{net.id[:12]}" not in w.kernel.links_by_name
        again = await w.ctl.create_network(NetworkSpec(name="b"))
        assert again.ipam_configs[0].subnet == net.ipam_configs[0].subnet
    run(go())


def test_several_subnets_per_family_each_endpoint_gets_its_own_gateway():
    """A full first subnet hands out from the next one; gateways follow the address."""
    async def go():
        w = await started()
        spec = NetworkSpec(name="multi", ipam_configs=(IPAMConfig(subnet="10.61.0.0/30"), IPAMConfig(subnet="10.62.0.0/24")))
        net = await w.ctl.create_network(spec)
        addrs = []
        for i in range(3):
            sb = await w.ctl.create_sandbox(f"{i:064x}", host=True)
            ep = await w.ctl.connect(net.id, sb.id, name=f"c{i}")
            addrs.append(ep.ipv4)
        assert addrs == ["10.61.0.2/30", "10.62.0.2/24", "10.62.0.3/24"]
        assert [net.gateway_for(a) for a in addrs] == ["10.61.0.1", "10.62.0.1", "10.62.0.1"]
        assert net.gateway_for("") == "" and net.gateway_for("192.0.2.1") == ""
    run(go())


def test_restart_replays_pools_gateways_aux_and_endpoints_into_the_local_allocator():
    """The local allocator keeps nothing (RequiresRequestReplay): what the store's networks
    and endpoints hold is asked for again, so nothing is handed out twice after a restart.
    A record from before pool ids were kept gets them back from the replay."""
    async def go():
        w = await started()
        spec = NetworkSpec(name="r", ipam_configs=(IPAMConfig(subnet="10.70.0.0/24", ip_range="10.70.0.0/28",
                                                              aux_addresses={"a": "10.70.0.2"}),))
        net = await w.ctl.create_network(spec)
        assert net.ipam_configs[0].pool_id == "LocalDefault/10.70.0.0/24/10.70.0.0/28"
        sb = await w.ctl.create_sandbox("1" * 64, host=True)
        ep = await w.ctl.connect(net.id, sb.id, name="c1")
        assert ep.ipv4 == "10.70.0.3/24"  # .1 the gateway, .2 the aux address
        for cfg in w.store.data[("network", net.id)]["ipam_configs"]:  # as an older record: no pool ids
            del cfg["pool_id"]
        w2 = World()
        w2.store, w2.kernel = w.store, w.kernel
        w2.ctl.store, w2.ctl.kernel = w.store, w.kernel
        w2.ctl.drivers["bridge"]._kernel = w.kernel
        await restore(w2.ctl)
        again = w2.ctl.find_network("r")
        assert again.ipam_configs[0].pool_id == net.ipam_configs[0].pool_id
        assert await w2.ctl.ipam_status(again) == {"10.70.0.0/24": {"IPsInUse": 5, "DynamicIPsAvailable": 12}}
        sb2 = await w2.ctl.create_sandbox("2" * 64, host=True)
        assert (await w2.ctl.connect(again.id, sb2.id, name="c2")).ipv4 == "10.70.0.4/24"
    run(go())
