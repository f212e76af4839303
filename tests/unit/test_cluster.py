"""The cluster controller over fakes: hosts sharing one MemoryKV (tests/unit/clusterworld.py).

What the cluster tier checks with etcd and namespaces, checked here in milliseconds:
global networks mirrored on every host, cluster-wide names, subnets and addresses (also
under concurrency), peers programmed and removed, delete guarded by remote endpoints,
a dead host's lease, a restarted host's lease, a watch behind compaction, kernel
reconcile, own leftovers, an unreachable store, and the overlay driver's edge checks.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging

import pytest

from shoal.controller.cluster import KIND_CACHE
from shoal.drivers.overlay import OPT_MTU, OPT_VNI, OverlayDriver
from shoal.errors import Forbidden, InvalidParameter, ShoalError
from shoal.kernel import FakeKernel
from shoal.model import IPAMConfig, NetworkSpec

from .clusterworld import ClusterWorld, cluster_world, eventually

PREFIX = "/shoal/v2/"


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 8.0))


@pytest.fixture(autouse=True)
def no_background_errors(caplog):
    """A watch or resync that fails only logs; fail the test on any such error."""
    caplog.set_level(logging.WARNING, logger="shoal")
    yield caplog
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("shoal")]
    assert not errors, [r.getMessage() for r in errors]


def address_key(net, ip: str) -> str:
    """Where GlobalDefault keeps the claim of `ip` in the network's (first) subnet."""
    subnet = net.ipam_configs[0].subnet.replace("/", "-")
    return f"{PREFIX}ipam/GlobalDefault/addresses/{subnet}/{ip}"


def overlay(name: str, **kw) -> NetworkSpec:
    return NetworkSpec(name=name, driver="overlay", **kw)


def has_network(host, net) -> bool:
    return net.id in host.ctl.networks


def expected_tables(host, net, others):
    """What `host`'s VXLAN device must hold for the endpoints `others` = [(host, ep)]."""
    fdb = {ep.mac: h.ip for h, ep in others if h is not host}
    neigh = {ep.ipv4.split("/")[0]: ep.mac for h, ep in others if h is not host}
    return fdb, neigh


def tables_are(host, net, others) -> bool:
    """A host with an endpoint on the network holds exactly the others' peers; a host
    without one has not built its side, so holds nothing (and has no VXLAN device)."""
    if net.id not in host.ctl.built:
        return (host.fdb(net.id), host.neighbours(net.id)) == ({}, {}) and \
            f"vx-{net.id[:12]}" not in host.kernel.vxlans
    return (host.fdb(net.id), host.neighbours(net.id)) == expected_tables(host, net, others)


# -- networks ---------------------------------------------------------------------------
def test_network_created_on_one_host_appears_on_every_host():
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            net = await a.ctl.create_network(overlay("ov1"))
            assert net.scope == "global" and net.ipam_configs[0].subnet == "10.0.0.0/24"
            vni = int(net.options[OPT_VNI])
            assert vni >= 256
            for h in (b, c):
                await eventually(lambda h=h: has_network(h, net), what=f"ov1 on {h.name}")
            for h in w.hosts:
                mirrored = h.ctl.networks[net.id]
                assert mirrored.to_dict() == net.to_dict()
                assert h.ctl.find_network("ov1") is mirrored
                assert f"ov-{net.id[:12]}" not in h.kernel.links_by_name  # built at the first endpoint
                await h.run("ov1", f"c-{h.name}")
                bridge = h.kernel.links_by_name[f"ov-{net.id[:12]}"]
                assert bridge.addresses == ("10.0.0.1/24",) and bridge.mtu == 1450
                vx = h.kernel.vxlans[f"vx-{net.id[:12]}"]
                assert (vx["vni"], vx["local"], vx["bridge"], vx["mtu"]) == (vni, h.ip, bridge.name, 1450)
                assert h.store.get(KIND_CACHE, net.id) == net.to_dict()
    run(go())


