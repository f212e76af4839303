"""The overlay data plane on real kernel objects: two "hosts" on an underlay, each with a
bridge, a vxlan device and a "container"; static entries only (kernel.vxlan).

Everything lives in namespaces made here (prefix `sht-vx`), deleted by name afterwards.
The underlay namespace holds a bridge with a veth to each host; a packet socket on host
A's underlay port sees every frame between the hosts.
"""

import asyncio
import json
import socket
import struct
import subprocess
from dataclasses import dataclass

import pytest

from shoal.kernel import Kernel, KernelError, Netlink
from shoal.kernel.sandbox import entered
from tests import netutil
from tests.conftest import delete_netns, is_root, new_netns

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root (network namespaces)")

VNI, PORT = 4242, 4789
VX, BR = "vx-test", "ov-test"
BUSYBOX = "/bin/busybox"


def ip(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True).stdout


def ip_json(netns: str, *args: str):
    return json.loads(ip(netns, "-j", *args) or "[]")


def mac_of(ipv4: str) -> str:
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ipv4.split("."))


def busybox_ping(netns: str, dst: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = ["nsenter", f"--net=/run/netns/{netns}", BUSYBOX, "ping", *extra, "-c", "1", "-W", "2", dst]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)


def df_ping(netns: str, dst: str, size: int) -> str:
    """One DF echo of `size` data bytes from the named namespace (tests.netutil)."""
    return netutil.df_ping(f"/run/netns/{netns}", dst, size)


@dataclass
class Frame:
    outer_len: int
    fragment: bool
    inner_type: int  # inner ethertype, 0 when not VXLAN
    inner_dst: str
    icmp6_type: int


def parse_frame(data: bytes) -> Frame | None:
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return None
    ihl = (data[14] & 0xF) * 4
    total, frag = struct.unpack("!H2xH", data[16:22])
    fragment = bool(frag & 0x3FFF)
    if data[23] != 17 or fragment:
        return Frame(total, fragment, 0, "", 0)
    udp = 14 + ihl
    if struct.unpack("!H", data[udp + 2:udp + 4])[0] != PORT:
        return Frame(total, fragment, 0, "", 0)
    inner = udp + 8 + 8
    inner_type = struct.unpack("!H", data[inner + 12:inner + 14])[0]
    icmp6 = data[inner + 14 + 40] if inner_type == 0x86DD and data[inner + 14 + 6] == 58 else 0
    return Frame(total, fragment, inner_type, ":".join(f"{b:02x}" for b in data[inner:inner + 6]), icmp6)


class Sniffer:
    """ETH_P_ALL on one link of a namespace; `frames()` drains what arrived."""

    def __init__(self, netns: str, link: str) -> None:
        with entered(f"/run/netns/{netns}"):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind((link, 0))
        self.sock.setblocking(False)

    def frames(self) -> list[Frame]:
        out = []
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return out
            if (frame := parse_frame(data)) is not None:
                out.append(frame)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Host:
    ns: str
    container: str
    underlay_ip: str
    container_ip: str
    container_ip6: str

    @property
    def container_mac(self) -> str:
        return mac_of(self.container_ip)


