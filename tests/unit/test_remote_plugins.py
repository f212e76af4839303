"""Docker's remote network and IPAM plugins (issue #10 part 1), against a real plugin
process (tests/plugin_server.py over a unix socket) and the fake kernel.

The expected call sequences are dockerd 20.10's for the same actions, read from moby's
libnetwork (controller.NewNetwork, network.ipamAllocateVersion, endpoint.sbJoin/sbLeave,
drivers/remote, ipams/remote, pkg/plugins); the differences shoal makes on purpose are
in docs/compat.md and marked here.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from shoal.controller import Controller
from shoal.controller.restore import restore
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.errors import NotFound, ShoalError
from shoal.ipam import DefaultIpam, default_pools, ula_pool
from shoal.kernel import FakeSandboxKernel
from shoal.model import IPAMConfig, NetworkSpec
from shoal.plugins import Dirs, PluginError, PluginRegistry
from shoal.plugins.client import locate
from shoal.store import MemoryStore
from tests.plugin_server import PluginProc

NAME = "shr-plug"


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="shr-u"))  # short: unix socket paths are limited to 108 bytes
    (d / "sock").mkdir()
    (d / "spec").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def plugins(workdir):
    made: list[PluginProc] = []

    def start(name: str = NAME, *extra: str) -> PluginProc:
        p = PluginProc(workdir, name, socket_dir=workdir / "sock", extra=list(extra)).start()
        made.append(p)
        return p

    yield start
    for p in made:
        p.stop()


class World:
    def __init__(self, workdir: Path, store: MemoryStore | None = None, retry: float = 0.0, timeout: float = 3.0):
        self.kernel = FakeSandboxKernel()
        self.store = store or MemoryStore()
        drivers = {"bridge": BridgeDriver(self.kernel), "host": HostDriver(), "null": NullDriver()}
        self.registry = PluginRegistry(self.kernel, Dirs(str(workdir / "sock"), (str(workdir / "spec"),)),
                                       retry=retry, timeout=timeout)
        self.ctl = Controller(self.store, self.kernel, DefaultIpam(default_pools(), [ula_pool("t")]), drivers,
                              "e" * 64, exec_root=str(workdir / "exec"), plugins=self.registry)

    async def start(self) -> World:
        await restore(self.ctl)
        return self

    async def stop(self) -> None:
        await self.registry.close()


def world(workdir, **kw) -> World:
    return asyncio.run(World(workdir, **kw).start())


def spec(**kw) -> NetworkSpec:
    base = {"name": "pnet", "driver": NAME, "ipam_driver": NAME, "ipam_options": {"k": "v"}, "options": {"o": "1"}}
    base.update(kw)
    return NetworkSpec(**base)


SB_OPTS = {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}


def test_a_network_and_a_container_on_it_make_dockerds_calls(workdir, plugins):
    plug = plugins(NAME, "--choose-mac")

    async def go():
        w = await World(workdir).start()
        net = await w.ctl.create_network(spec())
        sid = secrets.token_hex(32)
        sb = await w.ctl.create_sandbox(sid)
        ep = await w.ctl.connect(net.id, sid, name="c1")
        await w.ctl.disconnect(net.id, sid)
        await w.ctl.delete_network(net.id)
        await w.stop()
        return net, sb, ep, w

    net, sb, ep, w = asyncio.run(go())
    calls = plug.calls()
    pool_id = "shr-pool-10.77.0.0/24"
    ids = {"NetworkID": net.id, "EndpointID": ep.id}
    assert calls == [
        {"method": "Plugin.Activate", "body": None},
        {"method": "NetworkDriver.GetCapabilities", "body": None},
        {"method": "IpamDriver.GetCapabilities", "body": None},
        {"method": "IpamDriver.GetDefaultAddressSpaces", "body": None},
        {"method": "IpamDriver.RequestPool", "body": {"AddressSpace": "shr-local", "Pool": "", "SubPool": "",
                                                     "Options": {"k": "v"}, "V6": False}},
        {"method": "IpamDriver.RequestAddress", "body": {
            "PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}},
        {"method": "NetworkDriver.CreateNetwork", "body": {
            "NetworkID": net.id,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {"o": "1"}},
            "IPv4Data": [{"AddressSpace": "shr-local", "Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24"}],
            "IPv6Data": []}},
        {"method": "IpamDriver.RequestAddress", "body": {"PoolID": pool_id, "Address": "", "Options": None}},
        {"method": "NetworkDriver.CreateEndpoint", "body": {
            **ids, "Interface": {"Address": "10.77.0.2/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": SB_OPTS}},
        {"method": "NetworkDriver.Join", "body": {**ids, "SandboxKey": sb.path, "Options": SB_OPTS}},
        {"method": "NetworkDriver.ProgramExternalConnectivity", "body": {**ids, "Options": SB_OPTS}},
        {"method": "NetworkDriver.EndpointOperInfo", "body": ids},  # dockerd 20.10.24 asks twice
        {"method": "NetworkDriver.RevokeExternalConnectivity", "body": ids},
        {"method": "NetworkDriver.Leave", "body": ids},
        {"method": "NetworkDriver.DeleteEndpoint", "body": ids},
        {"method": "IpamDriver.ReleaseAddress", "body": {"PoolID": pool_id, "Address": "10.77.0.2"}},
        {"method": "NetworkDriver.DeleteNetwork", "body": {"NetworkID": net.id}},
        {"method": "IpamDriver.ReleaseAddress", "body": {"PoolID": pool_id, "Address": "10.77.0.1"}},
        {"method": "IpamDriver.ReleasePool", "body": {"PoolID": pool_id}},
    ]
    # what libnetwork does with the answers: the plugin's MAC, its SrcName moved in as eth0
    # with the IPAM address and the Join's gateway as default route, and back out on leave
    assert ep.mac == "0a:58:0a:00:00:01" and ep.ifname == "eth0" and ep.gateways == ("10.77.0.1",)
    assert ep.src_name == f"shrpc{ep.id[:8]}" and ep.ipv4 == "10.77.0.2/24"
    assert net.ipam_configs[0].subnet == "10.77.0.0/24" and net.ipam_configs[0].gateway == "10.77.0.1"
    assert ep.src_name in w.kernel.links_by_name  # back in the host's namespace for the plugin to delete
    assert not w.ctl.endpoints and net.id not in w.ctl.networks
    assert w.store.list("network") and all(d["driver"] != NAME for d in w.store.list("network"))


def test_adopted_interface_is_configured_in_the_sandbox(workdir, plugins):
    plugins(NAME, "--static-route", "192.0.2.0/24")

    async def go():
        w = await World(workdir).start()
        net = await w.ctl.create_network(spec())
        sid = secrets.token_hex(32)
        sb = await w.ctl.create_sandbox(sid)
        ep = await w.ctl.connect(net.id, sid, name="c1")
        return w, sb, ep

    w, sb, ep = asyncio.run(go())
    iface = w.kernel.ifaces[sb.path]["eth0"]
    assert iface["src"] == ep.src_name and iface["addresses"] == ["10.77.0.2/24"]
    assert iface["gateways"] == ["10.77.0.1"] and iface["routes"] == [("192.0.2.0/24", "")]
    assert iface["mac"] == ""  # neither shoal nor the plugin chose one: the link keeps its own


def test_unknown_driver_is_dockers_404(workdir):
    w = world(workdir)
    with pytest.raises(NotFound, match='plugin "nosuch" not found'):
        asyncio.run(w.ctl.create_network(spec(driver="nosuch", ipam_driver="default")))
    with pytest.raises(NotFound, match='plugin "nosuch-ipam" not found'):
        asyncio.run(w.ctl.create_network(spec(driver="bridge", ipam_driver="nosuch-ipam")))
    assert [n.name for n in w.ctl.list_networks()] == ["bridge", "host", "none"]


def test_lookup_waits_for_a_plugin_that_comes_up(workdir, plugins):
    """dockerd retries the lookup with backoff (1 s, 2 s, ...) for ~15 s: a plugin started
    next to the daemon is found."""
    w = world(workdir, retry=3.0)

    async def go():
        task = asyncio.ensure_future(w.ctl.create_network(spec()))
        await asyncio.sleep(0.3)
        plugins(NAME)
        return await task

    started = time.monotonic()
    net = asyncio.run(go())
    assert net.driver == NAME and 0.9 < time.monotonic() - started < 3


def test_plugin_that_does_not_implement_the_kind(workdir, plugins):
    plugins(NAME, "--implements", "IpamDriver")
    w = world(workdir)
    with pytest.raises(PluginError, match="legacy plugin: plugin shr-plug does not implement NetworkDriver"):
        asyncio.run(w.ctl.create_network(spec(ipam_driver="default")))


def test_ipam_plugin_behind_the_bridge_driver(workdir, plugins):
    plug = plugins("shr-ipam", "--implements", "IpamDriver", "--pool-octet", "78")

    async def go():
        w = await World(workdir).start()
        net = await w.ctl.create_network(spec(driver="bridge", ipam_driver="shr-ipam", options={}))
        sid = secrets.token_hex(32)
        await w.ctl.create_sandbox(sid)
        ep = await w.ctl.connect(net.id, sid, name="c1")
        return net, ep

    net, ep = asyncio.run(go())
    assert net.ipam_configs[0].subnet == "10.78.0.0/24" and ep.ipv4 == "10.78.0.2/24"
    assert ep.mac == "02:42:0a:4e:00:02"  # the bridge driver's rule still derives it
    assert plug.methods() == ["Plugin.Activate", "IpamDriver.GetCapabilities", "IpamDriver.GetDefaultAddressSpaces",
                              "IpamDriver.RequestPool", "IpamDriver.RequestAddress", "IpamDriver.RequestAddress"]


def _leaves_nothing(w: World, plug: PluginProc, before_links: set[str]) -> None:
    assert [n.name for n in w.ctl.list_networks()] == ["bridge", "host", "none"]
    assert len(w.store.list("network")) == 3 and not w.store.list("endpoint")
    assert set(w.kernel.links_by_name) <= before_links | {c for c in w.kernel.links_by_name if c.startswith("shr")}


@pytest.mark.parametrize("how, message", [
    ({"err": "no room"}, "remote: no room"),
    ({"status": 500, "body": '{"Err": "broken"}'}, "NetworkDriver.CreateNetwork: broken"),
    ({"status": 500, "body": "plain text"}, "NetworkDriver.CreateNetwork: plain text"),
    ({"garbage": True}, "NetworkDriver.CreateNetwork: the plugin's answer is not JSON"),
    ({"hang": 5}, "did not answer within 1 s"),
])
def test_failed_create_network_is_undone_in_the_plugin_too(workdir, plugins, how, message):
    plug = plugins()
    plug.behave(**{"NetworkDriver.CreateNetwork": how})
    w = world(workdir, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ShoalError, match=message) as err:
        asyncio.run(w.ctl.create_network(spec()))
    assert err.value.status == 500 and time.monotonic() - started < 3
    methods = plug.methods()
    assert methods[-3:] == ["IpamDriver.RequestAddress", "NetworkDriver.CreateNetwork", "IpamDriver.ReleasePool"]
    assert [n.name for n in w.ctl.list_networks()] == ["bridge", "host", "none"] and len(w.store.list("network")) == 3


def test_failed_ipam_request_releases_the_pool(workdir, plugins):
    plug = plugins()
    plug.behave(**{"IpamDriver.RequestAddress": {"err": "exhausted"}})
    w = world(workdir)
    with pytest.raises(ShoalError, match="remote: exhausted"):
        asyncio.run(w.ctl.create_network(spec()))
    assert plug.methods()[-3:] == ["IpamDriver.RequestPool", "IpamDriver.RequestAddress", "IpamDriver.ReleasePool"]
    assert "NetworkDriver.CreateNetwork" not in plug.methods()


@pytest.mark.parametrize("verb, how, tail", [
    ("NetworkDriver.CreateEndpoint", {"err": "nope"}, ["NetworkDriver.CreateEndpoint", "IpamDriver.ReleaseAddress"]),
    ("NetworkDriver.CreateEndpoint", {"reply": {"Interface": {"Address": "10.9.9.9/24"}}},
     ["NetworkDriver.CreateEndpoint", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]),
    ("NetworkDriver.Join", {"err": "nope"},
     ["NetworkDriver.Join", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]),
    ("NetworkDriver.Join", {"reply": {"InterfaceName": {"SrcName": "x"}}},
     ["NetworkDriver.Join", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]),
    ("NetworkDriver.Join", {"reply": {"InterfaceName": {"SrcName": "x", "DstPrefix": "eth"}, "Gateway": "bad"}},
     ["NetworkDriver.Join", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]),
    ("NetworkDriver.ProgramExternalConnectivity", {"err": "no nat"},
     ["NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint",
      "IpamDriver.ReleaseAddress"]),
])
def test_failed_connect_is_undone_in_the_plugin_too(workdir, plugins, verb, how, tail):
    plug = plugins()
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    sb = asyncio.run(w.ctl.create_sandbox(sid))
    plug.clear()
    plug.behave(**{verb: how})
    with pytest.raises(ShoalError):
        asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    assert plug.methods()[-len(tail):] == tail, plug.methods()
    assert not w.ctl.endpoints and not w.store.list("endpoint")
    assert set(w.kernel.ifaces[sb.path]) == {"lo"}
    plug.behave()  # and the network still works
    ep = asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    assert ep.ipv4 == "10.77.0.2/24"  # the first address was given back


def test_interface_move_failure_leaves_and_deletes_the_endpoint(workdir, plugins):
    plug = plugins()
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    asyncio.run(w.ctl.create_sandbox(sid))
    plug.clear()
    w.kernel.fail_on = "adopt_iface"
    with pytest.raises(ShoalError, match="refused"):
        asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    assert plug.methods() == ["IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join",
                              "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]


def test_plugin_may_not_change_a_mac_shoal_gave(workdir, plugins):
    plug = plugins()
    plug.behave(**{"NetworkDriver.CreateEndpoint": {"reply": {"Interface": {"MacAddress": "0a:00:00:00:00:01"}}}})
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    asyncio.run(w.ctl.create_sandbox(sid))
    with pytest.raises(ShoalError, match=r"driver modified interface MAC address: .*\(02:42:00:00:00:07\).*rolled back"):
        asyncio.run(w.ctl.connect(net.id, sid, name="c1", mac="02:42:00:00:00:07"))


def test_dead_plugin_does_not_pin_its_network(workdir, plugins):
    """Leave, DeleteEndpoint and DeleteNetwork failures are logged and the removal goes on
    (dockerd); the IPAM side (another plugin here) is still released."""
    net_plug = plugins(NAME, "--implements", "NetworkDriver")
    ipam_plug = plugins("shr-ipam", "--implements", "IpamDriver")
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec(ipam_driver="shr-ipam")))
    sid = secrets.token_hex(32)
    asyncio.run(w.ctl.create_sandbox(sid))
    asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    net_plug.stop()
    ipam_plug.clear()
    asyncio.run(w.ctl.delete_sandbox(sid))
    asyncio.run(w.ctl.delete_network(net.id))
    assert ipam_plug.methods() == ["IpamDriver.ReleaseAddress", "IpamDriver.ReleaseAddress", "IpamDriver.ReleasePool"]
    assert not w.store.list("endpoint") and net.id not in w.ctl.networks


def test_networks_survive_restarts_of_shoald_and_of_the_plugin(workdir, plugins):
    plug = plugins()
    w = world(workdir)
    asyncio.run(w.ctl.create_network(spec()))
    asyncio.run(w.stop())
    plug.stop()
    # shoald restarts while the plugin is away: the network stays stored and listed
    w2 = World(workdir, store=w.store)
    asyncio.run(w2.start())
    assert w2.ctl.find_network("pnet").driver == NAME
    # the plugin comes back: the network works, nothing was asked to be created again
    plug.clear()
    plug = plugins()
    sid = secrets.token_hex(32)
    asyncio.run(w2.ctl.create_sandbox(sid))
    ep = asyncio.run(w2.ctl.connect("pnet", sid, name="c1"))
    assert ep.gateways == ("10.77.0.1",)
    assert "NetworkDriver.CreateNetwork" not in plug.methods()
    assert plug.methods()[:4] == ["Plugin.Activate", "NetworkDriver.GetCapabilities", "IpamDriver.GetCapabilities",
                                  "IpamDriver.GetDefaultAddressSpaces"]


def test_gateway_endpoint_hand_over(workdir, plugins):
    """Program on the endpoint that becomes the sandbox's gateway, Revoke when another
    takes over or it leaves (the sandbox's networks sort by name, as measured on 20.10)."""
    plug = plugins()
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec(name="zz-plug")))
    sid = secrets.token_hex(32)
    sb = asyncio.run(w.ctl.create_sandbox(sid))
    ep = asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    plug.clear()
    other = asyncio.run(w.ctl.create_network(NetworkSpec(name="aa-bridge")))
    asyncio.run(w.ctl.connect(other.id, sid, name="c1"))  # sorts first: takes the default route
    assert plug.methods() == ["NetworkDriver.RevokeExternalConnectivity"]
    plug.clear()
    asyncio.run(w.ctl.disconnect(other.id, sid))  # back to the plugin's endpoint, via its gateway
    assert plug.methods() == ["NetworkDriver.ProgramExternalConnectivity"]
    assert w.kernel.ifaces[sb.path]["eth0"]["gateways"] == ["10.77.0.1"]
    assert ep.ifname == "eth0"


