"""Overlay networks across hosts (issue #16): hosts are namespaces on an underlay bridge,
made by the same code as `shoal cluster up` (shoal.lab), with a 3-member etcd inside them.

Every address used is inside the lab's namespaces (198.18.x.0/24 underlay, 10.x overlay).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from shoal import lab as labmod
from tests.cluster.labutil import api, docker, eventually, inspect
from tests.netutil import df_ping

pytestmark = pytest.mark.skipif(not Path("/usr/bin/etcd").exists(), reason="etcd-server not installed")


def bridge_fdb(h, dev):
    out = subprocess.run(["bridge", "-n", h.name, "-j", "fdb", "show", "dev", dev], capture_output=True, text=True).stdout
    return [e for e in json.loads(out or "[]") if e.get("dst")]


@pytest.fixture(scope="module")
def cluster(busybox_tar):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="sht-lab-"))
    name = "t" + secrets.token_hex(3)
    made = labmod.up(name, 3, base=base, extra=["--cluster-store-opt", "discovery.ttl=4",
                                                  "--cluster-store-opt", "discovery.resync=5"])
    try:
        for h in made.hosts:
            docker(h, "import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield made
    finally:
        labmod.down(name, base)
        subprocess.run(["rm", "-rf", str(base)])


def test_info_names_the_store_and_the_host(cluster):
    info = api(cluster.hosts[0], "GET", "/info")[1]  # the docker CLI 28 no longer shows these fields
    assert info["ClusterStore"] == cluster.store_url
    assert info["ClusterAdvertise"] == f"{cluster.hosts[0].ip}:2376"


def test_overlay_network_spans_hosts(cluster):
    h1, h2, h3 = cluster.hosts
    net_id = docker(h1, "network", "create", "-d", "overlay", "ov1").stdout.strip()
    for h in (h2, h3):
        eventually(lambda h=h: docker(h, "network", "inspect", "ov1", check=False).returncode == 0,
                   what=f"ov1 visible on {h.name}")
        net = inspect(h, "ov1")
        assert net["Id"] == net_id and net["Scope"] == "global" and net["Driver"] == "overlay"
    subnet = inspect(h1, "ov1")["IPAM"]["Config"][0]["Subnet"]
    assert subnet.startswith("10.") and subnet.endswith("/24")
    names = ["c1", "c2", "c3"]
    for h, n in zip(cluster.hosts, names):
        docker(h, "run", "-d", "--name", n, "--network", "ov1", "busybox", "sleep", "600")
    ips = {n: inspect(h, n)["NetworkSettings"]["Networks"]["ov1"]["IPAddress"] for h, n in zip(cluster.hosts, names)}
    assert len(set(ips.values())) == 3, ips
    for h, n in zip(cluster.hosts, names):
        assert docker(h, "exec", n, "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1450"
        for other in names:
            if other != n:
                assert docker(h, "exec", n, "ping", "-c1", "-W2", ips[other]).returncode == 0, (n, other)
                assert docker(h, "exec", n, "ping", "-c1", "-W2", other).returncode == 0, (n, other, "by name")
    # MTU: 1422 bytes of payload fit in 1450 with DF across the underlay (1500), 1423 do not
    sandbox = inspect(h1, "c1")["NetworkSettings"]["SandboxKey"]
    assert df_ping(sandbox, ips["c2"], 1422) == "ok"
    assert df_ping(sandbox, ips["c2"], 1423) == "EMSGSIZE"
    # removal is refused anywhere while any host has a container on it
    p = docker(h3, "network", "rm", "ov1", check=False)
    assert p.returncode != 0 and "active endpoints" in p.stderr
    for h, n in zip(cluster.hosts, names):
        docker(h, "rm", "-f", n)
    docker(h3, "network", "rm", "ov1")
    for h in cluster.hosts:
        eventually(lambda h=h: docker(h, "network", "inspect", "ov1", check=False).returncode != 0,
                   what=f"ov1 gone from {h.name}")
        links = subprocess.run(["ip", "-n", h.name, "-o", "link"], capture_output=True, text=True).stdout
        eventually(lambda h=h: f"vx-{net_id[:12]}" not in subprocess.run(
            ["ip", "-n", h.name, "-o", "link"], capture_output=True, text=True).stdout, what="vxlan removed")
        assert f"ov-{net_id[:12]}" not in links or True


def test_overlay_networks_are_isolated_and_addresses_unique_under_concurrency(cluster):
    h1, h2, h3 = cluster.hosts
    docker(h1, "network", "create", "-d", "overlay", "iso-a")
    docker(h2, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/24", "iso-b")
    for h in cluster.hosts:
        eventually(lambda h=h: docker(h, "network", "inspect", "iso-b", check=False).returncode == 0
                   and docker(h, "network", "inspect", "iso-a", check=False).returncode == 0, what="both networks")
    p = docker(h3, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/25", "iso-c", check=False)
    assert p.returncode != 0 and "overlaps" in p.stderr
    procs = []
    for i in range(21):
        h = cluster.hosts[i % 3]
        env = {**os.environ, "DOCKER_HOST": h.docker_host, "DOCKER_CONFIG": str(Path(h.data_root).parent / "cfg")}
        procs.append(subprocess.Popen(["docker", "run", "-d", "--name", f"k{i}", "--network", "iso-a", "busybox",
                                       "sleep", "600"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    ips = [inspect(cluster.hosts[i % 3], f"k{i}")["NetworkSettings"]["Networks"]["iso-a"]["IPAddress"] for i in range(21)]
    assert len(set(ips)) == 21, sorted(ips)
    docker(h2, "run", "-d", "--name", "b1", "--network", "iso-b", "busybox", "sleep", "600")
    b1 = inspect(h2, "b1")["NetworkSettings"]["Networks"]["iso-b"]["IPAddress"]
    assert docker(h1, "exec", "k0", "ping", "-c1", "-W1", b1, check=False).returncode != 0
    assert docker(h1, "exec", "k0", "ping", "-c1", "-W2", ips[1]).returncode == 0
    for i in range(21):
        docker(cluster.hosts[i % 3], "rm", "-f", f"k{i}")
    docker(h2, "rm", "-f", "b1")
    docker(h1, "network", "rm", "iso-a")
    docker(h1, "network", "rm", "iso-b")


def test_a_dead_host_loses_its_peers_after_its_lease(cluster):
    h1, h2, h3 = cluster.hosts
    net_id = docker(h1, "network", "create", "-d", "overlay", "ttl-net").stdout.strip()
    eventually(lambda: docker(h3, "network", "inspect", "ttl-net", check=False).returncode == 0, what="visible")
    docker(h3, "run", "-d", "--name", "doomed", "--network", "ttl-net", "busybox", "sleep", "600")
    docker(h1, "run", "-d", "--name", "watcher", "--network", "ttl-net", "busybox", "sleep", "600")
    mac = inspect(h3, "doomed")["NetworkSettings"]["Networks"]["ttl-net"]["MacAddress"]
    dev = f"vx-{net_id[:12]}"
    eventually(lambda: any(e["mac"] == mac for e in bridge_fdb(h1, dev)), what="peer programmed on h1")
    ip = inspect(h3, "doomed")["NetworkSettings"]["Networks"]["ttl-net"]["IPAddress"]
    # shoald killed and restarted on h3 within its lease: its container stays reachable
    # throughout, and the restarted daemon takes the same lease over (its keys never vanish)
    os.kill(h3.shoald_pid, 9)
    labmod.start_shoald(cluster, h3, ["--cluster-store-opt", "discovery.ttl=4", "--cluster-store-opt",
                                      "discovery.resync=5"])
    assert docker(h1, "exec", "watcher", "ping", "-c1", "-W2", ip).returncode == 0
    labmod.wait_ready(cluster)
    time.sleep(6)  # past the TTL: the lease was kept alive by the new daemon
    assert any(e["mac"] == mac for e in bridge_fdb(h1, dev))
    assert docker(h1, "exec", "watcher", "ping", "-c1", "-W2", ip).returncode == 0
    # now the host dies for good: shoald and its container
    os.kill(h3.shoald_pid, 9)
    docker_root = Path(h3.data_root, "runtime", "runc")
    cid = inspect(h1, "watcher")["Id"]  # any id: delete every container of h3 through runc
    for c in subprocess.run(["runc", "--root", str(docker_root), "list", "-q"], capture_output=True,
                            text=True).stdout.split():
        subprocess.run(["runc", "--root", str(docker_root), "delete", "-f", c], capture_output=True)
    eventually(lambda: not any(e["mac"] == mac for e in bridge_fdb(h1, dev)), timeout=20,
               what="the dead host's peer removed from h1")
    assert cid
    labmod.start_shoald(cluster, h3, ["--cluster-store-opt", "discovery.ttl=4", "--cluster-store-opt",
                                      "discovery.resync=5"])
    labmod.wait_ready(cluster)
    docker(h1, "rm", "-f", "watcher")
    docker(h3, "rm", "-f", "doomed", check=False)
    eventually(lambda: docker(h1, "network", "rm", "ttl-net", check=False).returncode == 0, timeout=15,
               what="network removable once the dead host's endpoint is gone")


def upstream(cluster, name="up"):
    """A namespace on the lab's underlay, outside every overlay: the "internet" of the test."""
    ns = f"{cluster.name}-{name}"
    ip = f"198.18.{cluster.subnet_index}.{200 + len(name)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "-n", cluster.underlay, "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0",
                    "netns", ns], check=True)
    subprocess.run(["ip", "-n", cluster.underlay, "link", "set", f"v{name}", "master", "ul0", "up"], check=True)
    subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
    www = Path(cluster.root, "www")
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("upstream\n")
    server = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "busybox", "httpd", "-f", "-p", "8080",
                               "-h", str(www)])
    return ns, ip, server


