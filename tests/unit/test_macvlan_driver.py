"""The macvlan and ipvlan drivers over the fake kernel: options, parents, endpoints."""

import asyncio

import pytest

from shoal.controller import Controller
from shoal.controller.restore import restore
from shoal.drivers import (
    BridgeDriver,
    HostDriver,
    IpvlanDriver,
    MacvlanDriver,
    NullDriver,
)
from shoal.drivers.macvlan import MacvlanOptions, parse_vlan
from shoal.errors import Forbidden, InvalidParameter, NotImplementedYet
from shoal.ipam import DefaultIpam, default_pools
from shoal.kernel import FakeSandboxKernel, LinkInfo
from shoal.model import IPAMConfig, NetworkSpec
from shoal.store import MemoryStore

ENGINE = "e" * 64


class Box:
    def __init__(self, tmp, kernel=None, store=None):
        self.loop = asyncio.new_event_loop()
        self.kernel = kernel or FakeSandboxKernel()
        self.store = store or MemoryStore()
        self.tmp = tmp
        if kernel is None:
            self.kernel.links_by_name["shm-up0"] = LinkInfo("shm-up0", 50, "veth", "", 1500, True, "aa:bb:cc:00:00:01")
        drivers = {"bridge": BridgeDriver(self.kernel), "host": HostDriver(), "null": NullDriver(),
                   "macvlan": MacvlanDriver(self.kernel), "ipvlan": IpvlanDriver(self.kernel)}
        self.ctl = Controller(self.store, self.kernel, DefaultIpam(default_pools()), drivers, ENGINE,
                              exec_root=str(tmp / "run"))
        self.run(restore(self.ctl))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def create(self, name="mv", subnet="10.77.0.0/24", gateway="10.77.0.254", internal=False, **opts):
        cfgs = (IPAMConfig(subnet=subnet, gateway=gateway),) if subnet else ()
        spec = NetworkSpec(name=name, driver="macvlan", options=opts, ipam_configs=cfgs, internal=internal)
        return self.run(self.ctl.create_network(spec))

    def connect(self, net, sid, name):
        self.run(self.ctl.create_sandbox(sid))
        return self.run(self.ctl.connect(net, sid, name=name))

    def iface(self, sid, ifname="eth0"):
        return self.kernel.ifaces[self.ctl.sandboxes[sid].path].get(ifname)

    def problems(self, net):
        links = {link.name: link for link in self.run(self.kernel.links())}
        eps = [e for e in self.ctl.endpoints_of(net.id) if e.ifname]
        return [p.message for p in self.ctl.driver("macvlan").verify(net, self.ctl.alias("net", net.id), eps, links)]


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.loop.close()


def test_options_parse_as_dockerd():
    assert MacvlanOptions.parse({"parent": "eth0"}, "a" * 64) == MacvlanOptions("eth0", "bridge", True)
    assert MacvlanOptions.parse({}, "ab" * 32) == MacvlanOptions("dm-" + "ab" * 6, "bridge", False)
    assert MacvlanOptions.parse({"macvlan_mode": "passthru", "other": "x"}, "a").mode == "passthru"
    with pytest.raises(InvalidParameter, match="requested macvlan mode 'l2' is not valid, 'bridge' mode is"):
        MacvlanOptions.parse({"macvlan_mode": "l2"})
    with pytest.raises(InvalidParameter, match="loopback interface is not a valid macvlan parent link"):
        MacvlanOptions.parse({"parent": "lo"})
    with pytest.raises(InvalidParameter, match="invalid macvlan parent interface"):
        MacvlanOptions.parse({"parent": "x" * 16})


def test_vlan_names_as_dockerd():
    assert parse_vlan("eth0.10") == ("eth0", 10)
    for bad, msg in (("eth9", "invalid subinterface vlan name eth9, example formatting is eth0.10"),
                     ("a.b.c", "required interface name format is: name.vlan_id"),
                     ("eth0.x", "unable to parse a valid vlan id from: x"),
                     ("eth0.4095", "vlan id must be between 1-4094, received: 4095"),
                     ("eth0.0", "vlan id must be between 1-4094, received: 0")):
        with pytest.raises(InvalidParameter, match=msg):
            parse_vlan(bad)