def test_no_gateway_from_join_never_takes_the_default_route(workdir, plugins):
    plug = plugins(NAME, "--no-gateway")
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    sb = asyncio.run(w.ctl.create_sandbox(sid))
    ep = asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    assert ep.gateways == () and w.kernel.ifaces[sb.path]["eth0"]["gateways"] == []
    assert "NetworkDriver.ProgramExternalConnectivity" not in plug.methods()


def test_requires_mac_address_gets_the_mac(workdir, plugins):
    plug = plugins(NAME, "--requires-mac")
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    asyncio.run(w.ctl.create_sandbox(sid))
    ep = asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    req = [c for c in plug.calls() if c["method"] == "IpamDriver.RequestAddress"][-1]
    assert req["body"]["Options"] == {"com.docker.network.endpoint.macaddress": ep.mac} and ep.mac
    create = [c for c in plug.calls() if c["method"] == "NetworkDriver.CreateEndpoint"][-1]
    assert create["body"]["Interface"]["MacAddress"] == ep.mac


def test_explicit_subnet_gateway_and_aux(workdir, plugins):
    plug = plugins()
    w = world(workdir)
    cfg = IPAMConfig(subnet="10.99.0.0/24", gateway="10.99.0.254", aux_addresses={"r": "10.99.0.9"})
    net = asyncio.run(w.ctl.create_network(spec(ipam_configs=(cfg,))))
    body = next(c for c in plug.calls() if c["method"] == "NetworkDriver.CreateNetwork")["body"]
    assert body["IPv4Data"] == [{"AddressSpace": "shr-local", "Pool": "10.99.0.0/24", "Gateway": "10.99.0.254/24",
                                 "AuxAddresses": {"r": "10.99.0.9/24"}}]
    plug.clear()
    asyncio.run(w.ctl.delete_network(net.id))
    assert [(c["method"], (c["body"] or {}).get("Address")) for c in plug.calls()] == [
        ("NetworkDriver.DeleteNetwork", None), ("IpamDriver.ReleaseAddress", "10.99.0.254"),
        ("IpamDriver.ReleaseAddress", "10.99.0.9"), ("IpamDriver.ReleasePool", None)]