def test_a_name_taken_on_one_host_is_a_409_on_another():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            await a.ctl.create_network(overlay("ov1"))
            with pytest.raises(ShoalError, match="network with name ov1 already exists") as exc:
                await b.ctl.create_network(overlay("ov1"))  # B may not have mirrored it yet: the store says no
            assert exc.value.status == 409
            await eventually(lambda: any(n.name == "ov1" for n in b.ctl.networks.values()), what="ov1 on b")
            with pytest.raises(ShoalError, match="already exists") as exc:
                await b.ctl.create_network(overlay("ov1"))
            assert exc.value.status == 409
    run(go())


@pytest.mark.parametrize("seed", range(4))
def test_one_name_created_at_once_on_two_hosts_exactly_one_wins(seed):
    async def go():
        async with cluster_world(2, seed=seed) as w:
            a, b = w.hosts
            results = await asyncio.gather(a.ctl.create_network(overlay("same")),
                                           b.ctl.create_network(overlay("same")), return_exceptions=True)
            won = [r for r in results if not isinstance(r, BaseException)]
            lost = [r for r in results if isinstance(r, BaseException)]
            assert len(won) == 1 and len(lost) == 1, results
            assert isinstance(lost[0], ShoalError) and lost[0].status == 409, lost
            items, _ = await w.kv.list(f"{PREFIX}networks/")
            assert [kv.key for kv in items] == [f"{PREFIX}networks/{won[0].id}"]
            for h in w.hosts:
                await eventually(lambda h=h: [n.id for n in h.ctl.networks.values() if n.name == "same"]
                                 == [won[0].id], what=f"one 'same' on {h.name}")
    run(go())


@pytest.mark.parametrize("seed", range(4))
def test_automatic_subnets_are_distinct_even_when_created_at_once(seed):
    async def go():
        async with cluster_world(2, seed=seed) as w:
            a, b = w.hosts
            nets = await asyncio.gather(a.ctl.create_network(overlay("n1")), b.ctl.create_network(overlay("n2")),
                                        a.ctl.create_network(overlay("n3")), b.ctl.create_network(overlay("n4")))
            subnets = [ipaddress.ip_network(n.ipam_configs[0].subnet) for n in nets]
            assert len(set(subnets)) == 4
            assert all(s.prefixlen == 24 and s.subnet_of(ipaddress.ip_network("10.0.0.0/8")) for s in subnets)
            assert len({n.options[OPT_VNI] for n in nets}) == 4
    run(go())


def test_an_explicit_overlapping_subnet_is_a_403_and_writes_nothing():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            ov1 = await a.ctl.create_network(overlay("ov1"))  # 10.0.0.0/24
            await eventually(lambda: has_network(b, ov1), what="ov1 on b")
            await b.ctl.create_network(NetworkSpec(name="br", ipam_configs=(IPAMConfig("10.9.0.0/16"),)))
            before = await w.listing()
            nets_before, links_before = set(b.ctl.networks), dict(b.kernel.links_by_name)
            store_before = copy.deepcopy(b.store.data)
            for subnet in ("10.0.0.0/16", "10.0.0.128/25", "10.9.3.0/24"):  # a global one's, and B's local one's
                with pytest.raises(Forbidden, match="Pool overlaps") as exc:
                    await b.ctl.create_network(overlay("x", ipam_configs=(IPAMConfig(subnet),)))
                assert exc.value.status == 403
            assert await w.listing() == before
            assert set(b.ctl.networks) == nets_before and b.kernel.links_by_name == links_before
            assert b.store.data == store_before
    run(go())


# -- endpoints and peers ------------------------------------------------------------------
async def network_everywhere(w, name="ov1"):
    net = await w.hosts[0].ctl.create_network(overlay(name))
    for h in w.hosts:
        await eventually(lambda h=h: has_network(h, net), what=f"{name} on {h.name}")
    return net