def test_bad_mode_is_refused_before_anything_is_allocated(box):
    with pytest.raises(InvalidParameter, match="macvlan mode"):
        box.create(parent="shm-up0", macvlan_mode="nope")
    assert [n.name for n in box.ctl.list_networks() if n.driver == "macvlan"] == []
    box.create(parent="shm-up0")  # the subnet was not kept


def test_a_given_parent_is_used_and_left_alone(box):
    before = dict(box.kernel.links_by_name)
    net = box.create(parent="shm-up0")
    assert box.kernel.links_by_name == before and net.scope == "local"
    assert net.options == {"parent": "shm-up0"}
    assert box.ctl.driver("macvlan").bridge_of(net) is None
    assert box.problems(net) == []
    box.run(box.ctl.delete_network("mv"))
    assert box.kernel.links_by_name == before


def test_no_parent_makes_dm_id_marked_ours_and_removes_it(box):
    net = box.create(subnet="", gateway="")
    dm = box.kernel.links_by_name[f"dm-{net.id[:12]}"]
    assert dm.alias == box.ctl.alias("net", net.id) and dm.up and dm.kind == "ifb"
    assert box.problems(net) == []
    box.run(box.ctl.delete_network(net.id))
    assert f"dm-{net.id[:12]}" not in box.kernel.links_by_name


def test_one_network_per_parent_as_dockerd_20_10(box):
    first = box.create(parent="shm-up0")
    with pytest.raises(Forbidden, match=f"network dm-{first.id[:12]} is already using parent interface shm-up0"):
        box.create(name="mv2", subnet="10.78.0.0/24", gateway="", parent="shm-up0")
    assert [n.name for n in box.ctl.list_networks() if n.driver == "macvlan"] == ["mv"]
    box.run(box.ctl.delete_network("mv"))
    box.create(name="mv2", subnet="10.78.0.0/24", gateway="", parent="shm-up0")  # free again


def test_missing_parents(box):
    with pytest.raises(InvalidParameter, match="invalid subinterface vlan name shm-nope, example formatting"):
        box.create(parent="shm-nope")
    with pytest.raises(InvalidParameter, match="-o parent interface was not found on the host: shm-no"):
        box.create(parent="shm-no.10")
    with pytest.raises(InvalidParameter, match="vlan id must be between 1-4094"):
        box.create(parent="shm-up0.5000")
    assert not [n for n in box.ctl.list_networks() if n.driver == "macvlan"]


def test_a_vlan_parent_on_a_kernel_without_8021q_is_a_clear_error_and_leaves_nothing(box):
    before = dict(box.kernel.links_by_name)
    with pytest.raises(Forbidden, match="this kernel has no 8021q"):
        box.create(parent="shm-up0.10")
    assert box.kernel.links_by_name == before
    assert not [n for n in box.ctl.list_networks() if n.driver == "macvlan"]
    box.create(name="again", parent="shm-up0")  # its subnet was given back


def test_a_vlan_parent_is_made_marked_and_removed_when_the_kernel_has_8021q(box):
    box.kernel.link_kinds.add("vlan")
    net = box.create(parent="shm-up0.10")
    vlan = box.kernel.links_by_name["shm-up0.10"]
    assert vlan.kind == "vlan" and vlan.alias == box.ctl.alias("net", net.id)
    box.run(box.ctl.delete_network("mv"))
    assert "shm-up0.10" not in box.kernel.links_by_name and "shm-up0" in box.kernel.links_by_name


def test_a_vlan_interface_of_the_users_is_not_removed(box):
    box.kernel.links_by_name["shm-up0.20"] = LinkInfo("shm-up0.20", 60, "vlan", "mine", 1500, True, "")
    box.create(parent="shm-up0.20")
    box.run(box.ctl.delete_network("mv"))
    assert "shm-up0.20" in box.kernel.links_by_name


