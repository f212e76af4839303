"""One `docker network create -d shoal-overlay` network across two real dockerds (20.10).

Two host namespaces on an underlay bridge (198.18.252.0/24, inside a namespace of its own);
one etcd member in the first host, with the v2 API on for dockerd's libkv client, serves
both engines: dockerd keeps its networks under `docker/` (v2 keyspace), shoald its cluster
under `/shoal/v2/` (v3). Each host runs a dockerd (`--cluster-store`, `--cluster-advertise`,
its plugin directory bind-mounted on its private /run/docker/plugins, as in
test_docker_plugins) and a shoald serving the plugins into that directory, in the same
cluster store. Every address is inside the lab's namespaces.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import is_root
from tests.e2e.conftest import Shoald, unmount_below
from tests.e2e.test_docker_plugins import Dockerd

pytestmark = pytest.mark.skipif(
    shutil.which("dockerd") is None or shutil.which("containerd") is None or shutil.which("etcd") is None,
    reason="dockerd (docker.io) or etcd (etcd-server) not installed")

UNDERLAY = "198.18.252"
STORE = f"etcd://{UNDERLAY}.1:2379"


def _ns(netns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=check)


def _etcd_call(netns: str, path: str, body: dict | None = None) -> dict:
    """etcd's HTTP API from inside a host (the lab is unreachable from outside)."""
    probe = ("import sys, json, urllib.request as u; b = sys.argv[2].encode() if sys.argv[2] else None; "
             "r = u.Request(sys.argv[1], data=b, headers={'Content-Type': 'application/json'}); "
             "print(u.urlopen(r, timeout=2).read().decode())")
    p = _ns(netns, sys.executable, "-c", probe, f"http://{UNDERLAY}.1:2379{path}", json.dumps(body) if body else "")
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-400:])
    return json.loads(p.stdout)


def shoal_keys(netns: str) -> list[str]:
    """Every key under shoal's prefix (v3 range over the prefix)."""
    key, end = (base64.b64encode(s.encode()).decode() for s in ("/shoal/", "/shoal0"))
    out = _etcd_call(netns, "/v3/kv/range", {"key": key, "range_end": end, "keys_only": True})
    return [base64.b64decode(kv["key"]).decode() for kv in out.get("kvs", [])]


def docker_network_keys(netns: str) -> list[str]:
    try:
        out = _etcd_call(netns, "/v2/keys/docker/network/v1.0/network/")
    except RuntimeError:  # 404: no network was ever stored
        return []
    return [n["key"] for n in out.get("node", {}).get("nodes", [])]


def eventually(pred, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.2)


def _joined(shoald: Shoald) -> bool:
    _, info = shoald.api("GET", "/info")
    return not any("cluster store" in w for w in info.get("Warnings") or ())


