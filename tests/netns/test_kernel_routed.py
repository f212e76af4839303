"""kernel.routed against real namespaces: a routed veth (both ends as drivers.routed wants
them), all-or-nothing on failure, and the clean-up of BIRD's routes into routed pools."""

import json
import subprocess

import pytest

from shoal.kernel import KernelError, Netlink
from tests.conftest import delete_netns, new_netns


def ip_json(ns, *args):
    out = subprocess.run(["ip", "-n", ns, "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out or "[]")


@pytest.fixture
def sandbox(netns):
    name = new_netns()
    try:
        yield name
    finally:
        delete_netns(name)


def test_a_routed_veth_is_plumbed_on_both_ends(netns, sandbox):
    nl = Netlink(netns)
    try:
        nl.add_routed_veth("rt000001abcde", "eth0", f"/run/netns/{sandbox}", mac="02:42:0a:40:00:05", mtu=1500,
                           alias="shoal:x:ep:1", addresses=["10.64.0.5/16"], default_route=True, routes=[])
        (host,) = ip_json(netns, "link", "show", "rt000001abcde")
        assert host["address"] == "ee:ee:ee:ee:ee:ee" and "UP" in host["flags"] and host["ifalias"] == "shoal:x:ep:1"
        routes = ip_json(netns, "route", "show", "10.64.0.5")
        assert routes and routes[0]["dev"] == "rt000001abcde" and routes[0]["scope"] == "link"
        for key, want in (("net/ipv4/conf/rt000001abcde/proxy_arp", "1"),
                          ("net/ipv4/neigh/rt000001abcde/proxy_delay", "0")):
            got = subprocess.run(["ip", "netns", "exec", netns, "cat", f"/proc/sys/{key}"], capture_output=True,
                                 text=True).stdout.strip()
            assert got == want, key
        (inside,) = ip_json(sandbox, "addr", "show", "eth0")
        assert inside["address"] == "02:42:0a:40:00:05"
        assert [(a["local"], a["prefixlen"]) for a in inside["addr_info"] if a["family"] == "inet"] == [("10.64.0.5", 32)]
        table = {r["dst"]: r for r in ip_json(sandbox, "route")}
        assert table["default"]["gateway"] == "169.254.1.1" and table["169.254.1.1"]["scope"] == "link"
        neigh = ip_json(sandbox, "neigh", "show", "169.254.1.1")
        assert neigh[0]["lladdr"] == "ee:ee:ee:ee:ee:ee" and "PERMANENT" in neigh[0]["state"]
    finally:
        nl.close()


def test_without_the_default_route_the_pools_go_via_the_gateway(netns, sandbox):
    nl = Netlink(netns)
    try:
        nl.add_routed_veth("rt000002abcde", "eth1", f"/run/netns/{sandbox}", mac="", mtu=1500, alias="shoal:x:ep:2",
                           addresses=["10.65.0.9/16"], default_route=False, routes=["10.65.0.0/16"])
        table = {r["dst"]: r for r in ip_json(sandbox, "route")}
        assert "default" not in table and table["10.65.0.0/16"]["gateway"] == "169.254.1.1"
    finally:
        nl.close()


def test_a_failure_inside_leaves_no_veth(netns, sandbox):
    nl = Netlink(netns)
    try:
        with pytest.raises(KernelError, match="failed to configure eth0"):  # the second add: EEXIST
            nl.add_routed_veth("rt000003abcde", "eth0", f"/run/netns/{sandbox}", mac="", mtu=1500, alias="a",
                               addresses=["10.64.0.7/16", "10.64.0.7/24"], default_route=True, routes=[])
        assert nl.link("rt000003abcde") is None
        assert not ip_json(netns, "route", "show", "10.64.0.7")
    finally:
        nl.close()


def test_only_birds_routes_inside_routed_pools_are_cleaned_up(netns):
    subprocess.run(["ip", "-n", netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1"], check=True)
    for argv in (["link", "set", "d0", "up"], ["link", "set", "d1", "up"], ["addr", "add", "198.18.7.1/24", "dev", "d0"],
                 ["route", "add", "10.64.3.0/26", "via", "198.18.7.2", "proto", "bird"],
                 ["route", "add", "blackhole", "10.64.4.0/26", "proto", "bird"],
                 ["route", "add", "10.99.0.0/24", "via", "198.18.7.2", "proto", "bird"],
                 ["route", "add", "10.64.5.0/26", "via", "198.18.7.2"]):
        subprocess.run(["ip", "-n", netns, *argv], check=True)
    nl = Netlink(netns)
    try:
        assert sorted(nl.routes_of_proto(12)) == [("10.64.3.0/26", "198.18.7.2", "unicast"),
                                                  ("10.64.4.0/26", "", "blackhole"),
                                                  ("10.99.0.0/24", "198.18.7.2", "unicast")]
        assert nl.delete_routes_inside(12, ["10.64.0.0/16"]) == 2
        assert nl.routes_of_proto(12) == [("10.99.0.0/24", "198.18.7.2", "unicast")]
        assert any(r["dst"] == "10.64.5.0/26" for r in ip_json(netns, "route"))  # not BIRD's: kept
    finally:
        nl.close()
