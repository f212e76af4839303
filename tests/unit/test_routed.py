"""Routed networks in the cluster controller over fakes (tests/unit/clusterworld.py):
create and its bad input, addresses from each host's blocks, the firewall's view, what
BGP is told, blocks in inspect, and blocks surviving a restart."""

import asyncio
import ipaddress

import pytest

from shoal.controller.firewalling import state_of
from shoal.controller.routing import Routing
from shoal.errors import Forbidden, InvalidParameter
from shoal.firewall.elements import elements
from shoal.model import IPAMConfig, NetworkSpec

from .clusterworld import ClusterWorld, eventually


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 15.0))


def routed(name="r1", subnet="10.64.0.0/16", **options):
    return NetworkSpec(name=name, driver="routed", ipam_configs=(IPAMConfig(subnet=subnet),) if subnet else (),
                       options={k.replace("_", "-"): v for k, v in options.items()})


class FakeBird:
    def __init__(self):
        self.configs = []

    async def apply(self, cfg):
        self.configs.append(cfg)

    async def stop(self, *, graceful=True):
        self.configs.append(None)


def test_bad_input_is_a_400_and_writes_nothing():
    async def go():
        world = await ClusterWorld(1).start()
        try:
            (a,) = world.hosts
            before = await world.listing()
            for spec, words in [
                (routed(block_size="19"), "from 20 to 30"),
                (routed(block_size="31"), "from 20 to 30"),
                (routed(subnet="10.64.0.0/27"), "smaller than one address block"),
                (routed(nat_outgoing="maybe"), "true or false"),
                (routed(colour="blue"), "unknown routed driver options"),
                (NetworkSpec(name="r6", driver="routed", enable_ipv6=True), "IPv6"),
                (NetworkSpec(name="rg", driver="routed", ipam_configs=(IPAMConfig(subnet="10.9.0.0/16",
                                                                                  gateway="10.9.0.1"),)), "gateway"),
            ]:
                with pytest.raises(InvalidParameter, match=words):
                    await a.ctl.create_network(spec)
            assert await world.listing() == before
            a.routed.clustered = False
            with pytest.raises(Forbidden, match="cluster store"):
                await a.ctl.create_network(routed())
            assert await world.listing() == before
        finally:
            await world.stop()

    run(go())


def test_endpoints_get_32s_from_their_hosts_blocks_and_the_firewall_isolates_by_pool():
    async def go():
        world = await ClusterWorld(3).start()
        try:
            a, b, c = world.hosts
            net = await a.ctl.create_network(routed(block_size="28"))
            assert net.ipam_configs[0].gateway == ""  # no gateway address: 169.254.1.1
            for h in (b, c):
                await eventually(lambda h=h: net.id in h.ctl.networks, what="network mirrored")
            eps = {}
            for h in world.hosts:
                for i in range(3):
                    eps[(h.name, i)] = await h.run("r1", f"{h.name}{i}")
            ips = [ep.ipv4.split("/")[0] for ep in eps.values()]
            assert len(set(ips)) == 9
            blocks = await a.ctl.blocks_of(net)
            held = blocks["10.64.0.0/16"]
            assert set(held) == {h.advertise for h in world.hosts}
            for (name, _), ep in eps.items():
                host = next(h for h in world.hosts if h.name == name)
                ip = ipaddress.ip_interface(ep.ipv4).ip
                assert any(ip in ipaddress.ip_network(bl) for bl in held[host.advertise])
                assert ep.host_ifname.startswith(f"rt{net.id[:6]}")
                assert ep.ipv4.endswith("/32") and ep.gateways == ("169.254.1.1",)
                assert [a.split("/")[0] for a in host.kernel.routed_routes[ep.host_ifname]] == [str(ip)]
            fw = elements(state_of(a.ctl))
            assert fw[("inet", "routed_pools4")] == {"10.64.0.0/16": None}
            assert fw[("inet", "routed_masq4")] == {"10.64.0.0/16": None}
            assert len(fw[("inet", "routed_members")]) == 3  # a's own endpoints only
            assert not fw[("inet", "hairpin4")]
        finally:
            await world.stop()

    run(go())


def test_bgp_hears_of_hosts_pools_and_this_hosts_blocks():
    async def go():
        world = await ClusterWorld(2).start()
        try:
            a, b = world.hosts
            bird = FakeBird()
            routing = Routing(bird, router_id=a.ip)
            a.cluster.attach_routing(routing)
            await a.ctl.create_network(routed(block_size="26", nat_outgoing="false"))
            ep = await a.run("r1", "x")
            await eventually(lambda: bird.configs and bird.configs[-1] and bird.configs[-1].blocks, what="block told")
            cfg = bird.configs[-1]
            assert cfg.peers == (b.ip,) and cfg.pools == ("10.64.0.0/16",)
            assert ipaddress.ip_interface(ep.ipv4).ip in ipaddress.ip_network(cfg.blocks[0])
            await a.ctl.disconnect("r1", ep.sandbox_id)
            await eventually(lambda: bird.configs[-1] is not None and not bird.configs[-1].blocks,
                             what="empty block released and withdrawn")
            await b.stop()
            await world.pass_time(20, alive=[a])
            await a.cluster.resync_all()
            await eventually(lambda: bird.configs[-1].peers == (), what="dead host dropped")
            await a.ctl.delete_network("r1")
            await eventually(lambda: bird.configs[-1] is None, what="BIRD stopped with the last routed network")
        finally:
            await world.stop()

    run(go())


def test_a_restarted_host_keeps_its_blocks_and_addresses():
    async def go():
        world = await ClusterWorld(2).start()
        try:
            a, b = world.hosts
            net = await a.ctl.create_network(routed())
            await eventually(lambda: net.id in b.ctl.networks, what="mirrored")
            ep = await b.run("r1", "y")
            before = (await a.ctl.blocks_of(net))["10.64.0.0/16"][b.advertise]
            await b.restart()
            after = (await a.ctl.blocks_of(net))["10.64.0.0/16"][b.advertise]
            assert after == before
            assert b.ctl.endpoints[ep.id].ipv4 == ep.ipv4
        finally:
            await world.stop()

    run(go())


def test_bird_stops_when_the_last_routed_network_is_removed_here():
    async def go():
        world = await ClusterWorld(1).start()
        try:
            (a,) = world.hosts
            bird = FakeBird()
            a.cluster.attach_routing(Routing(bird, router_id=a.ip))
            await a.ctl.create_network(routed())
            await eventually(lambda: bird.configs and bird.configs[-1] is not None, what="BIRD configured")
            await asyncio.sleep(0.05)  # the create's own watch event is in: the record goes before the delete's
            await a.ctl.delete_network("r1")
            await eventually(lambda: bird.configs[-1] is None, what="BIRD stopped")
            assert not a.cluster.ipam.blocks.sizes
        finally:
            await world.stop()

    run(go())
