"""Issue #4's reachability matrix: isolation, ICC off, internal, egress NAT, published ports.

Topology, all inside namespaces this test makes: shoald's host namespace, plus an
"upstream" namespace joined to it by a veth (10.250.0.0/24), standing for the world
beyond the host.  Nothing leaves those namespaces.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import delete_netns, new_netns

from .conftest import needs_docker

pytestmark = needs_docker
HOST_UP, UPSTREAM = "10.250.0.1", "10.250.0.2"
UDP = Path(__file__).with_name("udp_echo.py")


@pytest.fixture
def upstream(box):
    ns = new_netns("up")
    link = f"sht-u{ns[-6:]}"
    subprocess.run(["ip", "-n", box.netns, "link", "add", link, "type", "veth", "peer", "name", "up0",
                    "netns", ns], check=True)
    subprocess.run(["ip", "-n", box.netns, "addr", "add", f"{HOST_UP}/24", "dev", link], check=True)
    subprocess.run(["ip", "-n", box.netns, "link", "set", link, "up"], check=True)
    subprocess.run(["ip", "-n", ns, "addr", "add", f"{UPSTREAM}/24", "dev", "up0"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "up0", "up"], check=True)
    subprocess.run(["ip", "-n", ns, "route", "add", "default", "via", HOST_UP], check=True)
    yield ns
    delete_netns(ns)


def in_ns(ns, *argv, timeout=5):
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True,
                          timeout=timeout)


def ip_of(d, name, net):
    info = json.loads(d.docker("inspect", name).stdout)[0]
    return info["NetworkSettings"]["Networks"][net]["IPAddress"]


def ping(d, src, dst):
    return d.docker("exec", src, "ping", "-c1", "-W1", dst, check=False).returncode == 0


def http(d, src, url):
    p = d.docker("exec", src, "timeout", "2", "wget", "-q", "-O", "-", url, check=False)
    return p.stdout.strip()


def sandbox(d, name):
    return json.loads(d.docker("inspect", name).stdout)[0]["NetworkSettings"]["SandboxKey"]


def udp_answer(path, host, port):
    """busybox here has no UDP nc: the host's python, inside the container's netns."""
    p = subprocess.run(["nsenter", f"--net={path}", sys.executable, str(UDP), "ask", host, str(port)],
                       capture_output=True, text=True, timeout=10)
    return p.stdout.strip()


def udp_in(path, host, port):
    return udp_answer(path, host, port).startswith("pong")


def udp(d, src, dst, port):
    return udp_in(sandbox(d, src), dst, port)


def serve(d, name, net, servers, *extra):
    """httpd answering its own name on :80, and a UDP pong on :5353."""
    d.docker("run", "-d", "--name", name, "--network", net, *extra, "busybox", "sh", "-c",
             f"echo {name} > /tmp/index.html; httpd -f -p 80 -h /tmp")
    proc = subprocess.Popen(["nsenter", f"--net={sandbox(d, name)}", sys.executable, str(UDP), "serve", "5353"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    servers.append(proc)


@pytest.fixture(params=["auto", "leave"])
def box(request, make_shoald, busybox_tar):
    """Every policy holds whether br_netfilter hands bridged frames to the IP hooks or not:
    `auto` turns it off in this (shoald's own) namespace, `leave` keeps the namespace's
    default (on once the module is loaded), as in the machine's namespace."""
    d = make_shoald(["--br-netfilter", request.param])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    knob = subprocess.run(["nsenter", f"--net=/run/netns/{d.netns}", "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"],
                          capture_output=True, text=True, check=False)
    if knob.returncode == 0:
        assert knob.stdout.strip() == ("0" if request.param == "auto" else "1")
    return d


@pytest.fixture
def servers():
    procs = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_reachability_matrix(box, upstream, servers):
    d = box
    d.docker("network", "create", "--subnet", "10.10.1.0/24", "neta")
    d.docker("network", "create", "--subnet", "10.10.2.0/24", "-o", "com.docker.network.bridge.enable_icc=false",
             "netb")
    d.docker("network", "create", "--subnet", "10.10.3.0/24", "--internal", "neti")
    for name, net in (("a1", "neta"), ("a2", "neta"), ("b1", "netb"), ("b2", "netb"), ("i1", "neti"),
                      ("i2", "neti")):
        serve(d, name, net, servers)
    serve(d, "pub", "neta", servers, "-p", "8080:80", "-p", "5300:5353/udp")
    serve(d, "ipub", "neti", servers, "-p", "8081:80")
    time.sleep(0.5)
    ip = {n: ip_of(d, n, net) for n, net in (("a1", "neta"), ("a2", "neta"), ("b1", "netb"), ("b2", "netb"),
                                             ("i1", "neti"), ("i2", "neti"), ("pub", "neta"))}
    expect_ok = {("a1", "a2"), ("a2", "a1"), ("i1", "i2"), ("i2", "i1"), ("a1", "pub"), ("a2", "pub")}
    names = ["a1", "a2", "b1", "b2", "i1", "i2"]
    pairs = [(s, t) for s in names for t in names + ["pub"] if s != t]

    def probe(pair):
        src, dst = pair
        return pair, (ping(d, src, ip[dst]), http(d, src, f"http://{ip[dst]}/") == dst, udp(d, src, ip[dst], 5353))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(pool.map(probe, pairs))
    wrong = {k: v for k, v in results.items() if v != ((k in expect_ok),) * 3}
    assert not wrong, f"unexpected reachability (ping, tcp, udp): {wrong}"

    # egress: masqueraded to the host's address (the upstream sees 10.250.0.1); internal: none
    server = subprocess.Popen(["nsenter", f"--net=/run/netns/{upstream}", sys.executable, str(UDP), "serve", "7777"],
                              stdout=subprocess.PIPE, text=True)
    servers.append(server)
    assert server.stdout.readline().strip() == "ready"
    assert udp_answer(sandbox(d, "a1"), UPSTREAM, 7777) == f"pong {HOST_UP}"
    assert udp_answer(sandbox(d, "i1"), UPSTREAM, 7777) == ""
    assert ping(d, "a1", UPSTREAM) and ping(d, "b1", UPSTREAM)
    assert not ping(d, "i1", UPSTREAM)

    # published ports: from upstream, from the host (its address and 127.0.0.1), hairpin
    assert in_ns(upstream, "busybox", "timeout", "2", "wget", "-q", "-O", "-", f"http://{HOST_UP}:8080/").stdout.strip() == "pub"
    assert in_ns(d.netns, "busybox", "timeout", "2", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/").stdout.strip() == "pub"
    assert in_ns(d.netns, "busybox", "timeout", "2", "wget", "-q", "-O", "-", f"http://{HOST_UP}:8080/").stdout.strip() == "pub"
    assert http(d, "pub", f"http://{HOST_UP}:8080/") == "pub"  # a container reaching itself
    assert http(d, "b1", f"http://{HOST_UP}:8080/") == "pub"  # another network, through the host
    assert udp_in(f"/run/netns/{upstream}", HOST_UP, 5300)
    # not published: direct access from upstream is dropped; internal ports are never published
    assert in_ns(upstream, "busybox", "timeout", "2", "wget", "-q", "-O", "-", f"http://{ip['a1']}/").returncode != 0
    assert in_ns(upstream, "busybox", "timeout", "2", "wget", "-q", "-O", "-", f"http://{HOST_UP}:8081/").returncode != 0
    ports = d.docker("port", "pub").stdout
    assert "80/tcp -> 0.0.0.0:8080" in ports and "5353/udp -> 0.0.0.0:5300" in ports


def test_port_taken_fails_cleanly(box):
    d = box
    d.docker("run", "-d", "--name", "first", "-p", "8090:80", "busybox", "sleep", "600")
    before = d.docker("ps", "-aq").stdout
    p = d.docker("run", "-d", "--name", "second", "-p", "8090:80", "busybox", "sleep", "600", check=False)
    assert p.returncode != 0 and "port is already allocated" in p.stderr
    assert d.docker("ps", "-aq").stdout == before
    holder = subprocess.Popen(["nsenter", f"--net=/run/netns/{d.netns}", "busybox", "nc", "-l", "-p", "8091"])
    try:
        time.sleep(0.3)
        p = d.docker("run", "-d", "-p", "8091:80", "busybox", "sleep", "600", check=False)
        assert p.returncode != 0 and "address already in use" in p.stderr
    finally:
        holder.kill()
        holder.wait()
    assert d.docker("ps", "-aq").stdout == before
    d.docker("stop", "-t", "0", "first")
    d.docker("run", "-d", "--name", "third", "-p", "8090:80", "busybox", "sleep", "600")  # released on stop


def test_restart_rebuilds_the_same_ruleset_and_cleanup_removes_it(make_shoald, busybox_tar):
    d = make_shoald()
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    d.docker("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "n1")
    d.docker("run", "-d", "--name", "ww", "--network", "n1", "-p", "8085:80", "busybox", "sleep", "600")

    def ruleset():
        """The ruleset as JSON, set elements sorted: interval sets list in insertion order."""
        data = json.loads(in_ns(d.netns, "nft", "-j", "list", "ruleset").stdout)
        for item in data["nftables"]:
            for kind in ("set", "map"):
                if kind in item and "elem" in item[kind]:
                    item[kind]["elem"] = sorted(item[kind]["elem"], key=json.dumps)
                item.get(kind, {}).pop("handle", None)
            for kind in ("table", "chain", "rule"):
                item.get(kind, {}).pop("handle", None)
        return json.dumps(data, sort_keys=True)

    before = ruleset()
    assert "8085" in in_ns(d.netns, "nft", "list", "ruleset").stdout
    d.restart()
    assert ruleset() == before
    d.restart()
    assert ruleset() == before  # no duplicated rules
    d.stop()
    cleanup = subprocess.run(d.argv() + ["--cleanup"], capture_output=True, text=True, timeout=60)
    assert cleanup.returncode == 0, cleanup.stderr
    assert "shoal" not in in_ns(d.netns, "nft", "list", "ruleset").stdout
    links = [l["ifname"] for l in d.ip("link")]
    assert links == ["lo"], links
    root = Path("/sys/fs/cgroup")  # the shared cgroup parent stays only while it holds someone's container
    for parent in [root / "shoal", *root.glob("*/shoal")]:
        assert not parent.is_dir() or [c for c in parent.iterdir() if c.is_dir()], f"{parent} left behind"


def test_host_binding_ipv6_ports_and_run_dns(box, upstream, servers):
    d = box
    d.docker("network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", "local-only")
    serve(d, "lo1", "local-only", servers, "-p", "8088:80")
    assert in_ns(d.netns, "busybox", "timeout", "2", "wget", "-q", "-O", "-", "http://127.0.0.1:8088/").stdout.strip() == "lo1"
    assert in_ns(upstream, "busybox", "timeout", "2", "wget", "-q", "-O", "-", f"http://{HOST_UP}:8088/").returncode != 0
    ports = d.docker("port", "lo1").stdout
    assert "127.0.0.1:8088" in ports

    d.docker("network", "create", "--ipv6", "--subnet", "fd00:77::/64", "--subnet", "10.77.7.0/24", "dual")
    serve(d, "six", "dual", servers, "-p", "8089:80")
    ports = d.docker("port", "six").stdout
    assert "0.0.0.0:8089" in ports and "[::]:8089" in ports
    # the host reaching its own IPv6 address on the published port (DNAT to the container's v6)
    got = in_ns(d.netns, "busybox", "timeout", "2", "wget", "-q", "-O", "-", "http://[fd00:77::1]:8089/").stdout.strip()
    assert got == "six"

    resolv = d.docker("run", "--rm", "--dns", "10.53.0.53", "busybox", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.53.0.53" in resolv
