"""Routed L3 networks with BGP (issue #9): three hosts as namespaces on an underlay bridge
(shoal.lab, as tests/cluster/test_overlay.py), each shoald running its own BIRD.

Every address used is inside the lab's namespaces (198.18.x.0/24 underlay, 10.6x routed
pools) or an "upstream" namespace of this test's own on the underlay. No timed
assertions: every wait polls with a generous timeout.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shoal import lab as labmod
from shoal.kernel.sandbox import entered
from tests.cluster.labutil import api, docker, eventually, inspect

pytestmark = pytest.mark.skipif(not (Path("/usr/bin/etcd").exists() and shutil.which("bird")),
                                reason="etcd-server or bird2 not installed")
OPTS = ["--cluster-store-opt", "discovery.ttl=4", "--cluster-store-opt", "discovery.resync=5"]


@pytest.fixture(scope="module")
def cluster(busybox_tar):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="shq-lab-"))
    name = "shq" + secrets.token_hex(2)
    made = labmod.up(name, 3, base=base, extra=OPTS)
    try:
        for h in made.hosts:
            docker(h, "import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        docker(made.hosts[0], "network", "create", "-d", "routed", "--subnet", "10.64.0.0/16", "r1")
        for h in made.hosts:
            eventually(lambda h=h: docker(h, "network", "inspect", "r1", check=False).returncode == 0,
                       what=f"r1 visible on {h.name}")
        yield made
    finally:
        labmod.down(name, base)
        shutil.rmtree(base, ignore_errors=True)


def ip_of(h, ctr, net="r1"):
    return inspect(h, ctr)["NetworkSettings"]["Networks"][net]["IPAddress"]


def pings(h, ctr, ip, wait=2):
    return docker(h, "exec", ctr, "ping", "-c1", "-W", str(wait), ip, check=False).returncode == 0


def bird_routes(h):
    out = subprocess.run(["ip", "-n", h.name, "-j", "route", "show", "proto", "bird"], capture_output=True,
                         text=True).stdout
    return {r["dst"]: r.get("gateway", r.get("type", "")) for r in json.loads(out or "[]")}


def blocks(h, net="r1", pool="10.64.0.0/16"):
    return json.loads(docker(h, "network", "inspect", net).stdout)[0]["Blocks"][pool]


def bird_pid(h):
    try:
        return int(Path(h.data_root, "run", "bird", "bird.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def alive(pid):
    """Running (a zombie child of ours that exited is not)."""
    try:
        return pid > 0 and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def run_on(h, name, net="r1", *extra):
    docker(h, "run", "-d", "--name", name, "--network", net, *extra, "busybox", "sleep", "3600")
    return ip_of(h, name, net)


class Capture:
    """Frames seen on one port of the underlay bridge (AF_PACKET, opened inside the lab's
    underlay namespace): (src, dst, IP protocol, UDP destination port) of each IPv4 frame."""

    def __init__(self, ns: str, ifname: str) -> None:
        with entered(f"/run/netns/{ns}"):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.2)
        self.seen: list[tuple[str, str, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.sock.recv(2048)
            except socket.timeout:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            ihl = (frame[14] & 0x0F) * 4
            proto = frame[23]
            dport = struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0] if proto == 17 else 0
            self.seen.append((socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34]), proto, dport))

    def close(self) -> list[tuple[str, str, int, int]]:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return self.seen


def test_containers_on_three_hosts_reach_each_other_with_no_encapsulation(cluster):
    h1, h2, h3 = cluster.hosts
    ips = {n: run_on(h, n) for h, n in zip(cluster.hosts, ("a1", "b1", "c1"))}
    assert len(set(ips.values())) == 3
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.64.0.0/16") for ip in ips.values())
    held = eventually(lambda: len(b := blocks(h1)) == 3 and b, timeout=20, what="each host holds a block")
    for h, n in zip(cluster.hosts, ("a1", "b1", "c1")):
        mine = held[f"{h.ip}:2376"]
        assert any(ipaddress.ip_address(ips[n]) in ipaddress.ip_network(b) for b in mine), (n, mine)
    # B's kernel routes A's block via A's underlay address, learned by BIRD; no per-container route
    a_block = held[f"{h1.ip}:2376"][0]
    eventually(lambda: bird_routes(h2).get(a_block) == h1.ip, timeout=30, what="A's block on B via A, proto bird")
    assert not any(dst.endswith("/32") for dst in bird_routes(h2))
    for h, n in zip(cluster.hosts, ("a1", "b1", "c1")):
        for other, ip in ips.items():
            if other != n:
                eventually(lambda h=h, n=n, ip=ip: pings(h, n, ip), timeout=30, what=f"{n} -> {other}")
        route = docker(h, "exec", n, "ip", "route").stdout
        assert "default via 169.254.1.1 dev eth0" in route
        assert inspect(h, n)["NetworkSettings"]["Networks"]["r1"]["IPPrefixLen"] == 32
        vx = subprocess.run(["ip", "-n", h.name, "-d", "link", "show", "type", "vxlan"], capture_output=True,
                            text=True).stdout
        assert vx.strip() == "", f"a vxlan device on {h.name}"
    # `shoal network inspect` shows the same blocks (the same API); the checker finds nothing
    out = subprocess.run([str(Path(sys.executable).parent / "shoal"), "-H", h2.docker_host, "network", "inspect", "r1"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)[0]["Blocks"]["10.64.0.0/16"] == blocks(h2)
    for h in cluster.hosts:
        assert api(h, "GET", "/shoal/check")[1]["Findings"] == [], h.name
    # on the wire between A and B: the containers' own addresses, not UDP 4789
    cap = Capture(cluster.underlay, "h2")
    try:
        assert docker(h1, "exec", "a1", "ping", "-c3", "-W2", ips["b1"], check=False).returncode == 0
    finally:
        seen = cap.close()
    assert (ips["a1"], ips["b1"], 1, 0) in seen, seen[:20]
    assert not [s for s in seen if s[3] == 4789]


def test_routed_networks_are_isolated_from_each_other_and_from_bridges(cluster):
    h1, h2, _ = cluster.hosts
    docker(h2, "network", "create", "-d", "routed", "--subnet", "10.65.0.0/16", "r2")
    eventually(lambda: docker(h1, "network", "inspect", "r2", check=False).returncode == 0, what="r2 on h1")
    a = run_on(h1, "iso-a")
    b = run_on(h2, "iso-b")  # r1, another host
    x = run_on(h2, "iso-x", "r2")
    docker(h1, "network", "create", "iso-br")
    y = run_on(h1, "iso-y", "iso-br")
    eventually(lambda: pings(h1, "iso-a", b), timeout=30, what="same network across hosts")
    x_block = blocks(h1, "r2", "10.65.0.0/16")[f"{h2.ip}:2376"][0]
    eventually(lambda: bird_routes(h1).get(x_block) == h2.ip, timeout=30, what="r2's block routed on h1")
    assert not pings(h1, "iso-a", x, 1), "r1 -> r2 across hosts"
    assert not pings(h2, "iso-x", a, 1), "r2 -> r1 across hosts"
    assert not pings(h1, "iso-y", a, 1), "bridge -> routed on one host"
    assert not pings(h1, "iso-a", y, 1), "routed -> bridge on one host"
    for h, n in ((h1, "iso-a"), (h2, "iso-b"), (h2, "iso-x"), (h1, "iso-y")):
        docker(h, "rm", "-f", n)
    docker(h1, "network", "rm", "iso-br")
    docker(h2, "network", "rm", "r2")


@pytest.fixture
def upstream(cluster):
    """A namespace on the underlay at .100 that knows no route to any routed pool: (its
    address, its name)."""
    ns = f"shq-up-{secrets.token_hex(2)}"
    port = f"up{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", cluster.underlay, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                        "netns", ns], check=True)
        subprocess.run(["ip", "-n", cluster.underlay, "link", "set", port, "master", "ul0", "up"], check=True)
        ip = f"198.18.{cluster.subnet_index}.100"
        for argv in (["addr", "add", f"{ip}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                     ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        yield ip, ns
    finally:
        subprocess.run(["ip", "netns", "delete", ns])


def test_nat_outgoing_internal_and_published_ports(cluster, upstream):
    h1, h2, _ = cluster.hosts
    upstream, upstream_ns = upstream
    docker(h1, "network", "create", "-d", "routed", "--subnet", "10.66.0.0/16", "-o", "nat-outgoing=false", "r-nonat")
    docker(h1, "network", "create", "-d", "routed", "--subnet", "10.67.0.0/16", "--internal", "r-int")
    for n in ("r-nonat", "r-int"):
        eventually(lambda n=n: docker(h2, "network", "inspect", n, check=False).returncode == 0, what=n)
    run_on(h1, "nat-a")
    run_on(h1, "nonat-a", "r-nonat")
    run_on(h1, "int-a", "r-int")
    peer = run_on(h2, "int-b", "r-int")
    # masqueraded: the upstream answers the host's address (it has no route to 10.64/16)
    assert pings(h1, "nat-a", upstream)
    assert not pings(h1, "nonat-a", upstream, 1)
    assert not pings(h1, "int-a", upstream, 1)
    eventually(lambda: pings(h1, "int-a", peer), timeout=30, what="internal: its own network across hosts")
    # a published port of a routed container, from the upstream (DNAT, then the published-port rule)
    docker(h1, "run", "-d", "--name", "pub-a", "--network", "r1", "-p", "8080:80", "busybox", "sh", "-c",
           "while true; do echo hello | nc -l -p 80; done")
    probe = ("import socket,sys; s=socket.create_connection((sys.argv[1], 8080), 3); "
             "print(s.recv(16).decode().strip())")
    eventually(lambda: subprocess.run(["nsenter", f"--net=/run/netns/{upstream_ns}", sys.executable, "-c",
                                       probe, h1.ip], capture_output=True, text=True).stdout.strip() == "hello",
               timeout=30, what="published port reached from upstream")
    for h, n in ((h1, "nat-a"), (h1, "nonat-a"), (h1, "int-a"), (h2, "int-b"), (h1, "pub-a")):
        docker(h, "rm", "-f", n)
    docker(h1, "network", "rm", "r-nonat")
    docker(h1, "network", "rm", "r-int")


def test_bad_input_is_a_4xx_and_makes_nothing(cluster):
    h1 = cluster.hosts[0]
    for args, words in ((["-o", "block-size=31"], "from 20 to 30"), (["-o", "block-size=19"], "from 20 to 30"),
                        (["--subnet", "10.70.0.0/28"], "smaller than one address block"),
                        (["--ipv6", "--subnet", "fd00:70::/64"], "IPv6")):
        p = docker(h1, "network", "create", "-d", "routed", *args, "bad", check=False)
        assert p.returncode != 0 and words in p.stderr, p.stderr
        assert docker(h1, "network", "inspect", "bad", check=False).returncode != 0


def test_concurrent_runs_on_three_hosts_get_distinct_addresses_in_their_blocks(cluster):
    def one(i):
        h = cluster.hosts[i % 3]
        docker(h, "run", "-d", "--name", f"k{i}", "--network", "r1", "busybox", "sleep", "3600", timeout=120)
        return h, ip_of(h, f"k{i}")

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(one, range(30)))
    ips = [ip for _, ip in got]
    assert len(set(ips)) == 30, sorted(ips)
    held = blocks(cluster.hosts[0])
    for h, ip in got:
        assert any(ipaddress.ip_address(ip) in ipaddress.ip_network(b) for b in held[f"{h.ip}:2376"]), (h.name, ip)
    for i, (h, _) in enumerate(got):
        docker(h, "rm", "-f", f"k{i}")


def test_bird_killed_is_restarted_and_routes_return(cluster):
    h1, h2, _ = cluster.hosts
    a = run_on(h1, "bk-a")
    b = run_on(h2, "bk-b")
    eventually(lambda: pings(h1, "bk-a", b), timeout=30, what="reachable before")
    b_block = next(bl for bl in blocks(h1)[f"{h2.ip}:2376"] if ipaddress.ip_address(b) in ipaddress.ip_network(bl))
    old = bird_pid(h2)
    assert alive(old)
    os.kill(old, signal.SIGKILL)
    # meanwhile: h2's kernel keeps what the dead BIRD installed, h1 keeps h2's block (stale,
    # graceful restart), so the containers keep talking
    assert pings(h1, "bk-a", b) and bird_routes(h1).get(b_block) == h2.ip
    eventually(lambda: alive(bird_pid(h2)) and bird_pid(h2) != old, timeout=30, what="BIRD started again on h2")
    # graceful restart: h1 kept h2's block meanwhile, and the session comes back
    eventually(lambda: bird_routes(h1).get(b_block) == h2.ip, timeout=60, what="h2's block on h1 again")
    eventually(lambda: pings(h1, "bk-a", b) and pings(h2, "bk-b", a), timeout=60, what="reachable after")
    docker(h1, "rm", "-f", "bk-a")
    docker(h2, "rm", "-f", "bk-b")


def test_a_restarted_host_keeps_its_blocks(cluster):
    h1, _, h3 = cluster.hosts
    c = run_on(h3, "rs-c")
    run_on(h1, "rs-a")
    eventually(lambda: pings(h1, "rs-a", c), timeout=30, what="reachable before")
    before = blocks(h1)[f"{h3.ip}:2376"]
    os.kill(h3.shoald_pid, signal.SIGTERM)  # shoald stops; BIRD leaves for a graceful restart
    eventually(lambda: not alive(h3.shoald_pid), timeout=30, what="shoald stopped")
    labmod.start_shoald(cluster, h3, OPTS)
    labmod.wait_ready(cluster)
    eventually(lambda: alive(bird_pid(h3)), timeout=30, what="BIRD back on h3")
    assert blocks(h1)[f"{h3.ip}:2376"] == before
    assert ip_of(h3, "rs-c") == c
    eventually(lambda: pings(h1, "rs-a", c), timeout=60, what="reachable after")
    docker(h3, "rm", "-f", "rs-c")
    docker(h1, "rm", "-f", "rs-a")


def test_a_killed_shoald_leaves_bird_running_and_the_next_one_adopts_it(cluster):
    h1, h2, _ = cluster.hosts
    b = run_on(h2, "kd-b")
    run_on(h1, "kd-a")
    eventually(lambda: pings(h1, "kd-a", b), timeout=30, what="reachable before")
    pid = bird_pid(h2)
    os.kill(h2.shoald_pid, signal.SIGKILL)
    eventually(lambda: not alive(h2.shoald_pid), timeout=30, what="shoald gone")
    assert alive(pid) and pings(h1, "kd-a", b)  # BIRD and the routes stay meanwhile
    labmod.start_shoald(cluster, h2, OPTS)
    labmod.wait_ready(cluster)
    docker(h2, "run", "-d", "--name", "kd-b2", "--network", "r1", "busybox", "sleep", "3600")
    b2 = ip_of(h2, "kd-b2")
    eventually(lambda: pings(h1, "kd-a", b2), timeout=30, what="a new container after the restart")
    assert bird_pid(h2) == pid and alive(pid)  # adopted, not started again
    for h, n in ((h2, "kd-b"), (h2, "kd-b2"), (h1, "kd-a")):
        docker(h, "rm", "-f", n)


def test_a_dead_host_loses_its_blocks_and_routes_after_its_lease(cluster):
    h1, _, h3 = cluster.hosts
    run_on(h3, "dead-c")
    held = blocks(h1)[f"{h3.ip}:2376"]
    eventually(lambda: all(bird_routes(h1).get(b) == h3.ip for b in held), timeout=30, what="h3's blocks on h1")
    os.kill(h3.shoald_pid, signal.SIGKILL)  # the host dies: shoald, its BIRD, its containers
    pid = bird_pid(h3)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    runc = Path(h3.data_root, "runtime", "runc")
    for cid in subprocess.run(["runc", "--root", str(runc), "list", "-q"], capture_output=True, text=True).stdout.split():
        subprocess.run(["runc", "--root", str(runc), "delete", "-f", cid], capture_output=True)
    eventually(lambda: f"{h3.ip}:2376" not in blocks(h1), timeout=30, what="h3's blocks released with its lease")
    eventually(lambda: not any(bird_routes(h1).get(b) == h3.ip for b in held), timeout=30,
               what="h3's routes withdrawn from h1")
    # what the dead host's kernel kept of BIRD's routes goes with `shoald --cleanup`
    assert bird_routes(h3)
    p = subprocess.run(labmod.shoald_argv(cluster, h3, [*OPTS, "--cleanup"]), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert bird_routes(h3) == {}