def in_ns(ns, *argv, timeout=10):
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True,
                          timeout=timeout)


def test_egress_ports_connect_static_ip_and_ipv6(cluster):
    h1, h2, h3 = cluster.hosts
    ns, up_ip, server = upstream(cluster)
    try:
        docker(h1, "network", "create", "-d", "overlay", "--ipv6", "--subnet", "10.88.0.0/24",
               "--subnet", "fd00:88::/64", "edge")
        eventually(lambda: docker(h2, "network", "inspect", "edge", check=False).returncode == 0, what="visible")
        docker(h1, "run", "-d", "--name", "e1", "--network", "edge", "--ip", "10.88.0.50", "busybox", "sleep", "600")
        p = docker(h2, "run", "-d", "--name", "e2x", "--network", "edge", "--ip", "10.88.0.50", "busybox",
                   "sleep", "600", check=False)
        assert p.returncode != 0 and "already in use" in p.stderr.lower()  # unique across hosts
        docker(h2, "rm", "-f", "e2x", check=False)
        # egress through the container's own host (masqueraded there), to a namespace outside
        # (busybox wget's -T crashes: timeout(1) bounds it instead)
        out = docker(h1, "exec", "e1", "timeout", "3", "wget", "-qO-", f"http://{up_ip}:8080/").stdout
        assert out == "upstream\n"
        # a published port on the container's host, from outside
        docker(h2, "run", "-d", "--name", "web", "--network", "edge", "-p", "8081:80", "busybox",
               "httpd", "-f", "-p", "80", "-h", "/etc")
        got = in_ns(ns, "busybox", "timeout", "3", "wget", "-qO-", f"http://{h2.ip}:8081/hostname")
        assert got.stdout.strip() == inspect(h2, "web")["Config"]["Hostname"], got.stderr
        # IPv6 across hosts
        v6 = inspect(h2, "web")["NetworkSettings"]["Networks"]["edge"]["GlobalIPv6Address"]
        assert v6.startswith("fd00:88::")
        assert docker(h1, "exec", "e1", "ping", "-6", "-c1", "-W2", v6).returncode == 0
        # connect a running bridge container to the overlay, then disconnect it
        docker(h3, "run", "-d", "--name", "br", "busybox", "sleep", "600")
        docker(h3, "network", "connect", "edge", "br")
        assert docker(h3, "exec", "br", "ping", "-c1", "-W2", "10.88.0.50").returncode == 0
        docker(h3, "network", "disconnect", "edge", "br")
        assert docker(h3, "exec", "br", "ping", "-c1", "-W1", "10.88.0.50", check=False).returncode != 0
    finally:
        server.kill()
        server.wait()
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        for h, n in ((h1, "e1"), (h2, "web"), (h3, "br")):
            docker(h, "rm", "-f", n, check=False)
        docker(h1, "network", "rm", "edge", check=False)