def build_host(nl: Netlink, host: Host, underlay: str, port: str) -> None:
    ip(underlay, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
    ip(underlay, "link", "set", port, "master", "ul0", "up")
    ip(host.ns, "addr", "add", f"{host.underlay_ip}/24", "dev", "eth0")
    ip(host.ns, "link", "set", "eth0", "up")
    nl.ensure_bridge(BR, mtu=1450, addresses=["10.90.0.1/24", "fd00:90::1/64"], alias="shoal:test:net:1")
    assert nl.ensure_vxlan(VX, vni=VNI, local=host.underlay_ip, mtu=1450, bridge=BR, alias="shoal:test:vx:1")
    ip(host.ns, "link", "add", "veth-c", "mtu", "1450", "master", BR, "type", "veth", "peer", "name", "eth0",
       "netns", host.container, "address", host.container_mac, "mtu", "1450")
    ip(host.ns, "link", "set", "veth-c", "up")
    ip(host.container, "addr", "add", f"{host.container_ip}/24", "dev", "eth0")
    ip(host.container, "addr", "add", f"{host.container_ip6}/64", "dev", "eth0", "nodad")
    ip(host.container, "link", "set", "eth0", "up")


@pytest.fixture
def overlay():
    names = [new_netns(f"vx{tag}") for tag in ("u", "a", "b", "ca", "cb")]
    underlay, a_ns, b_ns, ca, cb = names
    hosts = [Host(a_ns, ca, "192.0.2.1", "10.90.0.2", "fd00:90::2"),
             Host(b_ns, cb, "192.0.2.2", "10.90.0.3", "fd00:90::3")]
    nls: list[Netlink] = []
    sniffer = None
    try:
        ip(underlay, "link", "add", "ul0", "mtu", "1500", "type", "bridge")
        ip(underlay, "link", "set", "ul0", "up")
        for host, port in zip(hosts, ("ua", "ub")):
            nls.append(Netlink(host.ns))
            build_host(nls[-1], host, underlay, port)
        for nl, remote in ((nls[0], hosts[1]), (nls[1], hosts[0])):
            nl.neigh_replace(VX, remote.container_ip, remote.container_mac)
            nl.neigh_replace(VX, remote.container_ip6, remote.container_mac)
            nl.fdb_replace(VX, remote.container_mac, remote.underlay_ip)
        sniffer = Sniffer(underlay, "ua")
        yield hosts, nls, sniffer
    finally:
        if sniffer:
            sniffer.close()
        for nl in nls:
            nl.close()
        for name in names:
            delete_netns(name)


@pytest.fixture
def host():
    """One host: its underlay link eth0 holds 192.0.2.1 (eth1, its peer, is no bridge)."""
    name = new_netns("vxh")
    try:
        ip(name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        ip(name, "addr", "add", "192.0.2.1/24", "dev", "eth0")
        ip(name, "link", "set", "eth0", "up")
        yield name
    finally:
        delete_netns(name)


def test_containers_talk_across_hosts_without_arp_crossing(overlay):
    (a, b), (nl_a, _), sniffer = overlay
    done = busybox_ping(a.container, b.container_ip)
    assert done.returncode == 0, done.stdout + done.stderr
    frames = sniffer.frames()
    vxlan = [f for f in frames if f.inner_type]
    assert vxlan, "the ping did not go through VXLAN"
    assert not [f for f in vxlan if f.inner_type == 0x0806], "an ARP crossed hosts"
    assert {f.inner_dst for f in vxlan} <= {a.container_mac, b.container_mac}, "something was flooded"
    (entry,) = ip_json(a.container, "neigh", "show", b.container_ip)
    assert entry["lladdr"] == b.container_mac  # answered by A's vxlan proxy, from its neighbour entry
    assert ("00:00:00:00:00:00", b.underlay_ip) not in nl_a.fdb_entries(VX)
    assert nl_a.fdb_entries(VX) == [(b.container_mac, b.underlay_ip)]
    assert sorted(nl_a.neigh_entries(VX)) == [("10.90.0.3", b.container_mac), ("fd00:90::3", b.container_mac)]


def test_ipv6_inside_the_overlay(overlay):
    (a, b), _, sniffer = overlay
    done = busybox_ping(a.container, b.container_ip6, "-6")
    assert done.returncode == 0, done.stdout + done.stderr
    vxlan = [f for f in sniffer.frames() if f.inner_type]
    assert vxlan and not [f for f in vxlan if f.icmp6_type in (135, 136)], "neighbour discovery crossed hosts"


def test_mtu_1450_inside_1500_outside(overlay):
    (a, b), _, sniffer = overlay
    assert df_ping(a.container, b.container_ip, 1422) == "ok"
    outer = [f for f in sniffer.frames() if f.inner_type]
    assert 1500 in {f.outer_len for f in outer} and max(f.outer_len for f in outer) == 1500
    assert df_ping(a.container, b.container_ip, 1423) == "EMSGSIZE"
    assert not [f for f in sniffer.frames() if f.fragment], "the underlay fragmented"


def test_gateway_arp_is_answered_by_the_own_bridge(overlay):
    (a, _), (nl_a, _), sniffer = overlay
    done = busybox_ping(a.container, "10.90.0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    (entry,) = ip_json(a.container, "neigh", "show", "10.90.0.1")
    assert entry["lladdr"] == nl_a.link(BR).mac
    missing = busybox_ping(a.container, "10.90.0.77")  # nobody: its ARP must stay on host A
    assert missing.returncode != 0
    assert not [f for f in sniffer.frames() if f.inner_type], "gateway or unknown ARP went to the other host"
    assert all(mac != "00:00:00:00:00:00" for mac, _ in nl_a.fdb_entries(VX))


def test_entries_replace_delete_and_list(host):
    netns = host
    nl = Netlink(netns)
    try:
        nl.ensure_bridge(BR, mtu=1450, addresses=[], alias="a")
        nl.ensure_vxlan(VX, vni=VNI, local="192.0.2.1", mtu=1450, bridge=BR, alias="x")
        mac = "02:42:0a:5a:00:03"
        nl.fdb_replace(VX, mac, "192.0.2.2")
        nl.fdb_replace(VX, mac.upper(), "192.0.2.3")  # the container moved to another host
        assert nl.fdb_entries(VX) == [(mac, "192.0.2.3")]
        nl.fdb_delete(VX, mac, "192.0.2.2")  # the old VTEP's delete arrives late: the entry stays
        assert nl.fdb_entries(VX) == [(mac, "192.0.2.3")]
        nl.fdb_delete(VX, mac)
        nl.fdb_delete(VX, mac)
        nl.fdb_delete("sht-none", mac)
        assert nl.fdb_entries(VX) == [] and nl.fdb_entries("sht-none") == []
        nl.neigh_replace(VX, "10.90.0.3", mac)
        nl.neigh_replace(VX, "10.90.0.3", "02:42:0a:5a:00:09")
        nl.neigh_replace(VX, "fd00:90::3", mac)
        assert sorted(nl.neigh_entries(VX)) == [("10.90.0.3", "02:42:0a:5a:00:09"), ("fd00:90::3", mac)]
        nl.neigh_delete(VX, "10.90.0.3")
        nl.neigh_delete(VX, "10.90.0.3")
        assert nl.neigh_entries(VX) == [("fd00:90::3", mac)]
        with pytest.raises(KernelError, match="not found"):
            nl.fdb_replace("sht-none", mac, "192.0.2.2")
    finally:
        nl.close()


def test_reads_ignore_other_devices_entries(host):
    """Another vxlan with many entries: ours lists only its own (the kernel filters)."""
    netns = host
    nl = Netlink(netns)
    try:
        nl.ensure_bridge(BR, mtu=1450, addresses=[], alias="a")
        for name, vni in ((VX, VNI), ("vx-other", 7)):
            nl.ensure_vxlan(name, vni=vni, local="192.0.2.1", mtu=1450, bridge=BR, alias="x")
        batch = [f"neigh add 10.1.{i // 250}.{i % 250 + 1} lladdr 02:42:0a:01:{i // 250:02x}:{i % 250 + 1:02x} "
                 "dev vx-other nud permanent" for i in range(1000)]
        subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True)
        fdb = [f"fdb add 02:42:0a:01:{i // 250:02x}:{i % 250 + 1:02x} dev vx-other dst 192.0.2.9 self permanent"
               for i in range(1000)]
        subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "bridge", "-batch", "-"],
                       input="\n".join(fdb) + "\n", text=True, check=True)
        nl.fdb_replace(VX, "02:42:0a:5a:00:03", "192.0.2.2")
        nl.neigh_replace(VX, "10.90.0.3", "02:42:0a:5a:00:03")
        assert nl.fdb_entries(VX) == [("02:42:0a:5a:00:03", "192.0.2.2")]
        assert nl.neigh_entries(VX) == [("10.90.0.3", "02:42:0a:5a:00:03")]
        assert len(nl.fdb_entries("vx-other")) == 1000 and len(nl.neigh_entries("vx-other")) == 1000
    finally:
        nl.close()