def test_endpoints_on_two_hosts_get_distinct_addresses_and_each_others_peer():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            ea = await a.run("ov1", "c1")
            eb = await b.run("ov1", "c2")
            assert (ea.ipv4, eb.ipv4) == ("10.0.0.2/24", "10.0.0.3/24")
            assert ea.mac != eb.mac
            eps = [(a, ea), (b, eb)]
            for h in w.hosts:
                await eventually(lambda h=h: tables_are(h, net, eps), what=f"peers on {h.name}")
            assert b.fdb(net.id) == {ea.mac: a.ip} and b.neighbours(net.id) == {"10.0.0.2": ea.mac}
            assert a.fdb(net.id) == {eb.mac: b.ip} and a.neighbours(net.id) == {"10.0.0.3": eb.mac}
    run(go())


@pytest.mark.parametrize("seed", range(3))
def test_twenty_concurrent_connects_across_three_hosts_get_distinct_addresses(seed):
    async def go():
        async with cluster_world(3, seed=seed) as w:
            net = await network_everywhere(w)
            jobs = [(w.hosts[i % 3], f"c{i}") for i in range(20)]
            eps = await asyncio.gather(*(h.run("ov1", name) for h, name in jobs))
            addresses = [ep.ipv4 for ep in eps]
            assert len(set(addresses)) == 20 and "10.0.0.1/24" not in addresses
            items, _ = await w.kv.list(address_key(net, ""))
            claimed = sorted(kv.key.rsplit("/", 1)[1] for kv in items if kv.lease)  # the gateway's has none
            assert claimed == sorted(a.split("/")[0] for a in addresses)
            placed = [(h, ep) for (h, _), ep in zip(jobs, eps)]
            for h in w.hosts:
                await eventually(lambda h=h: tables_are(h, net, placed), what=f"19 or so peers on {h.name}")
    run(go())


def test_disconnect_removes_the_peer_everywhere_and_frees_the_address():
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            net = await network_everywhere(w)
            ea = await a.run("ov1", "c1")
            eb = await b.run("ov1", "c2")
            await c.run("ov1", "c0")  # so that c has built its side too
            ec = next(e for e in c.ctl.endpoints.values() if e.name == "c0")
            for h in (b, c):
                await eventually(lambda h=h: ea.mac in h.fdb(net.id), what=f"c1's peer on {h.name}")
            await a.ctl.disconnect("ov1", ea.sandbox_id)
            for h in w.hosts:
                await eventually(lambda h=h: tables_are(h, net, [(b, eb), (c, ec)]), what=f"c1 gone from {h.name}")
                assert all(p.endpoint_id != ea.id for p in h.cluster.peers.values())
            assert await w.kv.get(address_key(net, "10.0.0.2")) is None
            again = await c.run("ov1", "c3")
            assert again.ipv4 == ea.ipv4
    run(go())


def test_delete_is_refused_while_another_host_has_an_endpoint_then_works_from_any_host():
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            net = await network_everywhere(w)
            ea = await a.run("ov1", "c1")
            await eventually(lambda: any(p.endpoint_id == ea.id for p in b.cluster.peers.values()),
                             what="c1 known on b")
            before = await w.listing()
            links = dict(b.kernel.links_by_name)
            with pytest.raises(Forbidden, match="has active endpoints \\(c1\\)") as exc:
                await b.ctl.delete_network("ov1")
            assert exc.value.status == 403
            assert await w.listing() == before
            assert has_network(b, net) and b.kernel.links_by_name == links
            assert b.store.get(KIND_CACHE, net.id) is not None
            await a.ctl.disconnect("ov1", ea.sandbox_id)
            await c.ctl.delete_network("ov1")
            for h in w.hosts:
                await eventually(lambda h=h: not has_network(h, net), what=f"ov1 gone from {h.name}")
                assert not [n for n in h.kernel.links_by_name if n.endswith(net.id[:12])]
                assert f"vx-{net.id[:12]}" not in h.kernel.vxlans
                assert h.store.get(KIND_CACHE, net.id) is None
            subnet = net.ipam_configs[0].subnet.replace("/", "-")
            leftovers = [k for k, _, _ in await w.listing() if net.id in k or k.endswith("/ov1") or subnet in k]
            assert leftovers == [], leftovers
            assert (await a.ctl.create_network(overlay("ov1"))).ipam_configs[0].subnet == "10.0.0.0/24"
    run(go())