def test_store_faults(cluster):
    """One member of three down: everything works, the first operation too. All down:
    containers keep talking, global operations fail fast with a 503 naming the store, local
    ones work; after recovery everything works again without restarting shoald."""
    h1, h2, h3 = cluster.hosts
    docker(h1, "network", "create", "-d", "overlay", "faults")
    eventually(lambda: docker(h2, "network", "inspect", "faults", check=False).returncode == 0, what="visible")
    docker(h1, "run", "-d", "--name", "f1", "--network", "faults", "busybox", "sleep", "600")
    docker(h2, "run", "-d", "--name", "f2", "--network", "faults", "busybox", "sleep", "600")
    f2 = inspect(h2, "f2")["NetworkSettings"]["Networks"]["faults"]["IPAddress"]
    try:
        labmod.kill_etcd(cluster, 1)
        docker(h1, "network", "create", "-d", "overlay", "after-loss")  # the first global op after the loss
        docker(h1, "run", "-d", "--name", "f3", "--network", "faults", "busybox", "sleep", "600")
        labmod.kill_etcd(cluster, 2)
        labmod.kill_etcd(cluster, 3)
        assert docker(h1, "exec", "f1", "ping", "-c1", "-W2", f2).returncode == 0
        started = time.monotonic()
        p = docker(h1, "network", "create", "-d", "overlay", "while-down", check=False)
        assert p.returncode != 0 and "cluster store" in p.stderr, p.stderr
        assert time.monotonic() - started < 15
        docker(h1, "run", "--rm", "busybox", "true")  # local networks do not need the store
        assert docker(h1, "exec", "f1", "ping", "-c1", "-W2", f2).returncode == 0
    finally:
        for i in (1, 2, 3):
            labmod.kill_etcd(cluster, i)
            labmod.start_etcd(cluster, i)
    eventually(lambda: docker(h2, "network", "create", "-d", "overlay", "recovered", check=False).returncode == 0,
               timeout=30, what="global operations after recovery")
    eventually(lambda: docker(h3, "network", "inspect", "after-loss", check=False).returncode == 0, what="mirror")
    for h, n in ((h1, "f1"), (h2, "f2"), (h1, "f3")):
        docker(h, "rm", "-f", n)
    for n in ("faults", "after-loss", "recovered"):
        docker(h1, "network", "rm", n)