def test_ensure_vxlan_repairs_and_is_idempotent(host):
    netns = host

    async def go():
        k = Kernel(netns)
        try:
            await k.ensure_bridge(BR, mtu=1450, addresses=[], alias="a")
            kw = {"vni": VNI, "local": "192.0.2.1", "mtu": 1450, "bridge": BR, "alias": "shoal:t:vx:1",
                  "mac": "02:00:00:00:42:01"}
            assert await k.ensure_vxlan(VX, **kw) is True
            assert await k.ensure_vxlan(VX, **kw) is False
            (link,) = ip_json(netns, "-d", "link", "show", VX)
            data = link["linkinfo"]["info_data"]
            assert (data["id"], data["local"], data["port"]) == (VNI, "192.0.2.1", PORT)
            assert data["learning"] is False and data["proxy"] is True
            assert not data.get("l2miss") and not data.get("l3miss")
            assert link["master"] == BR and link["mtu"] == 1450 and link["address"] == "02:00:00:00:42:01"
            assert link["ifalias"] == "shoal:t:vx:1" and "UP" in link["flags"]
            await k.fdb_replace(VX, "02:42:0a:5a:00:03", "192.0.2.2")
            ip(netns, "link", "set", VX, "down")
            ip(netns, "link", "set", VX, "nomaster")
            ip(netns, "link", "set", VX, "mtu", "1400")
            assert await k.ensure_vxlan(VX, **kw) is False  # repaired in place: entries kept
            (link,) = ip_json(netns, "-d", "link", "show", VX)
            assert link["master"] == BR and link["mtu"] == 1450 and "UP" in link["flags"]
            assert await k.fdb_entries(VX) == [("02:42:0a:5a:00:03", "192.0.2.2")]
            assert await k.ensure_vxlan(VX, **{**kw, "vni": VNI + 1}) is True  # remade: the caller reprograms
            assert ip_json(netns, "-d", "link", "show", VX)[0]["linkinfo"]["info_data"]["id"] == VNI + 1
            assert await k.fdb_entries(VX) == []
            assert (await k.device_of_address("192.0.2.1")).name == "eth0"
            assert await k.device_of_address("192.0.2.99") is None
            assert await k.address_of_device("eth0") == "192.0.2.1"
            assert await k.address_of_device("eth1") == ""
        finally:
            k.close()
    asyncio.run(go())