def test_dynamic_pool_that_overlaps_a_host_route_is_held_and_asked_again(workdir, plugins):
    plug = plugins()
    w = world(workdir)
    w.kernel.host_routes = ["10.77.0.0/16"]
    w.ctl._routes_at = None
    with pytest.raises(ShoalError, match="64 pools in a row overlap"):
        asyncio.run(w.ctl.create_network(spec()))
    plug.clear()
    w.kernel.host_routes = ["10.77.64.0/24"]  # the plugin's 65th pool ... overlaps; the next is fine
    w.ctl._routes_at = None
    net = asyncio.run(w.ctl.create_network(spec()))
    assert net.ipam_configs[0].subnet == "10.77.65.0/24"
    assert plug.methods()[:3] == ["IpamDriver.RequestPool", "IpamDriver.RequestPool", "IpamDriver.ReleasePool"]


# -- discovery ---------------------------------------------------------------------------
def test_discovery_order_and_spec_files(workdir):
    import socket

    dirs = Dirs(str(workdir / "sock"), (str(workdir / "spec"), str(workdir / "spec2")))
    assert locate("p1", dirs) is None
    (workdir / "spec" / "p1.spec").write_text("tcp://127.0.0.1:9\n")
    assert locate("p1", dirs).url == "tcp://127.0.0.1:9"
    (workdir / "sock" / "p1").mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(workdir / "sock" / "p1" / "p1.sock"))  # a socket wins over any spec file
    try:
        assert locate("p1", dirs).url == f"unix://{workdir}/sock/p1/p1/p1.sock".replace("/p1/p1/", "/p1/")
    finally:
        s.close()
    (workdir / "sock" / "p2.sock").write_text("")  # not a socket: skipped
    (workdir / "spec2" / "p2").mkdir(parents=True)
    (workdir / "spec2" / "p2" / "p2.json").write_text(json.dumps(
        {"Name": "p2", "Addr": "https://127.0.0.1:9443", "TLSConfig": {"CAFile": "", "CertFile": "/c", "KeyFile": "/k"}}))
    got = locate("p2", dirs)
    assert got.url == "https://127.0.0.1:9443" and got.tls.cert_file == "/c" and got.tls.key_file == "/k"
    (workdir / "spec" / "p3.spec").write_text("127.0.0.1:9")
    with pytest.raises(PluginError, match="has no scheme"):
        locate("p3", dirs)
    assert locate("../sock/p2", dirs) is None and locate("", dirs) is None