# -- hosts that die, restart, fall behind --------------------------------------------------
def test_a_dead_hosts_peers_go_everywhere_and_its_addresses_come_free():
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            net = await network_everywhere(w)
            ea, eb, ec = await a.run("ov1", "c1"), await b.run("ov1", "c2"), await c.run("ov1", "c3")
            for h in (b, c):
                await eventually(lambda h=h: ea.mac in h.fdb(net.id), what=f"c1's peer on {h.name}")
            await a.stop()  # dies: nothing feeds its lease any more
            await w.pass_time(14, alive=[b, c])
            assert ea.mac in b.fdb(net.id)  # not before the TTL
            await w.pass_time(2, alive=[b, c])
            for h in (b, c):
                await eventually(lambda h=h: tables_are(h, net, [(b, eb), (c, ec)]), what=f"a's peers gone on {h.name}")
            assert await w.kv.get(f"{PREFIX}hosts/{a.advertise}") is None
            assert await w.kv.get(address_key(net, "10.0.0.2")) is None
            assert (await b.run("ov1", "c4")).ipv4 == ea.ipv4
    run(go())


def test_a_restarted_host_takes_its_lease_over_and_its_keys_never_disappear():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            ea, eb = await a.run("ov1", "c1"), await b.run("ov1", "c2")
            await eventually(lambda: ea.mac in b.fdb(net.id) and eb.mac in a.fdb(net.id), what="peers")
            lease = a.cluster.lease
            deletes = []

            async def record():
                async for batch in w.kv.watch(PREFIX, w.kv.revision + 1):
                    deletes.extend(e.kv.key for e in batch if e.kind == "delete")

            recorder = asyncio.get_running_loop().create_task(record())
            await w.pass_time(10, alive=[b])  # a restart that takes a while, within the TTL
            await a.restart()
            assert a.cluster.lease == lease
            assert ea.id in a.ctl.endpoints and has_network(a, net)
            await w.pass_time(10, alive=[a, b])  # the old lease lives on, fed by the new daemon
            await eventually(lambda: tables_are(a, net, [(b, eb)]) and tables_are(b, net, [(a, ea)]), what="peers")
            recorder.cancel()
            assert deletes == []
            assert (await a.run("ov1", "c3")).ipv4 == "10.0.0.4/24"
    run(go())


def test_a_host_restarted_after_its_lease_expired_publishes_its_endpoints_again():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            ea, eb = await a.run("ov1", "c1"), await b.run("ov1", "c2")
            await eventually(lambda: ea.mac in b.fdb(net.id), what="c1's peer on b")
            lease = a.cluster.lease
            await a.stop()
            await w.pass_time(20, alive=[b])
            await eventually(lambda: ea.mac not in b.fdb(net.id), what="c1's peer gone with a's lease")
            await a.start()
            assert a.cluster.lease != lease
            await eventually(lambda: tables_are(b, net, [(a, ea)]) and tables_are(a, net, [(b, eb)]), what="peers")
            owner = await w.kv.get(address_key(net, "10.0.0.2"))
            assert owner is not None and owner.lease == a.cluster.lease
    run(go())


def test_a_watch_behind_compaction_relists_and_converges(no_background_errors):
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            net = await network_everywhere(w)
            await c.run("ov1", "c0")  # c builds its side, so its kernel tables are checked too
            ea, eb = await a.run("ov1", "c1"), await b.run("ov1", "c2")
            await eventually(lambda: tables_are(c, net, [(a, ea), (b, eb)]), what="peers on c")
            c.kv.watch_cut = True  # c's watch connection is lost; it retries from its last revision
            await b.ctl.disconnect("ov1", eb.sandbox_id)
            ea2 = await a.run("ov1", "c3")
            await w.kv.compact(w.kv.revision)
            c.kv.watch_cut = False
            await eventually(lambda: tables_are(c, net, [(a, ea), (a, ea2)]), what="c converged")
            assert {p.endpoint_id for p in c.cluster.peers.values()} == {ea.id, ea2.id}
            assert any("compaction" in r.getMessage() for r in no_background_errors.records)
    run(go())