def test_vxlan_that_cannot_be_made_leaves_nothing(host):
    netns = host
    nl = Netlink(netns)
    try:
        nl.ensure_bridge(BR, mtu=1450, addresses=[], alias="a")
        before = sorted(link["ifname"] for link in ip_json(netns, "link"))
        kw = {"vni": VNI, "mtu": 1450, "bridge": BR, "alias": "x"}
        for local, message in (("224.0.0.1", "local address"), ("192.0.2.77", "not on any link"),
                               ("bogus", "invalid IP")):
            with pytest.raises(KernelError, match=message):
                nl.ensure_vxlan(VX, local=local, **kw)
        with pytest.raises(KernelError, match="bridge sht-none not found"):
            nl.ensure_vxlan(VX, local="192.0.2.1", **{**kw, "bridge": "sht-none"})
        with pytest.raises(KernelError, match="failed to set up vxlan"):  # eth1 is no bridge: made, then undone
            nl.ensure_vxlan(VX, local="192.0.2.1", **{**kw, "bridge": "eth1"})
        with pytest.raises(KernelError, match="failed to create vxlan"):
            nl.ensure_vxlan(VX, local="192.0.2.1", **{**kw, "mtu": 70000})
        assert sorted(link["ifname"] for link in ip_json(netns, "link")) == before
        ip(netns, "link", "add", "vx-busy", "type", "vxlan", "id", "9", "local", "192.0.2.1", "dstport", "4789")
        with pytest.raises(KernelError, match="is not shoal's"):  # someone else's: never deleted
            nl.ensure_vxlan("vx-busy", local="192.0.2.1", **kw)
        with pytest.raises(KernelError, match="veth link named eth1"):
            nl.ensure_vxlan("eth1", local="192.0.2.1", **kw)
        assert nl.link("vx-busy") is not None and nl.link("eth1") is not None
    finally:
        nl.close()