def test_tcp_and_tls_plugins_from_spec_files(workdir, plugins):
    from tests.certs import make_pki

    pki = make_pki(workdir, "pki", ["127.0.0.1"])
    tcp = plugins("shr-tcp", "--tcp", "127.0.0.1:0", "--port-file", str(workdir / "tcp.port"))
    tls = plugins("shr-tls", "--tcp", "127.0.0.1:0", "--port-file", str(workdir / "tls.port"),
                  "--tls", f"{pki.server_cert},{pki.server_key}")
    del tcp, tls
    for _ in range(200):
        if (workdir / "tcp.port").exists() and (workdir / "tls.port").exists():
            break
        time.sleep(0.02)
    (workdir / "spec" / "shr-tcp.spec").write_text(f"tcp://127.0.0.1:{(workdir / 'tcp.port').read_text()}")
    (workdir / "spec" / "shr-tls.json").write_text(json.dumps({
        "Name": "shr-tls", "Addr": f"https://127.0.0.1:{(workdir / 'tls.port').read_text()}",
        "TLSConfig": {"CAFile": str(pki.ca)}}))
    w = world(workdir)
    a = asyncio.run(w.ctl.create_network(spec(name="a", driver="shr-tcp", ipam_driver="shr-tcp")))
    b = asyncio.run(w.ctl.create_network(spec(name="b", driver="shr-tls", ipam_driver="shr-tls")))
    assert a.driver == "shr-tcp" and b.ipam_configs[0].subnet.startswith("10.77.")