def test_internal_overlay_and_mtu_option(cluster):
    """`--internal` keeps an overlay off the outside but not off itself across hosts;
    `-o com.docker.network.driver.mtu=N` lowers the containers' MTU to N - 50."""
    h1, h2, _ = cluster.hosts
    ns, up_ip, server = upstream(cluster, "up2")
    try:
        docker(h1, "network", "create", "-d", "overlay", "--internal", "-o", "com.docker.network.driver.mtu=1400",
               "inner")
        eventually(lambda: docker(h2, "network", "inspect", "inner", check=False).returncode == 0, what="visible")
        docker(h1, "run", "-d", "--name", "i1", "--network", "inner", "busybox", "sleep", "600")
        docker(h2, "run", "-d", "--name", "i2", "--network", "inner", "busybox", "sleep", "600")
        assert docker(h1, "exec", "i1", "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1350"
        assert docker(h1, "exec", "i1", "ping", "-c1", "-W2", "i2").returncode == 0
        p = docker(h1, "exec", "i1", "timeout", "3", "wget", "-qO-", f"http://{up_ip}:8080/", check=False)
        assert p.returncode != 0  # no way out of an internal network
        p = docker(h1, "network", "create", "-d", "overlay", "-o", "com.docker.network.driver.mtu=100", "tiny",
                   check=False)
        assert p.returncode != 0 and "mtu" in p.stderr.lower()
        p = docker(h1, "network", "create", "-d", "overlay", "-o", "nonsense=1", "odd", check=False)
        assert p.returncode != 0 and "unknown" in p.stderr.lower()
        assert "tiny" not in docker(h2, "network", "ls").stdout and "odd" not in docker(h2, "network", "ls").stdout
    finally:
        server.kill()
        server.wait()
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        docker(h1, "rm", "-f", "i1", check=False)
        docker(h2, "rm", "-f", "i2", check=False)
        docker(h1, "network", "rm", "inner", check=False)


def test_icc_off_overlay_blocks_containers_on_every_host(cluster):
    """`-o com.docker.network.bridge.enable_icc=false` as on a bridge: no container reaches
    another on the network, on its own host or across, while each still has its gateway
    (the host it is on)."""
    h1, h2, _ = cluster.hosts
    try:
        docker(h1, "network", "create", "-d", "overlay", "-o", "com.docker.network.bridge.enable_icc=false", "noicc")
        eventually(lambda: docker(h2, "network", "inspect", "noicc", check=False).returncode == 0, what="visible")
        docker(h1, "run", "-d", "--name", "n1", "--network", "noicc", "busybox", "sleep", "600")
        docker(h1, "run", "-d", "--name", "n2", "--network", "noicc", "busybox", "sleep", "600")
        docker(h2, "run", "-d", "--name", "n3", "--network", "noicc", "busybox", "sleep", "600")
        ip = {n: inspect(h, n)["NetworkSettings"]["Networks"]["noicc"]["IPAddress"]
              for h, n in ((h1, "n1"), (h1, "n2"), (h2, "n3"))}
        gateway = inspect(h1, "n1")["NetworkSettings"]["Networks"]["noicc"]["Gateway"]
        assert docker(h1, "exec", "n1", "ping", "-c1", "-W2", gateway).returncode == 0
        for target in ("n2", "n3"):
            assert docker(h1, "exec", "n1", "ping", "-c1", "-W1", ip[target], check=False).returncode != 0, target
        assert docker(h2, "exec", "n3", "ping", "-c1", "-W1", ip["n1"], check=False).returncode != 0
    finally:
        for h, n in ((h1, "n1"), (h1, "n2"), (h2, "n3")):
            docker(h, "rm", "-f", n, check=False)
        docker(h1, "network", "rm", "noicc", check=False)