# -- reconcile and leftovers -----------------------------------------------------------------
def test_resync_removes_stale_entries_and_adds_missing_ones():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            ea = await a.run("ov1", "c1")
            await b.run("ov1", "c2")  # b's own endpoint: never a peer on b
            await eventually(lambda: tables_are(b, net, [(a, ea)]), what="c1's peer on b")
            fdb, neigh = b.fdb(net.id), b.neighbours(net.id)
            fdb["02:42:0a:00:00:63"] = "192.0.2.99"  # an endpoint that is gone
            neigh["10.0.0.99"] = "02:42:0a:00:00:63"
            del neigh["10.0.0.2"]  # one that is missing
            fdb[ea.mac] = "192.0.2.77"  # and one whose host is wrong
            await b.cluster.resync_all()
            assert tables_are(b, net, [(a, ea)])
            del b.kernel.fdb[f"vx-{net.id[:12]}"]  # a device made again, tables empty
            await b.cluster.resync_all()
            assert tables_are(b, net, [(a, ea)])
    run(go())


def test_an_endpoint_the_host_no_longer_has_is_withdrawn_at_its_next_resync(no_background_errors):
    async def go():
        async with cluster_world(2, resync=0.05) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            ea, eb = await a.run("ov1", "c1"), await b.run("ov1", "c2")
            await eventually(lambda: ea.mac in b.fdb(net.id), what="c1's peer on b")
            a.kv.down = True
            await a.ctl.disconnect("ov1", ea.sandbox_id)  # works locally; the withdraw fails and is logged
            assert ea.id not in a.ctl.endpoints
            key = f"{PREFIX}endpoints/{net.id}/{ea.id}"
            assert await w.kv.get(key) is not None and ea.mac in b.fdb(net.id)
            a.kv.down = False
            await eventually(lambda: w.kv._data.get(key) is None, what="a's leftover withdrawn")
            # its address goes in the same sweep, after the endpoint (peers stop routing it first)
            await eventually(lambda: w.kv._data.get(address_key(net, "10.0.0.2")) is None, what="its address freed")
            await eventually(lambda: tables_are(b, net, []) and tables_are(a, net, [(b, eb)]), what="peers")
            assert (await b.run("ov1", "c3")).ipv4 == ea.ipv4
    run(go())


# -- the store unreachable ---------------------------------------------------------------------
def snapshot(host):
    return (set(host.ctl.networks), set(host.ctl.endpoints), copy.deepcopy(host.store.data),
            dict(host.kernel.links_by_name), copy.deepcopy(host.kernel.ifaces))


def test_an_unreachable_store_is_a_503_naming_it_and_nothing_local_changes():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            sid = await a.sandbox("c1")
            before, listing = snapshot(a), await w.listing()
            a.kv.down = True
            with pytest.raises(ShoalError, match=f"cluster store {a.kv.url}") as exc:
                await a.ctl.create_network(overlay("ov2"))
            assert exc.value.status == 503
            with pytest.raises(ShoalError, match=f"cluster store {a.kv.url}") as exc:
                await a.ctl.connect("ov1", sid, name="c1")
            assert exc.value.status == 503
            assert snapshot(a) == before and await w.listing() == listing
            a.kv.down = False
            ov2 = await a.ctl.create_network(overlay("ov2"))
            ep = await a.ctl.connect("ov1", sid, name="c1")
            assert ep.ipv4 == "10.0.0.2/24"
            await eventually(lambda: has_network(b, ov2) and tables_are(b, net, [(a, ep)]), what="b sees both")
    run(go())


# -- bad input at the edge ---------------------------------------------------------------------
def driver(**kw) -> OverlayDriver:
    return OverlayDriver(FakeKernel(), **{"vtep": "192.0.2.1", "underlay_mtu": 1500, **kw})


def test_overlay_refuses_unknown_options():
    with pytest.raises(InvalidParameter, match="unknown overlay driver options: com.docker.network.bridge.name"):
        driver().validate(overlay("x", options={"com.docker.network.bridge.name": "br0"}))
    driver().validate(overlay("x", options={OPT_MTU: "1400", "com.docker.network.bridge.enable_icc": "false"}))


