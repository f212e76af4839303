"""shoal's nftables ruleset on real packets, in namespaces this module creates.

Topology (all names start with `shfw-`, suffixed per run; deleted by exact name):

    upstream ns  eth0 10.200.0.2 / fd00:200::2, routes to 10.201/16 and fd00:201::/32 via the host
         |
    host ns      shfw-up 10.200.0.1 / fd00:200::1   ("beyond the host" is the upstream ns)
                 shfw-b1 10.201.1.1 / fd00:201:1::1   ports shfw-v1 (c1 .2), shfw-v2 (c2 .3), shfw-v4 (c4 .4)
                 shfw-b2 10.201.2.1 / fd00:201:2::1   ports shfw-v3 (c3 .2), shfw-v5 (c4 .4)

c4 is attached to both networks (eth0 on b1, eth1 on b2), like `docker network connect`.

Every container and the upstream run busybox httpd on :80 (c2 also on :81); `/` answers
the server's name, `/cgi-bin/ip` the client address it saw. The ruleset is applied in the
host namespace through `nsenter --net=/run/netns/<host> nft -f -`, as the daemon would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from shoal.firewall import (EndpointConfig, NetworkConfig, Nft, NftFirewall, PortMapping, State,
                            bridge_port_flags, required_sysctls)

pytestmark = pytest.mark.netns

B1 = NetworkConfig("shfw-b1", ("10.201.1.0/24",), ("fd00:201:1::/64",))
B2 = NetworkConfig("shfw-b2", ("10.201.2.0/24",), ("fd00:201:2::/64",))
C1, C2, C3 = "10.201.1.2", "10.201.1.3", "10.201.2.2"
C1_6, C2_6, C3_6 = "fd00:201:1::2", "fd00:201:1::3", "fd00:201:2::2"
C4_B1, C4_B2 = "10.201.1.4", "10.201.2.4"
ENDPOINTS = tuple(EndpointConfig(bridge, port, addresses) for bridge, port, addresses in (
    ("shfw-b1", "shfw-v1", (C1, C1_6)), ("shfw-b1", "shfw-v2", (C2, C2_6)), ("shfw-b2", "shfw-v3", (C3, C3_6)),
    ("shfw-b1", "shfw-v4", (C4_B1, "fd00:201:1::4")), ("shfw-b2", "shfw-v5", (C4_B2, "fd00:201:2::4"))))
HOST, HOST_6, UP, UP_6 = "10.200.0.1", "fd00:200::1", "10.200.0.2", "fd00:200::2"
WEB = (
    PortMapping("tcp", 8080, C1, 80, "shfw-b1"),
    PortMapping("tcp", 8080, C1_6, 80, "shfw-b1"),
    PortMapping("tcp", 9000, C2, 80, "shfw-b1", count=2),
    PortMapping("tcp", 8082, C1, 80, "shfw-b1", host_ip="127.0.0.1"),
)


def sh(ns: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True,
                          timeout=timeout)


def must(ns: str, *argv: str) -> None:
    proc = sh(ns, *argv)
    assert proc.returncode == 0, f"{' '.join(argv)} in {ns}: {proc.stderr}"


class Topology:
    """The namespaces, servers and a firewall bound to the host namespace."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.host, self.up = f"shfw-h-{tag}", f"shfw-u-{tag}"
        self.c = {name: f"shfw-{name}-{tag}" for name in ("c1", "c2", "c3", "c4")}
        self.namespaces = [self.host, self.up, *self.c.values()]
        self.servers: list[subprocess.Popen] = []
        self.www = Path(tempfile.mkdtemp(prefix="shfw-www-"))
        self.nft = Nft(prefix=("nsenter", f"--net=/run/netns/{self.host}"))
        self.firewall = NftFirewall(self.nft)

    # --- building ---------------------------------------------------------------------
    def build(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            must(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
            must(ns, "ip", "link", "set", "lo", "up")
        for bridge, v4, v6 in (("shfw-b1", "10.201.1.1/24", "fd00:201:1::1/64"),
                               ("shfw-b2", "10.201.2.1/24", "fd00:201:2::1/64")):
            must(self.host, "ip", "link", "add", bridge, "type", "bridge")
            self._addresses(self.host, bridge, v4, v6)
        self._attach("c1", "shfw-v1", "eth0", "shfw-b1", C1, C1_6)
        self._attach("c2", "shfw-v2", "eth0", "shfw-b1", C2, C2_6)
        self._attach("c3", "shfw-v3", "eth0", "shfw-b2", C3, C3_6)
        self._attach("c4", "shfw-v4", "eth0", "shfw-b1", C4_B1, "fd00:201:1::4")
        self._attach("c4", "shfw-v5", "eth1", "shfw-b2", C4_B2, "fd00:201:2::4")
        for name in ("c1", "c2", "c3"):
            self.serve(self.c[name], name, 80)
        self.serve(self.c["c2"], "c2-81", 81)
        self._upstream()

    def _addresses(self, ns: str, dev: str, v4: str, v6: str) -> None:
        must(ns, "ip", "addr", "add", v4, "dev", dev)
        must(ns, "ip", "addr", "add", v6, "dev", dev, "nodad")
        must(ns, "ip", "link", "set", dev, "up")

    def _attach(self, name: str, port: str, ifname: str, bridge: str, v4: str, v6: str) -> None:
        """A veth from the bridge into the container; the first interface gets the routes."""
        ns = self.c[name]
        must(self.host, "ip", "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
        must(self.host, "ip", "link", "set", port, "master", bridge, "up")
        self._addresses(ns, ifname, f"{v4}/24", f"{v6}/64")
        if ifname == "eth0":
            must(ns, "ip", "route", "add", "default", "via", v4.rsplit(".", 1)[0] + ".1")
            must(ns, "ip", "-6", "route", "add", "default", "via", v6.rsplit(":", 1)[0] + ":1")

    def _upstream(self) -> None:
        must(self.host, "ip", "link", "add", "shfw-up", "type", "veth", "peer", "name", "eth0", "netns", self.up)
        self._addresses(self.host, "shfw-up", f"{HOST}/24", f"{HOST_6}/64")
        self._addresses(self.up, "eth0", f"{UP}/24", f"{UP_6}/64")
        must(self.up, "ip", "route", "add", "10.201.0.0/16", "via", HOST)
        must(self.up, "ip", "-6", "route", "add", "fd00:201::/32", "via", HOST_6)
        self.serve(self.up, "upstream", 80)

    def serve(self, ns: str, name: str, port: int) -> None:
        root = self.www / name
        (root / "cgi-bin").mkdir(parents=True)
        (root / "index.html").write_text(name + "\n")
        cgi = root / "cgi-bin" / "ip"
        cgi.write_text('#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n')
        cgi.chmod(0o755)
        self.servers.append(subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", "busybox", "httpd", "-f", "-p", str(port), "-h", str(root)]))
        deadline = time.monotonic() + 5
        while fetch(ns, f"http://127.0.0.1:{port}/") != name:
            assert time.monotonic() < deadline, f"httpd {name} did not start"
            time.sleep(0.05)

    def teardown(self) -> None:
        for proc in self.servers:
            proc.terminate()
            proc.wait(timeout=5)
        for ns in self.namespaces:
            assert ns.startswith("shfw-")
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        shutil.rmtree(self.www, ignore_errors=True)

    # --- using ------------------------------------------------------------------------
    def apply(self, state: State) -> None:
        """What the kernel layer and controller would do: settings, then the whole ruleset."""
        for key, value in required_sysctls(state).items():
            must(self.host, "sysctl", "-qw", f"{key}={value}")
        for ep in state.endpoints:
            flags = [word for item in bridge_port_flags(ep).items() for word in item]
            must(self.host, "ip", "link", "set", "dev", ep.port, "type", "bridge_slave", *flags)
        asyncio.run(self.firewall.apply_state(state))

    def canonical(self) -> list:
        """Both tables as JSON with each set's elements sorted: the kernel lists a
        concatenated interval set in insertion order, which a rebuild does not preserve."""
        out = []
        for family in ("inet", "bridge"):
            listed = json.loads(sh(self.host, "nft", "-j", "list", "table", family, "shoal").stdout)["nftables"]
            for item in listed:
                for body in item.values():
                    if isinstance(body, dict) and "elem" in body:
                        body["elem"] = sorted(body["elem"], key=json.dumps)
                    if isinstance(body, dict):
                        body.pop("handle", None)
            out.append(listed)
        return out


@pytest.fixture(scope="module")
def topo():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    for tool in ("nft", "busybox", "nsenter"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool}")
    topo = Topology()
    try:
        topo.build()
        yield topo
    finally:
        topo.teardown()


def ping(ns: str, addr: str) -> bool:
    return sh(ns, "busybox", "ping", "-c1", "-W1", addr).returncode == 0


def fetch(ns: str, url: str, timeout: float = 1.5) -> str | None:
    """The body, or None when the connection fails: refused, or dropped (no answer within
    `timeout`; busybox wget's own -T crashes in this build, so the process is killed)."""
    try:
        proc = sh(ns, "busybox", "wget", "-q", "-O", "-", url, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def seen_as(ns: str, url: str) -> str | None:
    """The client address the server saw (httpd is dual-stack: `[::ffff:10.0.0.1]`)."""
    body = fetch(ns, url)
    return body.strip("[]").removeprefix("::ffff:") if body else None


# --- isolation ----------------------------------------------------------------------------

def test_within_a_bridge_passes_across_bridges_dropped(topo):
    c1, c2, c3, c4 = topo.c.values()
    topo.apply(State((B1, B2), ENDPOINTS))
    asyncio.run(topo.firewall.cleanup())
    assert ping(c1, C3), "without shoal's tables the host routes between the bridges"
    topo.apply(State((B1, B2), ENDPOINTS))
    assert ping(c1, C2) and ping(c1, C2_6)
    assert ping(c1, "10.201.1.1")
    assert not ping(c1, C3) and not ping(c3, C1)
    assert not ping(c1, C3_6) and not ping(c3, C1_6)
    assert fetch(c3, f"http://{C1}/") is None
    assert fetch(c1, f"http://[{C3_6}]/") is None
    # a container on both networks reaches each over that network's own bridge
    assert ping(c4, C1) and ping(c4, C3) and fetch(c4, f"http://{C3}/") == "c3"
    assert fetch(c3, f"http://{C4_B1}/") is None, "but not the other network's side of it"


@pytest.mark.parametrize("br_netfilter", ["1", "0"])
def test_icc_off_drops_traffic_between_containers(topo, br_netfilter):
    """With br_netfilter the inet `icc` vmap sees bridged packets; without it, only the
    bridge table does. Both paths must drop."""
    c1 = topo.c["c1"]
    knobs = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
    try:
        must(topo.host, "sysctl", "-qw", *(f"{k}={br_netfilter}" for k in knobs))
        topo.apply(State((replace(B1, icc=False), B2), ENDPOINTS))
        assert not ping(c1, C2) and not ping(c1, C2_6)
        assert fetch(c1, f"http://{C2}/") is None
        assert ping(c1, "10.201.1.1"), "the gateway stays reachable"
        assert fetch(c1, f"http://{UP}/") == "upstream", "egress stays open"
    finally:
        must(topo.host, "sysctl", "-qw", *(f"{k}=1" for k in knobs))


def test_internal_network_has_no_way_out_or_in(topo):
    c1, c2 = topo.c["c1"], topo.c["c2"]
    topo.apply(State((replace(B1, internal=True), B2), ENDPOINTS, (WEB[0],)))
    assert ping(c1, C2) and ping(c1, C2_6), "containers still talk to each other"
    assert ping(c1, "10.201.1.1"), "and to their gateway"
    assert not ping(c1, UP) and not ping(c1, UP_6)
    assert not ping(topo.up, C1)
    assert fetch(topo.up, f"http://{HOST}:8080/") is None, "no published ports on internal networks"


# --- NAT ----------------------------------------------------------------------------------

def test_egress_is_masqueraded_only_where_enabled(topo):
    c1, c3 = topo.c["c1"], topo.c["c3"]
    topo.apply(State((B1, replace(B2, masquerade=False)), ENDPOINTS))
    assert seen_as(c1, f"http://{UP}/cgi-bin/ip") == HOST
    assert seen_as(c1, f"http://[{UP_6}]/cgi-bin/ip") == HOST_6
    assert seen_as(c3, f"http://{UP}/cgi-bin/ip") == C3, "upstream routes back to the subnet"


def test_published_ports(topo):
    c1, c2, c3, _ = topo.c.values()
    topo.apply(State((B1, B2), ENDPOINTS, WEB))
    # from beyond the host: client address preserved, ranges, IPv6
    assert fetch(topo.up, f"http://{HOST}:8080/") == "c1"
    assert seen_as(topo.up, f"http://{HOST}:8080/cgi-bin/ip") == UP
    assert fetch(topo.up, f"http://{HOST}:9000/") == "c2"
    assert fetch(topo.up, f"http://{HOST}:9001/") == "c2-81"
    assert fetch(topo.up, f"http://[{HOST_6}]:8080/") == "c1"
    # from the host itself, on its address and on loopback (output hook, route_localnet)
    assert fetch(topo.host, f"http://{HOST}:8080/") == "c1"
    assert fetch(topo.host, "http://127.0.0.1:8080/") == "c1"
    assert fetch(topo.host, "http://127.0.0.1:8082/") == "c1"
    assert fetch(topo.up, f"http://{HOST}:8082/") is None, "published on 127.0.0.1 only"
    # hairpin from the same bridge (masqueraded to the gateway), from itself, from another bridge
    assert seen_as(c2, f"http://{HOST}:8080/cgi-bin/ip") == "10.201.1.1"
    assert fetch(c1, f"http://{HOST}:8080/") == "c1"
    assert fetch(c3, f"http://{HOST}:8080/") == "c1"


def test_unpublished_and_direct_access_dropped(topo):
    topo.apply(State((B1, B2), ENDPOINTS, WEB))
    assert fetch(topo.up, f"http://{C1}/") is None, "container address, published container port"
    assert fetch(topo.up, f"http://{C2}:81/") is None
    assert fetch(topo.up, f"http://[{C1_6}]/") is None
    assert not ping(topo.up, C1)
    assert fetch(topo.up, f"http://{HOST}:8081/") is None, "nothing published there"


# --- incremental == full ------------------------------------------------------------------

def test_incremental_changes_equal_a_full_rebuild(topo):
    fw = topo.firewall
    icc_off = replace(B1, icc=False)

    async def steps():
        await fw.apply_state(State((B2,)))
        await fw.add_network(B1)
        for ep in ENDPOINTS:
            await fw.add_endpoint(ep)
        await fw.add_ports(WEB)
        await fw.remove_ports(WEB[2:3])
        await fw.add_network(icc_off)
        await fw.add_ports([PortMapping("udp", 5353, C3, 53, "shfw-b2", count=2)])
        await fw.remove_endpoint(ENDPOINTS[1])

    asyncio.run(steps())
    assert fetch(topo.up, f"http://{HOST}:8080/") == "c1", "incremental batches work on live traffic"
    incremental = topo.canonical()
    asyncio.run(fw.apply_state(fw.state))
    assert topo.canonical() == incremental
    asyncio.run(fw.remove_network("shfw-b1"))
    asyncio.run(fw.remove_network("shfw-b2"))
    emptied = topo.canonical()
    asyncio.run(fw.apply_state(State()))
    assert topo.canonical() == emptied


def test_cleanup_removes_both_tables(topo):
    topo.apply(State((B1,), ENDPOINTS[:2]))
    asyncio.run(topo.firewall.cleanup())
    assert sh(topo.host, "nft", "list", "tables").stdout == ""
    assert topo.nft.list_table("inet") == ""
    asyncio.run(topo.firewall.cleanup())  # idempotent


def test_containers_cannot_use_route_localnet_to_reach_host_loopback(topo):
    """route_localnet=1 on a bridge (for 127.0.0.1 publishing) would accept packets from a
    container addressed to 127.0.0.0/8; the guard chain drops them. c3 plays the attacker:
    loopback address removed, 127.0.0.0/8 routed to its gateway."""
    c3 = topo.c["c3"]
    topo.serve(topo.host, "host-loopback", 8099)
    topo.apply(State((B1, B2), ENDPOINTS))
    try:
        must(c3, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1")
        must(c3, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo")
        must(c3, "ip", "route", "add", "127.0.0.0/8", "via", "10.201.2.1")
        assert fetch(c3, "http://127.0.0.1:8099/") is None
        must(topo.host, "nft", "flush", "chain", "inet", "shoal", "guard")
        assert fetch(c3, "http://127.0.0.1:8099/") == "host-loopback", "without the guard it would work"
    finally:
        must(c3, "ip", "route", "del", "127.0.0.0/8")
        must(c3, "ip", "addr", "add", "127.0.0.1/8", "dev", "lo")
        topo.apply(State((B1, B2), ENDPOINTS))
