"""shoal's drivers and IPAM served to dockerd (libnetwork's remote protocols), over fakes.

The handlers are driven the way dockerd 20.10 drives them (network create with dockerd's
IPAM, endpoint create, join, leave, delete), through the same Apps the sockets serve.
"""

import asyncio
import json

from shoal.api.http import Request
from shoal.api.pluginserver import plugin_apps
from shoal.controller import Controller
from shoal.controller.restore import restore
from shoal.controller.served import GIVEN, KIND, LABEL_PLUGIN, SERVED_LOCAL, ServedPlugins
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.ipam import DefaultIpam, default_pools, ula_pool
from shoal.kernel import FakeSandboxKernel
from shoal.store import MemoryStore

NID = "a1" * 32
EID = "b2" * 32
V4 = [{"AddressSpace": "LocalDefault", "Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24", "AuxAddresses": {}}]
DRIVERS = {"shoal-bridge": "bridge", "shoal-overlay": "overlay"}


class Rules:
    def __init__(self, fail: bool = False):
        self.allowed: set[tuple[str, str]] = set()
        self.fail = fail

    async def allow(self, bridge, mark):
        if self.fail:
            raise RuntimeError("iptables refused")
        self.allowed.add((bridge, mark))
        return ["iptables"]

    async def revoke(self, bridge, mark):
        self.allowed.discard((bridge, mark))

    async def present(self, bridge, mark):
        return (bridge, mark) in self.allowed