@pytest.mark.parametrize("mtu, v6, ok", [("118", False, True), ("117", False, False), ("1330", True, True),
                                         ("1329", True, False), ("0", False, False)])
def test_overlay_refuses_a_container_mtu_below_the_minimum(mtu, v6, ok):
    spec = overlay("x", options={OPT_MTU: mtu}, enable_ipv6=v6)
    if ok:
        driver().validate(spec)
    else:
        with pytest.raises(InvalidParameter, match="below the .*minimum|expected an integer"):
            driver().validate(spec)


def test_overlay_mtu_check_uses_the_underlay_when_it_is_lower():
    """The containers get min(option, underlay) - 50, so that is what must reach the floor."""
    small = driver(underlay_mtu=1300)
    with pytest.raises(InvalidParameter, match="1250, below the IPv6 minimum 1280"):
        small.validate(overlay("x", enable_ipv6=True))
    with pytest.raises(InvalidParameter, match="1250, below the IPv6 minimum 1280"):
        small.validate(overlay("x", enable_ipv6=True, options={OPT_MTU: "9000"}))
    small.validate(overlay("x", options={OPT_MTU: "9000"}))


def test_overlay_without_a_cluster_store_says_how_to_start_shoald():
    with pytest.raises(Forbidden, match="start shoald with --cluster-store etcd://"):
        driver(vtep="").validate(overlay("x"))


# -- claims left behind by a store that failed half-way ----------------------------------------
def test_an_address_left_by_a_withdraw_cut_short_is_freed_at_the_next_resync(no_background_errors):
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            ea = await a.run("ov1", "c1")
            a.kv.fail_after(1)  # the endpoint key goes, then the store does
            await a.ctl.disconnect("ov1", ea.sandbox_id)
            a.kv.calls_left, a.kv.down = None, False
            assert await w.kv.get(f"{PREFIX}endpoints/{net.id}/{ea.id}") is None
            await a.cluster.resync_all()
            assert await w.kv.get(address_key(net, "10.0.0.2")) is None
            assert (await b.run("ov1", "c2")).ipv4 == ea.ipv4
    run(go())


def test_an_address_left_by_a_connect_cut_short_is_freed_at_the_next_resync(no_background_errors):
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            sid = await a.sandbox("c1")
            a.kv.fail_after(2)  # the address is claimed (list, txn), then the store goes
            with pytest.raises(ShoalError) as exc:
                await a.ctl.connect("ov1", sid, name="c1")
            assert exc.value.status == 503 and not a.ctl.endpoints
            no_background_errors.clear()  # the rollback's release failed too, and said so
            a.kv.calls_left, a.kv.down = None, False
            await a.cluster.resync_all()
            assert await w.kv.get(address_key(net, "10.0.0.2")) is None
            assert (await b.run("ov1", "c2")).ipv4 == "10.0.0.2/24"
    run(go())


def test_a_host_back_after_its_lease_expired_does_not_take_a_reused_address(no_background_errors):
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            net = await network_everywhere(w)
            ea = await a.run("ov1", "c1")
            await a.stop()
            await w.pass_time(20, alive=[b, c])
            eb = await b.run("ov1", "c2")  # a's address, free since its lease went
            assert eb.ipv4 == ea.ipv4
            await a.start()  # a new lease; its endpoint is published again, but not over b's address
            held = await w.kv.get(address_key(net, "10.0.0.2"))
            assert held.value == eb.id.encode()
            assert await w.kv.get(f"{PREFIX}endpoints/{net.id}/{ea.id}") is None
            await eventually(lambda: tables_are(c, net, [(b, eb)]), what="c keeps b's endpoint")
            assert any("10.0.0.2" in r.getMessage() for r in no_background_errors.records)
            no_background_errors.clear()
    run(go())


