"""docker network create -d macvlan against a real shoald in a throwaway host namespace.

The "LAN" is a veth pair: `shm-up0` in shoald's host namespace is the parent, its peer
`shm-up1` sits in an upstream namespace of the test's own holding 10.77.0.254, the
router containers route through. No traffic leaves the test's namespaces.
"""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from .conftest import needs_docker

pytestmark = needs_docker
GW = "10.77.0.254"


def _ns(netns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=False)


@pytest.fixture
def lan(box):
    """`box` (shoald with busybox) plus the upstream namespace at the far end of shm-up0."""
    up = f"shm-up{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", up], check=True)
    try:
        cmds = [["ip", "-n", box.netns, "link", "add", "shm-up0", "type", "veth", "peer", "name", "shm-up1"],
                ["ip", "-n", box.netns, "link", "set", "shm-up1", "netns", up],
                ["ip", "-n", box.netns, "link", "set", "shm-up0", "up"],
                ["ip", "-n", up, "addr", "add", f"{GW}/24", "dev", "shm-up1"],
                ["ip", "-n", up, "link", "set", "shm-up1", "up"],
                ["ip", "-n", up, "link", "set", "lo", "up"]]
        for cmd in cmds:
            subprocess.run(cmd, check=True)
        yield box, up
    finally:
        box.remove_containers()
        subprocess.run(["ip", "netns", "delete", up], capture_output=True, check=False)


def ping(d, name: str, target: str) -> bool:
    return d.docker("exec", name, "ping", "-c1", "-W2", target, check=False).returncode == 0


def macvlan_links(d) -> list[str]:
    return [link["ifname"] for link in d.ip("-d", "link")
            if link.get("linkinfo", {}).get("info_kind") in ("macvlan", "vlan")]


def test_containers_on_a_macvlan_network_reach_each_other_and_the_lan(lan):
    d, up = lan
    parent_before = d.link("shm-up0")
    d.docker("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "--gateway", GW,
             "-o", "parent=shm-up0", "shm-mv")
    d.docker("run", "-d", "--name", "shm-a", "--network", "shm-mv", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "shm-b", "--network", "shm-mv", "-p", "8080:80", "busybox", "sleep", "600")
    assert ping(d, "shm-a", "10.77.0.2") and ping(d, "shm-b", "10.77.0.1")
    assert ping(d, "shm-a", "shm-b")  # the embedded DNS works on a macvlan network too
    assert ping(d, "shm-a", GW) and ping(d, "shm-b", GW)
    assert d.docker("exec", "shm-a", "ip", "route").stdout.splitlines()[0].startswith(f"default via {GW} dev eth0")
    assert _ns(up, "ip", "neigh", "show", "10.77.0.1").stdout.split()[4] == "02:42:0a:4d:00:01"

    net = json.loads(d.docker("network", "inspect", "shm-mv").stdout)[0]
    assert (net["Driver"], net["Scope"], net["Options"], net["Internal"]) == ("macvlan", "local",
                                                                             {"parent": "shm-up0"}, False)
    assert net["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": GW}]
    assert {c["Name"]: (c["IPv4Address"], c["MacAddress"]) for c in net["Containers"].values()} == {
        "shm-a": ("10.77.0.1/24", "02:42:0a:4d:00:01"), "shm-b": ("10.77.0.2/24", "02:42:0a:4d:00:02")}
    ep = json.loads(d.docker("inspect", "shm-a").stdout)[0]["NetworkSettings"]["Networks"]["shm-mv"]
    assert (ep["Gateway"], ep["IPAddress"], ep["IPPrefixLen"], ep["MacAddress"]) == (
        GW, "10.77.0.1", 24, "02:42:0a:4d:00:01")
    assert macvlan_links(d) == []  # the ports live in the containers; nothing holds the gateway here
    assert not any(GW in a.get("local", "") for link in d.ip("addr") for a in link.get("addr_info", []))
    assert d.shoal("system", "check").stdout == "no problems found\n"

    d.restart()  # restore: the network comes back, running containers keep their ports
    assert ping(d, "shm-a", "10.77.0.2") and ping(d, "shm-b", GW)
    assert d.shoal("system", "check").stdout == "no problems found\n"
    p = d.docker("network", "create", "-d", "macvlan", "--subnet", "10.78.0.0/24", "-o", "parent=shm-up0",
                 "shm-mv2", check=False)
    assert p.returncode != 0 and f"network dm-{net['Id'][:12]} is already using parent interface shm-up0" in p.stderr

    d.docker("rm", "-f", "shm-a", "shm-b")
    d.docker("network", "rm", "shm-mv")
    after = d.link("shm-up0")
    assert after is not None and "UP" in after["flags"] and after["address"] == parent_before["address"]
    assert macvlan_links(d) == [] and d.shoal("system", "check").stdout == "no problems found\n"