def test_endpoints_are_macvlan_ports_in_the_sandbox(box):
    box.create(parent="shm-up0")
    ep = box.connect("mv", "a" * 64, "one")
    port = box.iface("a" * 64)
    assert port["parent"] == "shm-up0" and port["mode"] == "bridge"
    assert port["mac"] == ep.mac == "02:42:0a:4d:00:01"  # dockerd's: from the IPv4 address
    assert port["addresses"] == ["10.77.0.1/24"] and port["gateways"] == ["10.77.0.254"]
    assert ep.host_ifname == "" and box.ctl.driver("macvlan").bridge_of(box.ctl.find_network("mv")) is None
    box.run(box.ctl.disconnect("mv", "a" * 64))
    assert box.iface("a" * 64) is None


def test_an_internal_network_gives_no_default_route(box):
    box.create(internal=True, subnet="10.79.0.0/24", gateway="")
    box.connect("mv", "b" * 64, "one")
    assert box.iface("b" * 64)["gateways"] == []


def test_passthru_takes_one_endpoint_and_the_parents_mac(box):
    box.create(parent="shm-up0", macvlan_mode="passthru")
    ep = box.connect("mv", "a" * 64, "one")
    assert ep.mac == "aa:bb:cc:00:00:01" == box.iface("a" * 64)["mac"]
    with pytest.raises(Forbidden, match="passthru mode: its parent shm-up0 takes one container only"):
        box.connect("mv", "b" * 64, "two")
    assert box.iface("b" * 64) is None and len(box.ctl.endpoints_of(ep.network_id)) == 1


def test_a_missing_parent_is_reported_and_ours_is_repaired(box):
    from shoal.controller.repair import heal_kernel

    net = box.create(subnet="10.79.0.0/24", gateway="")
    box.connect("mv", "a" * 64, "one")
    dm = f"dm-{net.id[:12]}"
    box.run(box.kernel.delete_link(dm))  # its ports go with it, as in the kernel
    assert box.iface("a" * 64) is None
    assert box.problems(net) == [f"parent interface {dm} is missing",
                                 f"endpoint one: its macvlan port went with parent {dm}"]
    done = box.run(heal_kernel(box.ctl))
    assert any("repaired network mv" in d for d in done) and any("repaired endpoint one" in d for d in done)
    assert box.problems(net) == [] and box.iface("a" * 64)["parent"] == dm


def test_a_users_parent_that_is_missing_is_reported_not_made(box):
    net = box.create(parent="shm-up0")
    del box.kernel.links_by_name["shm-up0"]
    assert box.problems(net) == ["parent interface shm-up0 is missing"]
    with pytest.raises(Forbidden, match="shoal did not make it"):
        box.run(box.ctl.driver("macvlan").restore_network(net, box.ctl.alias("net", net.id)))


def test_a_restart_keeps_parents_and_remakes_ours(box):
    net = box.create(parent="shm-up0")
    inner = box.create(name="inner", subnet="10.79.0.0/24", gateway="", internal=True)
    box.run(box.kernel.delete_link(f"dm-{inner.id[:12]}"))  # say, a reboot
    again = Box(box.tmp, kernel=box.kernel, store=box.store)
    try:
        assert f"dm-{inner.id[:12]}" in box.kernel.links_by_name
        with pytest.raises(Forbidden, match=f"network dm-{net.id[:12]} is already using parent"):
            again.create(name="mv2", subnet="10.80.0.0/24", gateway="", parent="shm-up0")
    finally:
        again.loop.close()


def test_ipvlan_says_the_kernel_lacks_it_and_asks_once(box, monkeypatch):
    asked = []
    real = box.kernel.has_link_kind

    async def has_link_kind(kind):
        asked.append(kind)
        return await real(kind)

    monkeypatch.setattr(box.kernel, "has_link_kind", has_link_kind)
    spec = NetworkSpec(name="iv", driver="ipvlan", options={"parent": "shm-up0"})
    for _ in range(2):
        with pytest.raises(Forbidden, match="ipvlan networks need the kernel's ipvlan support, and this kernel has none"):
            box.run(box.ctl.create_network(spec))
    assert asked == ["ipvlan"] and not [n for n in box.ctl.list_networks() if n.driver == "ipvlan"]


def test_ipvlan_on_a_kernel_that_has_it_is_not_implemented(tmp_path):
    b = Box(tmp_path)
    b.kernel.link_kinds.add("ipvlan")
    with pytest.raises(NotImplementedYet):
        b.run(b.ctl.create_network(NetworkSpec(name="iv", driver="ipvlan")))
    b.loop.close()