def test_a_pool_left_by_a_create_cut_short_is_freed_by_its_host_at_the_next_resync(no_background_errors):
    """The subnet is claimed through IPAM before the name and VNI: a store lost in between
    leaves a pool without a network, which only the host that claimed it may free (no
    create of its own is half-way while it holds the lock; another host's might be)."""
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            a.kv.fail_after(4)  # the pool (list, txn) and the gateway (list, txn), then the store goes
            with pytest.raises(ShoalError) as exc:
                await a.ctl.create_network(overlay("ov1"))
            assert exc.value.status == 503
            no_background_errors.clear()  # the rollback's release failed too, and said so
            a.kv.calls_left, a.kv.down = None, False
            pools, _ = await w.kv.list(f"{PREFIX}ipam/GlobalDefault/pools/")
            assert [kv.key.rsplit("/", 1)[1] for kv in pools] == ["10.0.0.0-24"]
            await b.cluster.resync_all()  # not b's: left alone
            assert len((await w.kv.list(f"{PREFIX}ipam/GlobalDefault/pools/"))[0]) == 1
            await a.cluster.resync_all()
            left, _ = await w.kv.list(f"{PREFIX}ipam/GlobalDefault/")
            assert [kv.key.rsplit("/", 1)[1] for kv in left] == ["pools.generation"]  # the gateway's went too
            assert (await b.ctl.create_network(overlay("ov1"))).ipam_configs[0].subnet == "10.0.0.0/24"
    run(go())


def test_a_pool_left_by_a_delete_cut_short_is_freed_at_the_next_resync():
    async def go():
        async with cluster_world(2) as w:
            a, _ = w.hosts
            net = await network_everywhere(w)
            a.kv.fail_after(3)  # the record and its claims go (get, list, txn), then the store does
            await a.ctl.delete_network("ov1")  # gone for the cluster; the pool's release is logged
            a.kv.calls_left, a.kv.down = None, False
            assert await w.kv.get(f"{PREFIX}networks/{net.id}") is None
            assert len((await w.kv.list(f"{PREFIX}ipam/GlobalDefault/pools/"))[0]) == 1
            await a.cluster.resync_all()
            assert (await w.kv.list(f"{PREFIX}ipam/GlobalDefault/pools/"))[0] == []
            assert (await w.kv.list(address_key(net, "")))[0] == []
    run(go())


@pytest.mark.parametrize("seed", range(6))
def test_a_connect_racing_a_delete_on_another_host_never_leaves_an_orphan(seed):
    async def go():
        async with cluster_world(2, seed=seed) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            sid = await a.sandbox("c1")
            joined, deleted = await asyncio.gather(a.ctl.connect("ov1", sid, name="c1"), b.ctl.delete_network("ov1"),
                                                   return_exceptions=True)
            assert isinstance(joined, BaseException) != isinstance(deleted, BaseException), (joined, deleted)
            if isinstance(deleted, BaseException):
                assert deleted.status == 403
                assert await w.kv.get(f"{PREFIX}endpoints/{net.id}/{joined.id}") is not None
            else:
                assert joined.status in (404, 503), joined
                await eventually(lambda: not has_network(a, net), what="ov1 gone from a")
                subnet = net.ipam_configs[0].subnet.replace("/", "-")
                assert not a.ctl.endpoints and [k for k, _, _ in await w.listing() if net.id in k or subnet in k] == []
    run(go())


def test_a_network_removed_while_a_host_was_down_goes_at_its_restart():
    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await network_everywhere(w)
            await b.stop()
            await a.ctl.delete_network("ov1")
            await b.start()  # restore builds it from the cache; the store says it is gone
            assert not has_network(b, net) and b.store.get(KIND_CACHE, net.id) is None
            assert not [n for n in b.kernel.links_by_name if n.endswith(net.id[:12])]
    run(go())


def test_an_unreachable_store_is_not_taken_for_a_full_subnet():
    """With two subnets, a store error on the first must not send the claim to the second
    (each try waits out the store's timeout, and a glitch would skip free addresses)."""
    async def go():
        async with cluster_world(1) as w:
            (a,) = w.hosts
            configs = (IPAMConfig("10.5.0.0/24"), IPAMConfig("10.6.0.0/24"))
            await a.ctl.create_network(overlay("two", ipam_configs=configs))
            sid = await a.sandbox("c1")
            a.kv.fail_after(0)
            calls = []
            inner = a.kv._enter

            async def counting():
                calls.append(1)
                await inner()
            a.kv._enter = counting
            with pytest.raises(ShoalError) as exc:
                await a.ctl.connect("two", sid, name="c1")
            assert exc.value.status == 503 and len(calls) == 1
    run(go())