def test_refused_connection_is_retried_then_a_clear_error(workdir, plugins):
    plug = plugins()
    w = world(workdir)
    asyncio.run(w.ctl.create_network(spec()))
    plug.stop()  # the socket file stays: connections are refused
    w.registry.driver(NAME)._plugin.client.retry = 1.5
    started = time.monotonic()
    with pytest.raises(PluginError, match="cannot connect to plugin at unix://"):
        asyncio.run(w.ctl.create_network(spec(name="other")))
    assert 0.9 < time.monotonic() - started < 2.5  # tried at 0 and 1 s, not again at 3 s


def test_global_scope_plugin_is_refused_clearly(workdir, plugins):
    plug = plugins(NAME, "--scope", "global")
    w = world(workdir)
    with pytest.raises(ShoalError, match="global-scope network driver") as err:
        asyncio.run(w.ctl.create_network(spec()))
    assert err.value.status == 403 and "IpamDriver.RequestPool" not in plug.methods()


def test_self_heal_gives_the_plugins_gateway_back(workdir, plugins):
    from shoal.controller.invariants import expected_gateways
    from shoal.controller.repair import heal_kernel

    plugins()
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    sb = asyncio.run(w.ctl.create_sandbox(sid))
    ep = asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    assert expected_gateways(w.ctl, sb) == (ep, {"10.77.0.1"})
    w.kernel.ifaces[sb.path]["eth0"]["gateways"] = []  # deleted from inside the container
    done = asyncio.run(heal_kernel(w.ctl, inside=True))
    assert done == [f"gave sandbox {sid[:12]} its default route via 10.77.0.1"]
    assert w.kernel.ifaces[sb.path]["eth0"]["gateways"] == ["10.77.0.1"]


