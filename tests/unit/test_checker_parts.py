"""The invariant checker's pure parts: nft readback, driver verification, crash steps."""

from __future__ import annotations

import asyncio
import json

import pytest

from shoal.daemon.faults import FaultPlan, Steps
from shoal.drivers import BridgeDriver
from shoal.errors import ShoalError
from shoal.firewall import EndpointConfig, NetworkConfig, PortMapping, State
from shoal.firewall.elements import elements
from shoal.firewall.readback import differences, parse
from shoal.kernel import FakeKernel, LinkInfo
from shoal.model import Endpoint, IPAMConfig, Network

NET = NetworkConfig("shoal0", ("172.17.0.0/16",), ("fd00:1::/64",), icc=False)
STATE = State(networks=(NET,), endpoints=(EndpointConfig("shoal0", "vethabc"),),
              ports=(PortMapping("tcp", 8080, "172.17.0.2", 80, "shoal0"),
                     PortMapping("udp", 53, "172.17.0.2", 53, "shoal0", "127.0.0.1")))


def _listing(family: str, sets: dict) -> str:
    """What `nft -j list table FAMILY shoal` prints, reduced to what readback reads."""
    items = [{"metainfo": {}}, {"table": {"family": family, "name": "shoal"}}]
    from shoal.firewall.ruleset import TABLES
    for chain in TABLES[family]:
        items.append({"chain": {"family": family, "table": "shoal", "name": chain.name}})
        items += [{"rule": {"family": family, "table": "shoal", "chain": chain.name}} for _ in chain.rules]
    for (kind, name), elems in sets.items():
        items.append({kind: {"family": family, "table": "shoal", "name": name, "elem": elems}})
    return json.dumps({"nftables": items})


INET = {
    ("set", "bridges"): ["shoal0"], ("set", "internal"): None,
    ("map", "icc"): [[{"concat": ["shoal0", "shoal0"]}, {"drop": None}]],
    ("set", "subnets4"): [{"concat": ["shoal0", {"prefix": {"addr": "172.17.0.0", "len": 16}}]}],
    ("set", "subnets6"): [{"concat": ["shoal0", {"prefix": {"addr": "fd00:1::", "len": 64}}]}],
    ("set", "masquerading"): ["shoal0"],
    ("set", "published4"): [{"concat": ["172.17.0.2", "udp", 53]}, {"concat": ["172.17.0.2", "tcp", 80]}],
    ("set", "published6"): None,
    ("map", "dnat4"): [[{"concat": ["tcp", 8080]}, {"concat": ["172.17.0.2", 80]}]],
    ("map", "dnat4_host"): [[{"concat": ["127.0.0.1", "udp", 53]}, {"concat": ["172.17.0.2", 53]}]],
    ("map", "dnat6"): None, ("map", "dnat6_host"): None,
}


def test_tables_as_nft_prints_them_match_the_state():
    views = {"inet": parse("inet", _listing("inet", INET)),
             "bridge": parse("bridge", _listing("bridge", {("set", "icc_off_ports"): ["vethabc"]}))}
    assert differences(elements(STATE), views) == []


def test_every_kind_of_drift_is_named():
    inet = dict(INET)
    inet[("map", "dnat4")] = [[{"concat": ["tcp", 8080]}, {"concat": ["172.17.0.9", 80]}]]  # edited
    inet[("set", "published4")] = [{"concat": ["172.17.0.2", "tcp", 80]}]  # one gone
    inet[("set", "bridges")] = ["shoal0", "br-stale"]  # one extra
    views = {"inet": parse("inet", _listing("inet", inet)), "bridge": parse("bridge", "")}
    found = differences(elements(STATE), views)
    assert "table bridge shoal is missing" in found
    assert "inet shoal dnat4: element tcp . 8080 maps to 172.17.0.9 . 80, not 172.17.0.2 . 80" in found
    assert "inet shoal published4: element 172.17.0.2 . udp . 53 is missing" in found
    assert "inet shoal bridges: element br-stale is not shoal's state" in found


def test_a_flushed_chain_is_noticed():
    listing = json.loads(_listing("inet", INET))
    listing["nftables"] = [i for i in listing["nftables"] if not ("rule" in i and i["rule"]["chain"] == "forward")]
    views = {"inet": parse("inet", json.dumps(listing)),
             "bridge": parse("bridge", _listing("bridge", {("set", "icc_off_ports"): ["vethabc"]}))}
    assert [d for d in differences(elements(STATE), views) if "chain" in d] == [
        "chain inet shoal forward has 0 rules, shoal wrote " + str(
            next(len(c.rules) for c in __import__("shoal.firewall.ruleset", fromlist=["TABLES"]).TABLES["inet"]
                 if c.name == "forward"))]


def _network() -> Network:
    return Network(id="n" * 64, name="web", driver="bridge", scope="local", created="", options={},
                   ipam_configs=(IPAMConfig(subnet="10.1.0.0/24", gateway="10.1.0.1"),))


def test_bridge_verify_reads_one_link_dump():
    drv, net = BridgeDriver(FakeKernel()), _network()
    name = drv.bridge_name(net)
    ep = Endpoint(id="e" * 64, network_id=net.id, name="c1", host_ifname="vetheee", ifname="eth0")
    good = {name: LinkInfo(name, 5, "bridge", "A", 1500, True, "", ("10.1.0.1/24",)),
            "vetheee": LinkInfo("vetheee", 9, "veth", "B", 1500, True, "", master=5)}
    assert drv.verify(net, "A", [ep], good) == []
    off = dict(good, vetheee=LinkInfo("vetheee", 9, "veth", "B", 1500, True, "", master=0))
    assert [p.message for p in drv.verify(net, "A", [ep], off)] == [f"endpoint c1: veth vetheee is not a port of {name}"]
    bare = {name: LinkInfo(name, 5, "bridge", "A", 1500, False, "")}
    messages = [p.message for p in drv.verify(net, "A", [ep], bare)]
    assert messages == [f"bridge {name} is down", f"bridge {name} lacks its gateway address 10.1.0.1/24",
                        "endpoint c1: veth vetheee is missing"]
    assert drv.verify(net, "A", [ep], {})[1].endpoint_id == ep.id


class _Target:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def add_thing(self) -> str:
        self.calls.append("add")
        return "added"

    async def link(self) -> str:  # a read: never a step
        return "read"


def test_steps_are_numbered_while_armed_and_fail_on_demand(tmp_path):
    plan = FaultPlan(tmp_path)
    target = _Target()
    wrapped = Steps(target, "kernel", plan)

    async def go() -> None:
        assert await wrapped.add_thing() == "added"  # not armed: no step
        (tmp_path / "armed").touch()
        await wrapped.add_thing()
        assert await wrapped.link() == "read"
        (tmp_path / "fail-at").write_text("2")
        with pytest.raises(ShoalError, match="injected failure at step 2"):
            await wrapped.add_thing()

    asyncio.run(go())
    assert (tmp_path / "steps").read_text().splitlines() == ["1 kernel.add_thing", "2 kernel.add_thing"]
    assert target.calls == ["add", "add"]  # the failed step did not run
