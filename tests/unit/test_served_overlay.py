"""shoal-overlay served to two dockerds in one cluster (over fakes: tests/unit/clusterworld.py).

dockerd 20.10 with --cluster-store keeps a global-scope plugin's network in its own
cluster store and sends CreateNetwork only on the host where it is created; another host's
dockerd sends CreateEndpoint and Join for it straight away (libnetwork's addNetwork is
called from NewNetwork only). This drives both hosts' served plugins the same way
(tests/e2e/test_docker_overlay.py does it with real dockerds).
"""

from __future__ import annotations

import asyncio
import json

from shoal.api.http import Request
from shoal.api.pluginserver import plugin_apps
from shoal.controller.served import ServedPlugins
from shoal.ipam import default_pools

from .clusterworld import cluster_world, eventually
from .test_served_plugins import DRIVERS, Rules

NID = "c3" * 32
EID_A, EID_B = "a1" * 32, "b2" * 32
V4 = [{"AddressSpace": "GlobalDefault", "Pool": "10.130.0.0/24", "Gateway": "10.130.0.1/24", "AuxAddresses": {}}]


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 8.0))


class Served:
    """One host's plugin sockets over its Controller."""

    def __init__(self, host) -> None:  # a clusterworld.Host
        self.host = host
        self.rules = Rules()
        self.served = ServedPlugins(host.ctl, DRIVERS, default_pools(), self.rules)
        self.apps = plugin_apps(self.served)

    async def call(self, method: str, body: dict | None = None) -> dict:
        req = Request("POST", f"/{method}", {}, {}, json.dumps(body or {}).encode())
        resp = await self.apps["shoal-overlay"](req)
        assert resp.status == 200
        return json.loads(resp.body)

    async def ok(self, method: str, body: dict | None = None) -> dict:
        out = await self.call(method, body)
        assert not out.get("Err"), out
        return out

    async def attach(self, eid: str, address: str) -> dict:
        await self.ok("NetworkDriver.CreateEndpoint", {"NetworkID": NID, "EndpointID": eid,
                                                       "Interface": {"Address": address}})
        return await self.ok("NetworkDriver.Join", {"NetworkID": NID, "EndpointID": eid})

    async def detach(self, eid: str) -> None:
        await self.ok("NetworkDriver.Leave", {"NetworkID": NID, "EndpointID": eid})
        await self.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NID, "EndpointID": eid})


def test_one_network_for_both_dockerds_and_the_rules_follow_each_hosts_bridge():
    async def go():
        async with cluster_world(2) as w:
            a, b = (Served(h) for h in w.hosts)
            caps = await a.ok("NetworkDriver.GetCapabilities")
            assert caps == {"Scope": "global", "ConnectivityScope": "global"}
            await a.ok("NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": V4, "IPv6Data": []})
            net = a.host.ctl.networks[NID]
            assert net.scope == "global" and net.driver == "overlay"
            bridge = f"ov-{NID[:12]}"
            assert not a.rules.allowed  # no bridge before the first endpoint here
            b.host.ctl.networks.pop(NID, None)  # dockerd may be quicker than shoal's watch
            join = await b.attach(EID_B, "10.130.0.3/24")
            assert join["Gateway"] == "10.130.0.1" and b.host.ctl.networks[NID].to_dict() == net.to_dict()
            assert b.rules.allowed == {(bridge, NID[:12])} and bridge in b.host.kernel.links_by_name
            await a.attach(EID_A, "10.130.0.2/24")
            assert a.rules.allowed == {(bridge, NID[:12])}
            await eventually(lambda: (NID, EID_B) in a.host.cluster.dns_pairs(), what="b's endpoint is a's peer")
            await eventually(lambda: b.host.fdb(NID), what="a's endpoint in b's FDB")

            out = await a.call("NetworkDriver.DeleteNetwork", {"NetworkID": NID})
            assert "active endpoints" in out["Err"]  # b's endpoint (dockerd refuses this first)
            await b.detach(EID_B)
            await a.detach(EID_A)
            await a.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NID})
            for h in (a, b):
                await eventually(lambda h=h: NID not in h.host.ctl.networks, what=f"gone on {h.host.name}")
                assert not h.rules.allowed and bridge not in h.host.kernel.links_by_name
            assert not [k for k, _, _ in await w.listing() if NID in k]

    run(go())


def test_a_network_no_host_made_is_not_found_and_rm_from_the_other_host_works():
    async def go():
        async with cluster_world(2) as w:
            a, b = (Served(h) for h in w.hosts)
            out = await b.call("NetworkDriver.CreateEndpoint", {"NetworkID": NID, "EndpointID": EID_B,
                                                                "Interface": {"Address": "10.130.0.3/24"}})
            assert "not found" in out["Err"]
            await a.ok("NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": V4, "IPv6Data": []})
            await b.attach(EID_B, "10.130.0.3/24")
            await b.detach(EID_B)
            await eventually(lambda: NID in b.host.ctl.networks, what="mirrored on b")
            await b.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NID})  # `docker network rm` on host 2
            for h in (a, b):
                await eventually(lambda h=h: NID not in h.host.ctl.networks, what=f"gone on {h.host.name}")
                assert not h.rules.allowed
            assert not [k for k, _, _ in await w.listing() if NID in k]

    run(go())


def test_rm_on_a_host_shoals_watch_has_not_told_yet_removes_the_network():
    async def go():
        async with cluster_world(2) as w:
            a, b = (Served(h) for h in w.hosts)
            await a.ok("NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": V4, "IPv6Data": []})
            b.host.ctl.networks.pop(NID, None)
            await b.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NID})
            await b.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NID})  # idempotent
            for h in (a, b):
                await eventually(lambda h=h: NID not in h.host.ctl.networks, what=f"gone on {h.host.name}")
            assert not [k for k, _, _ in await w.listing() if NID in k]

    run(go())


def test_the_names_of_other_hosts_endpoints_are_wanted_by_the_checker_and_the_repair():
    """A peer's DNS name stands for no endpoint or container of this host: neither a
    finding nor something the repair (or the self-heal's orphan sweep) removes."""
    from types import SimpleNamespace

    from shoal.controller import invariants, repair
    from shoal.dns import DnsEntry, DnsRecords
    from shoal.model import NetworkSpec

    async def go():
        async with cluster_world(2) as w:
            a, b = w.hosts
            a.cluster.records = names = DnsRecords()
            net = await b.ctl.create_network(NetworkSpec(name="ov", driver="overlay"))
            ep = await b.run("ov", "far")
            await eventually(lambda: (net.id, ep.sandbox_id) in names.pairs(), what="b's name on a")
            box = SimpleNamespace(ctl=a.ctl, records={}, dns_records=names)
            assert invariants._dns(a.ctl, box) == []
            assert await repair._dns(box) == []
            assert a.cluster.dns_pairs() == {(net.id, ep.sandbox_id)} == names.pairs()
            names.add(net.id, "ov", DnsEntry(sandbox_id="gone" * 16, name="x"))  # a stale one still is
            stale = f"has a name on {net.id[:12]} without an endpoint there"
            assert [f.problem for f in invariants._dns(a.ctl, box)] == [stale]

    run(go())