def test_private_mode_isolates_containers_and_passthru_takes_one(lan):
    d, _ = lan
    d.docker("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "--gateway", GW,
             "-o", "parent=shm-up0", "-o", "macvlan_mode=private", "shm-mv")
    d.docker("run", "-d", "--name", "shm-a", "--network", "shm-mv", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "shm-b", "--network", "shm-mv", "busybox", "sleep", "600")
    assert ping(d, "shm-a", GW) and not ping(d, "shm-a", "10.77.0.2")
    d.docker("rm", "-f", "shm-a", "shm-b")
    d.docker("network", "rm", "shm-mv")

    mac = d.link("shm-up0")["address"]
    d.docker("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "--gateway", GW,
             "-o", "parent=shm-up0", "-o", "macvlan_mode=passthru", "shm-pt")
    d.docker("run", "-d", "--name", "shm-a", "--network", "shm-pt", "busybox", "sleep", "600")
    assert ping(d, "shm-a", GW)
    p = d.docker("run", "-d", "--name", "shm-b", "--network", "shm-pt", "busybox", "sleep", "600", check=False)
    assert p.returncode != 0 and "passthru mode: its parent shm-up0 takes one container only" in p.stderr
    inspect = json.loads(d.docker("inspect", "shm-a").stdout)[0]["NetworkSettings"]["Networks"]["shm-pt"]
    assert inspect["MacAddress"] == mac  # a passthru port keeps its parent's MAC
    d.docker("rm", "-f", "shm-a", "shm-b")
    d.docker("network", "rm", "shm-pt")
    assert d.link("shm-up0")["address"] == mac and macvlan_links(d) == []


def test_internal_without_a_parent_gets_a_parent_of_its_own(make_shoald, busybox_tar):
    d = make_shoald(extra=["--self-heal-interval", "0"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    nid = d.docker("network", "create", "-d", "macvlan", "--internal", "--subnet", "10.79.0.0/24",
                   "shm-in").stdout.strip()
    dm = d.link(f"dm-{nid[:12]}")
    assert dm is not None and dm["linkinfo"]["info_kind"] in ("dummy", "ifb") and "UP" in dm["flags"]
    d.docker("run", "-d", "--name", "shm-a", "--network", "shm-in", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "shm-b", "--network", "shm-in", "busybox", "sleep", "600")
    assert ping(d, "shm-a", "10.79.0.3")  # .1 is the (unused) gateway
    assert "default" not in d.docker("exec", "shm-a", "ip", "route").stdout
    assert d.shoal("system", "check").stdout == "no problems found\n"

    subprocess.run(["ip", "-n", d.netns, "link", "del", f"dm-{nid[:12]}"], check=True)
    data = json.loads(d.shoal("system", "check", "--format", "json", check=False).stdout)
    assert f"parent interface dm-{nid[:12]} is missing" in {f["Problem"] for f in data["Findings"]}
    assert d.shoal("system", "check", "--repair").stdout.endswith("no problems found\n")
    assert ping(d, "shm-a", "10.79.0.3")

    d.docker("rm", "-f", "shm-a", "shm-b")
    d.docker("network", "rm", "shm-in")
    assert d.link(f"dm-{nid[:12]}") is None


def test_what_this_kernel_lacks_is_said_clearly_and_leaves_nothing(lan):
    d, _ = lan
    p = d.docker("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "-o", "parent=shm-up0.10",
                 "shm-vl", check=False)
    assert p.returncode != 0 and "this kernel has no 8021q (VLAN) support" in p.stderr
    assert d.link("shm-up0.10") is None and "shm-vl" not in d.docker("network", "ls").stdout
    p = d.docker("network", "create", "-d", "macvlan", "-o", "parent=shm-nope", "shm-x", check=False)
    assert p.returncode != 0 and "invalid subinterface vlan name shm-nope" in p.stderr
    status, body = d.api("POST", "/networks/create", {"Name": "shm-iv", "Driver": "ipvlan",
                                                      "Options": {"parent": "shm-up0"}})
    assert status == 403 and "this kernel has none (no ipvlan module)" in body["message"]
    d.docker("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "-o", "parent=shm-up0", "shm-ok")
    d.docker("network", "rm", "shm-ok")