class Lab:
    """The namespaces, etcd and both engines of each host; `close` removes exactly these."""

    def __init__(self, root: Path) -> None:
        tag = secrets.token_hex(3)
        self.root = root
        self.underlay = f"shd-u{tag}"
        self.hosts = [f"shd-h{i}{tag}" for i in (1, 2)]
        self.etcd: subprocess.Popen | None = None
        self.dockerds: list[Dockerd] = []
        self.shoalds: list[Shoald] = []
        self.made: list[str] = []

    def build(self, busybox_tar: Path) -> None:
        for ns in (self.underlay, *self.hosts):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.made.append(ns)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        u = self.underlay
        subprocess.run(["ip", "-n", u, "link", "add", "ul0", "type", "bridge"], check=True)
        subprocess.run(["ip", "-n", u, "link", "set", "ul0", "up"], check=True)
        for i, ns in enumerate(self.hosts, 1):
            subprocess.run(["ip", "-n", u, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0",
                            "netns", ns], check=True)
            subprocess.run(["ip", "-n", u, "link", "set", f"h{i}", "master", "ul0", "up"], check=True)
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{UNDERLAY}.{i}/24", "dev", "eth0"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        self._etcd()
        for i, ns in enumerate(self.hosts, 1):
            ip = f"{UNDERLAY}.{i}"
            plugins = self.root / f"plugins{i}"
            plugins.mkdir()
            (self.root / f"docker{i}").mkdir()
            (self.root / f"shoal{i}").mkdir()
            dockerd = Dockerd(ns, self.root / f"docker{i}", plugins,
                              ["--cluster-store", STORE, "--cluster-advertise", f"{ip}:2376"])
            self.dockerds.append(dockerd)
            dockerd.start()  # first: it finds forwarding off and sets FORWARD's policy to DROP
            dockerd.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
            shoald = Shoald(ns, self.root / f"shoal{i}", [
                "--serve-plugins", str(plugins), "--br-netfilter", "leave", "--cluster-store", STORE,
                "--cluster-advertise", ip, "--cluster-store-opt", "discovery.ttl=4",
                "--cluster-store-opt", "discovery.resync=5"])
            self.shoalds.append(shoald)
            shoald.start()
        for shoald in self.shoalds:
            eventually(lambda s=shoald: _joined(s), 30, "shoald joined the cluster store")

    def _etcd(self) -> None:
        ip = f"{UNDERLAY}.1"
        argv = ["etcd", "--name", "m1", "--data-dir", str(self.root / "etcd"),
                "--listen-client-urls", f"http://{ip}:2379", "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", f"m1=http://{ip}:2380", "--initial-cluster-state", "new",
                "--enable-v2=true", "--log-level", "warn"]
        with open(self.root / "etcd.log", "wb") as log:
            self.etcd = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.hosts[0]}", *argv],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        eventually(lambda: _etcd_ok(self.hosts[0]), 30, "etcd answers")

    def close(self) -> None:
        try:
            for d in self.dockerds:
                for cid in d.docker("ps", "-aq", check=False).stdout.split():
                    d.docker("rm", "-f", cid, check=False)
        finally:
            for d in self.dockerds:
                d.stop()
            for s in self.shoalds:
                s.stop()
            for d in self.dockerds:
                d.kill_leftovers()
            if self.etcd is not None:
                self.etcd.terminate()
                try:
                    self.etcd.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.etcd.kill()
                    self.etcd.wait()
            for ns in reversed(self.made):
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
            unmount_below(self.root)
            if os.environ.get("SHD_KEEP"):
                keep = Path("/tmp/shd-keep")
                keep.mkdir(exist_ok=True)
                for i in (1, 2):
                    for src, dst in ((f"shoal{i}/shoald.log", f"shoald{i}.log"),
                                     (f"docker{i}/dockerd.log", f"dockerd{i}.log")):
                        if (self.root / src).exists():
                            shutil.copy(self.root / src, keep / dst)


def _etcd_ok(netns: str) -> bool:
    try:
        _etcd_call(netns, "/v2/keys/")
        return True
    except RuntimeError:
        return False


@pytest.fixture
def docker_pair(busybox_tar):
    if not is_root():
        pytest.skip("needs root")
    root = Path(tempfile.mkdtemp(prefix="shd-dov-"))
    lab = Lab(root)
    try:
        lab.build(busybox_tar)
        yield lab
    finally:
        try:
            lab.close()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _ip(d: Dockerd, name: str, net: str) -> str:
    out = d.docker("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", name)
    return out.stdout.strip()


def _ping(d: Dockerd, name: str, target: str) -> bool:
    return d.docker("exec", name, "ping", "-c", "1", "-W", "2", target, check=False).returncode == 0


def _network_ids(d: Dockerd) -> set[str]:
    return set(d.docker("network", "ls", "-q", "--no-trunc").stdout.split())


def _shoal_links(netns: str, nid: str) -> list[str]:
    links = json.loads(_ns(netns, "ip", "-j", "link").stdout or "[]")
    return [ln["ifname"] for ln in links if nid[:12] in ln["ifname"] or ln["ifname"].startswith(("veth", "shp"))]


def _docker_user(netns: str) -> list[str]:
    return [r for r in _ns(netns, "iptables", "-S", "DOCKER-USER").stdout.splitlines() if "shoal:" in r]