class Host:
    def __init__(self, store=None, kernel=None, rules=None):
        self.store = store or MemoryStore()
        self.kernel = kernel or FakeSandboxKernel()
        drivers = {"bridge": BridgeDriver(self.kernel), "host": HostDriver(), "null": NullDriver()}
        self.ctl = Controller(self.store, self.kernel, DefaultIpam(default_pools(), [ula_pool("t")]), drivers,
                              "e" * 64, exec_root="/nonexistent/sht-served")
        self.rules = rules or Rules()
        self.served = ServedPlugins(self.ctl, DRIVERS, default_pools(), self.rules)
        self.apps = plugin_apps(self.served)

    async def start(self):
        await restore(self.ctl)
        await self.served.restore()
        return self

    async def call(self, plugin, method, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        req = Request("POST", f"/{method}", {}, {"accept": "application/vnd.docker.plugins.v1.2+json"}, data)
        resp = await self.apps[plugin](req)
        return resp.status, json.loads(resp.body)

    async def ok(self, plugin, method, body=None):
        status, out = await self.call(plugin, method, body)
        assert status == 200 and not out.get("Err") and not out.get("Error"), out
        return out


def test_a_container_lifecycle_as_dockerd_drives_it():
    async def go():
        h = await Host().start()
        assert await h.ok("shoal-bridge", "Plugin.Activate") == {"Implements": ["NetworkDriver"]}
        assert (await h.ok("shoal-bridge", "NetworkDriver.GetCapabilities"))["Scope"] == "local"
        assert (await h.ok("shoal-overlay", "NetworkDriver.GetCapabilities"))["ConnectivityScope"] == "global"
        body = {"NetworkID": NID, "Options": {"com.docker.network.generic": {"com.docker.network.driver.mtu": "1400"}},
                "IPv4Data": V4, "IPv6Data": []}
        await h.ok("shoal-bridge", "NetworkDriver.CreateNetwork", body)
        await h.ok("shoal-bridge", "NetworkDriver.CreateNetwork", body)  # a retry: no error, one network
        net = h.ctl.networks[NID]
        assert net.driver == "bridge" and net.ipam_driver == GIVEN and net.labels[LABEL_PLUGIN] == "shoal-bridge"
        assert net.v4_configs[0].gateway == "10.77.0.1" and net.options["com.docker.network.driver.mtu"] == "1400"
        bridge = f"br-{NID[:12]}"
        assert h.kernel.links_by_name[bridge].mtu == 1400 and h.rules.allowed == {(bridge, NID[:12])}

        out = await h.ok("shoal-bridge", "NetworkDriver.CreateEndpoint",
                         {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.77.0.2/24"}})
        assert out == {"Interface": {"MacAddress": "02:42:0a:4d:00:02"}}
        assert not h.ctl.endpoints  # nothing plumbed before Join
        join = await h.ok("shoal-bridge", "NetworkDriver.Join",
                          {"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/var/run/docker/netns/x", "Options": {}})
        src = join["InterfaceName"]["SrcName"]
        assert join["InterfaceName"]["DstPrefix"] == "eth" and join["Gateway"] == "10.77.0.1"
        assert src in h.kernel.ifaces[""], "the container end waits in the host's namespace"
        assert h.kernel.ifaces[""][src]["mac"] == "02:42:0a:4d:00:02"
        ep = next(iter(h.ctl.endpoints.values()))
        assert ep.ipv4 == "10.77.0.2/24" and h.kernel.links_by_name[ep.host_ifname].master == \
            h.kernel.links_by_name[bridge].index
        assert await h.ok("shoal-bridge", "NetworkDriver.Join", {"NetworkID": NID, "EndpointID": EID}) == join

        for _ in range(2):  # Leave and DeleteEndpoint are idempotent
            await h.ok("shoal-bridge", "NetworkDriver.Leave", {"NetworkID": NID, "EndpointID": EID})
            await h.ok("shoal-bridge", "NetworkDriver.DeleteEndpoint", {"NetworkID": NID, "EndpointID": EID})
        assert not h.ctl.endpoints and not h.ctl.sandboxes and h.store.get(KIND, EID) is None
        assert ep.host_ifname not in h.kernel.links_by_name and src not in h.kernel.ifaces.get("", {})
        for _ in range(2):
            await h.ok("shoal-bridge", "NetworkDriver.DeleteNetwork", {"NetworkID": NID})
        assert NID not in h.ctl.networks and bridge not in h.kernel.links_by_name and not h.rules.allowed

    asyncio.run(go())


def test_errors_travel_in_err_and_error_fields():
    async def go():
        h = await Host().start()
        status, out = await h.call("shoal-bridge", "NetworkDriver.Join", {"NetworkID": NID, "EndpointID": EID})
        assert status == 200 and "not found" in out["Err"]
        status, out = await h.call("shoal-bridge", "NetworkDriver.CreateNetwork", raw=b"{nope")
        assert status == 400 and "invalid JSON" in out["Err"]
        status, out = await h.call("shoal-ipam", "IpamDriver.RequestPool", {"AddressSpace": "LocalDefault"})
        assert status == 200 and "ShoalLocal" in out["Error"]
        status, out = await h.call("shoal-bridge", "NetworkDriver.CreateNetwork", {"NetworkID": NID})
        assert "no IPv4Data" in out["Err"] and NID not in h.ctl.networks
        status, _ = await h.call("shoal-bridge", "NetworkDriver.NoSuchVerb", {})
        assert status == 404

    asyncio.run(go())


def test_failures_roll_back():
    async def go():
        h = await Host(rules=Rules(fail=True)).start()
        _, out = await h.call("shoal-bridge", "NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": V4})
        assert out["Err"] and NID not in h.ctl.networks and f"br-{NID[:12]}" not in h.kernel.links_by_name
        h.rules.fail = False
        await h.ok("shoal-bridge", "NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": V4})
        await h.ok("shoal-bridge", "NetworkDriver.CreateEndpoint",
                   {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.77.0.2/24"}})
        h.kernel.fail_on = "add_veth"
        _, out = await h.call("shoal-bridge", "NetworkDriver.Join", {"NetworkID": NID, "EndpointID": EID})
        assert out["Err"] and not h.ctl.endpoints and not h.ctl.sandboxes
        assert (await h.ok("shoal-bridge", "NetworkDriver.Join", {"NetworkID": NID, "EndpointID": EID}))["Gateway"]
        _, out = await h.call("shoal-bridge", "NetworkDriver.CreateEndpoint",
                              {"NetworkID": NID, "EndpointID": "c" * 64, "Interface": {"Address": "10.9.0.2/24"}})
        assert "in no subnet" in out["Err"]

    asyncio.run(go())


def test_restart_keeps_networks_endpoints_and_served_ipam():
    async def go():
        h = await Host().start()
        spaces = await h.ok("shoal-ipam", "IpamDriver.GetDefaultAddressSpaces")
        assert spaces["LocalDefaultAddressSpace"] == SERVED_LOCAL
        pool = await h.ok("shoal-ipam", "IpamDriver.RequestPool", {"AddressSpace": SERVED_LOCAL, "Pool": ""})
        taken = {c.subnet for n in h.ctl.networks.values() for c in n.ipam_configs}
        assert pool["Pool"] not in taken, "skips shoal's own networks (the default bridge's 172.17.0.0/16)"
        gw = await h.ok("shoal-ipam", "IpamDriver.RequestAddress",
                        {"PoolID": pool["PoolID"], "Options": {"RequestAddressType": "com.docker.network.gateway"}})
        addr = await h.ok("shoal-ipam", "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})
        assert gw["Address"] != addr["Address"]
        v4 = [{"AddressSpace": SERVED_LOCAL, "Pool": pool["Pool"], "Gateway": gw["Address"]}]
        await h.ok("shoal-bridge", "NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": v4})
        await h.ok("shoal-bridge", "NetworkDriver.CreateEndpoint",
                   {"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": addr["Address"]}})
        await h.ok("shoal-bridge", "NetworkDriver.Join", {"NetworkID": NID, "EndpointID": EID})
        _, out = await h.call("shoal-ipam", "IpamDriver.RequestPool", {"AddressSpace": SERVED_LOCAL,
                                                                       "Pool": "172.17.0.0/24"})
        assert "overlaps" in out["Error"]

        again = await Host(store=h.store, kernel=h.kernel, rules=h.rules).start()
        assert NID in again.ctl.networks and len(again.ctl.endpoints) == 1
        assert again.ctl.sandboxes[EID].handoff
        nxt = await again.ok("shoal-ipam", "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})
        assert nxt["Address"] not in (gw["Address"], addr["Address"]), "replayed from the store"
        await again.ok("shoal-bridge", "NetworkDriver.Leave", {"NetworkID": NID, "EndpointID": EID})
        await again.ok("shoal-bridge", "NetworkDriver.DeleteEndpoint", {"NetworkID": NID, "EndpointID": EID})
        await again.ok("shoal-bridge", "NetworkDriver.DeleteNetwork", {"NetworkID": NID})
        await again.ok("shoal-ipam", "IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
        assert not again.ctl.endpoints and NID not in again.ctl.networks

    asyncio.run(go())


def test_missing_docker_user_rules_are_found_and_put_back():
    """`iptables -F DOCKER-USER` (or a firewall script) drops a served network's traffic
    again: the checker's watcher verbs report it, repair puts the rules back."""
    async def go():
        h = await Host().start()
        await h.ok("shoal-bridge", "NetworkDriver.CreateNetwork", {"NetworkID": NID, "IPv4Data": V4})
        assert await h.served.findings() == []
        h.rules.allowed.clear()
        (found,) = await h.served.findings()
        assert found[0] == f"network docker-{NID[:12]} ({NID[:12]})" and "DOCKER-USER" in found[1]
        assert await h.served.repair() == [f"put shoal's accept rules for br-{NID[:12]} back into DOCKER-USER"]
        assert await h.served.findings() == [] and h.ctl.side_watchers == [h.served]

    asyncio.run(go())