def test_a_given_vxlan_id_is_used_and_unique():
    """Docker's com.docker.network.driver.overlay.vxlanid_list: honoured, unique cluster-wide."""
    from shoal.errors import Conflict

    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            net = await a.ctl.create_network(overlay("given", options={OPT_VNI: "4242"}))
            assert net.options[OPT_VNI] == "4242"
            await a.run("given", "c1")
            assert a.kernel.vxlans[f"vx-{net.id[:12]}"]["vni"] == 4242
            with pytest.raises(Conflict, match="4242"):
                await b.ctl.create_network(overlay("again", options={OPT_VNI: "4242"}))
            with pytest.raises(InvalidParameter):
                await b.ctl.create_network(overlay("bad", options={OPT_VNI: "x"}))
    run(go())


def test_global_drivers_hear_hosts_join_and_leave():
    """libnetwork's DiscoverNew / DiscoverDelete, from the hosts' lease-bound keys."""
    async def go():
        async with cluster_world(3) as w:
            a, b, c = w.hosts
            heard = []
            driver = b.ctl.drivers["overlay"]

            async def new(host):
                heard.append(("new", host["advertise"]))

            async def gone(host):
                heard.append(("delete", host["advertise"]))

            driver.discover_new, driver.discover_delete = new, gone
            await b.cluster.resync_all()  # nothing new: b already knew a and c
            assert heard == []
            await c.stop()
            await w.pass_time(16, alive=[a, b])
            await eventually(lambda: ("delete", c.advertise) in heard, what="b hears that c left")
            await c.restart()
            await eventually(lambda: ("new", c.advertise) in heard, what="b hears that c joined again")
            assert all(adv != b.advertise for _, adv in heard)  # never itself
    run(go())


def test_an_ipv6_overlay_without_a_subnet_is_refused_with_what_to_give():
    """The global space has no IPv6 default pool (Docker's global default is 10.0.0.0/8
    only): the network must not come up without the family it asked for, and the IPv4
    pool claimed before the refusal goes back."""
    async def go():
        async with cluster_world(1) as w:
            (a,) = w.hosts
            with pytest.raises(Forbidden, match="needs an explicit --subnet") as exc:
                await a.ctl.create_network(overlay("v6", enable_ipv6=True))
            assert exc.value.status == 403
            assert [k for k, _, _ in await w.listing() if "/pools/" in k or "networks/" in k] == []
            net = await a.ctl.create_network(overlay("v6", enable_ipv6=True, ipam_configs=(IPAMConfig("fd00:7::/64"),)))
            assert [c.subnet for c in net.ipam_configs] == ["10.0.0.0/24", "fd00:7::/64"]
            ep = await a.run("v6", "c1")
            assert (ep.ipv4, ep.ipv6) == ("10.0.0.2/24", "fd00:7::2/64")
    run(go())


def test_networks_of_the_older_layout_are_reported_not_read():
    """v1 kept subnets and addresses outside the IPAM's space: reading its networks would
    hand out their subnets again, so they are left alone and /info says what to do."""
    from shoal.api.system import _cluster_warnings

    async def go():
        world = ClusterWorld(1)
        await world.kv.put("/shoal/v1/networks/" + "a" * 64, b'{"name": "old"}')
        await world.start()
        try:
            host = world.hosts[0]
            assert host.cluster.older_data == ["/shoal/v1/"]
            assert not any(n.name == "old" for n in host.ctl.networks.values())
            (warning,) = _cluster_warnings(host.ctl)
            assert "/shoal/v1/" in warning and "etcdctl del --prefix" in warning
        finally:
            await world.stop()
        fresh = ClusterWorld(1)
        await fresh.start()
        try:
            assert fresh.hosts[0].cluster.older_data == [] and _cluster_warnings(fresh.hosts[0].ctl) == []
        finally:
            await fresh.stop()

    run(go())