def test_discovery_notifications_have_libnetworks_shape(workdir, plugins):
    plug = plugins()
    w = world(workdir)
    driver = asyncio.run(w.registry.resolve_driver(NAME))
    asyncio.run(driver.discover_new({"advertise": "192.0.2.7:7946", "vtep": "192.0.2.7", "engine": "x"}))
    asyncio.run(driver.discover_delete({"advertise": "192.0.2.7:7946", "vtep": "192.0.2.7"}))
    data = {"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.7", "BindAddress": "", "Self": False}}
    assert plug.calls()[-2:] == [{"method": "NetworkDriver.DiscoverNew", "body": data},
                                 {"method": "NetworkDriver.DiscoverDelete", "body": data}]


def test_external_connectivity_404_is_not_implemented(workdir, plugins):
    """libnetwork: a 404 on Program/RevokeExternalConnectivity means "not implemented"."""
    plug = plugins()
    missing = {"status": 404, "body": "404 page not found\n"}
    plug.behave(**{"NetworkDriver.ProgramExternalConnectivity": missing,
                   "NetworkDriver.RevokeExternalConnectivity": missing})
    w = world(workdir)
    net = asyncio.run(w.ctl.create_network(spec()))
    sid = secrets.token_hex(32)
    asyncio.run(w.ctl.create_sandbox(sid))
    asyncio.run(w.ctl.connect(net.id, sid, name="c1"))
    asyncio.run(w.ctl.disconnect(net.id, sid))
    assert "NetworkDriver.ProgramExternalConnectivity" in plug.methods() and not w.ctl.endpoints


def test_a_daemon_never_asks_its_own_served_plugins():
    """shoald --serve-plugins serves shoal-bridge to dockerd; asked for -d shoal-bridge
    itself it would wait on its own lock: a clear 400 instead, before any lookup."""
    import asyncio

    from shoal.errors import InvalidParameter
    from shoal.kernel.fake import FakeKernel
    from shoal.plugins import PluginRegistry

    reg = PluginRegistry(FakeKernel(), own=frozenset({"shoal-bridge"}))
    with pytest.raises(InvalidParameter, match="served by this shoald itself"):
        asyncio.run(reg.get("shoal-bridge", "NetworkDriver"))