def _clean(shoald: Shoald) -> None:
    check = shoald.shoal("system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_one_shoal_overlay_network_across_two_dockerds(docker_pair):
    lab = docker_pair
    (d1, d2), (s1, s2), (h1, h2) = lab.dockerds, lab.shoalds, lab.hosts
    refused = d1.docker("network", "create", "-d", "shoal-overlay", "--ipam-driver", "shoal-ipam", "no", check=False)
    assert refused.returncode != 0 and "leave --ipam-driver out" in refused.stderr, refused.stderr
    nid = d1.docker("network", "create", "-d", "shoal-overlay", "--subnet", "10.130.0.0/24", "ov").stdout.strip()
    eventually(lambda: nid in _network_ids(d2), 10, "host 2's dockerd lists the network")
    info = json.loads(d2.docker("network", "inspect", "ov").stdout)[0]
    assert info["Id"] == nid and info["Scope"] == "global" and info["Driver"] == "shoal-overlay"
    for s in (s1, s2):  # one shoal network, known to both shoalds by Docker's id
        _, net = eventually(lambda s=s: (r := s.api("GET", f"/networks/{nid}"))[0] == 200 and r, 10,
                                 "shoald knows the network")
        assert net["Driver"] == "overlay" and net["Scope"] == "global"

    d1.docker("run", "-d", "--name", "c1", "--network", "ov", "busybox", "sleep", "3600")
    d2.docker("run", "-d", "--name", "c2", "--network", "ov", "busybox", "sleep", "3600")
    a, b = _ip(d1, "c1", "ov"), _ip(d2, "c2", "ov")
    assert a != b and a.startswith("10.130.0.") and b.startswith("10.130.0.")
    assert eventually(lambda: _ping(d1, "c1", b), 10, "c1 -> c2 across the VXLAN")
    fdb = json.loads(_ns(h1, "bridge", "-j", "fdb", "show", "dev", f"vx-{nid[:12]}").stdout or "[]")
    assert f"{UNDERLAY}.2" in {e.get("dst") for e in fdb}  # c2's MAC is behind host 2's VTEP
    assert _ping(d2, "c2", a)
    by_name = _ping(d1, "c1", "c2"), _ping(d2, "c2", "c1")
    print(f"by name across hosts: {by_name}")
    assert by_name == (True, True)
    for h in (h1, h2):
        assert len(_docker_user(h)) == 2, _docker_user(h)
    _clean(s1)
    _clean(s2)
    for rule in _docker_user(h2):  # lost (by hand, a reboot): a restart of shoald adds them again
        _ns(h2, "iptables", *rule.replace("-A", "-D", 1).split())
    s2.restart()
    eventually(lambda: _joined(s2), 30, "shoald 2 joined again")
    assert len(_docker_user(h2)) == 2 and _ping(d2, "c2", a) and _ping(d1, "c1", b)
    _clean(s2)

    refused = d1.docker("network", "rm", "ov", check=False)  # c2 on host 2 still uses it
    assert refused.returncode != 0 and "active endpoints" in refused.stderr
    d1.docker("rm", "-f", "c1")
    d2.docker("rm", "-f", "c2")
    d1.docker("network", "rm", "ov")
    eventually(lambda: nid not in _network_ids(d2), 10, "gone from host 2's dockerd")
    for s, h in ((s1, h1), (s2, h2)):
        eventually(lambda s=s: s.api("GET", f"/networks/{nid}")[0] == 404, 10, "gone from shoald")
        eventually(lambda h=h: not _shoal_links(h, nid), 10, f"kernel objects gone on {h}")
        assert not _docker_user(h)
        _clean(s)
    assert not [k for k in shoal_keys(h1) if nid in k or "/endpoints/" in k]
    assert not [k for k in docker_network_keys(h1) if nid in k]

    # removed from the host that did not make it: that dockerd sends DeleteNetwork to its shoald
    nid2 = d1.docker("network", "create", "-d", "shoal-overlay", "--subnet", "10.130.1.0/24", "ov2").stdout.strip()
    eventually(lambda: nid2 in _network_ids(d2), 10, "ov2 on host 2")
    d2.docker("network", "rm", "ov2")
    for d, s in ((d1, s1), (d2, s2)):
        eventually(lambda d=d, s=s: nid2 not in _network_ids(d) and s.api("GET", f"/networks/{nid2}")[0] == 404,
                   10, "ov2 gone everywhere")
    assert not [k for k in shoal_keys(h1) if nid2 in k]
