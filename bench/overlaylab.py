"""What the overlay case runs on: a shoal cluster (shoal.lab, as `shoal cluster up`), Docker's
classic overlay on the same kind of lab, and their floor, a VXLAN pair made by hand with `ip`.

Cluster: hosts are namespaces `shbXXXX-h<i>` on an underlay bridge in `shbXXXX-u`, a
3-member etcd, one shoald per host; removed with `lab.down` (exact pids and names), its
folder under a temp dir `/tmp/shb-overlay-*`.

DockerCluster: the same shape built here for dockerd 20.10: `shb-dov-u-*` holds the
underlay bridge `ul0`, hosts `shb-dov-h<i>-*` (eth0 on ul0, 198.18.251.<i>/24, MTU 1500),
a 3-member etcd 3.4 in the first three hosts with `--enable-v2=true` (libkv, Docker's
store client, speaks only etcd's v2 API), and one dockerd per host with `--cluster-store
etcd://...` and `--cluster-advertise <eth0 address>:2376`, started as the docker peer
starts its dockerd (private mounts, /run, /etc/docker and hostname; own data root, exec
root, pidfile and socket under a temp dir `/tmp/shb-dov-*`). Stopped by exact pids,
namespaces deleted by exact name.

Raw: `shb-vxu-*` holds the underlay bridge `ul0`; two hosts `shb-vxh-*` (eth0 on ul0,
198.18.250.1-2/24, MTU 1500) each with a bridge `br0` holding a vxlan `vx0` (VNI 42, port
4789, learning off, proxy on, as shoal's) and a veth to a container namespace `shb-vxc-*`
(10.99.0.2-3/24, MTU 1450). The remote container is one permanent FDB entry and one
permanent neighbour entry on each side, as shoal programs them: the same kernel objects
made directly, with no daemon, store or nftables. Deleted by exact name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Netns, busybox_tar, in_ns, rss_kib, stop_pid
from peers.docker import DockerPeer
from peers.engine import IMAGE, EnginePeer

RAW_UNDERLAY = "198.18.250"
RAW_OVERLAY = "10.99.0"
RAW_MTU = 1450
DOCKER_UNDERLAY = "198.18.251"


class OverlayVerbs:
    """What the overlay case asks of a cluster host (an EnginePeer with `client` and `_ok`)."""

    def overlay_create(self, name: str, subnet: str | None = None) -> str:
        body: dict = {"Name": name, "Driver": "overlay", "CheckDuplicate": True}
        if subnet:
            body["IPAM"] = {"Driver": "default", "Config": [{"Subnet": subnet}]}
        return self._ok(self.client.post("/networks/create", json=body)).json()["Id"]

    def network_names(self) -> set[str]:
        return {n["Name"] for n in self._ok(self.client.get("/networks")).json()}

    def network_id(self, net: str) -> str:
        return self._ok(self.client.get(f"/networks/{net}")).json()["Id"]

    def run_at(self, net: str, ip: str) -> str:
        """create + start with a static address (what `docker run -d --ip` sends); the id."""
        body = {"Image": IMAGE, "Cmd": ["sleep", "1000000"], "HostConfig": {"NetworkMode": net},
                "NetworkingConfig": {"EndpointsConfig": {net: {"IPAMConfig": {"IPv4Address": ip}}}}}
        cid = self._ok(self.client.post("/containers/create", json=body)).json()["Id"]
        self._ok(self.client.post(f"/containers/{cid}/start"))
        return cid

    def rm_id(self, cid: str) -> None:
        self._ok(self.client.delete(f"/containers/{cid}", params={"force": "1"}))

    def subnet(self, net: str) -> str:
        return self._ok(self.client.get(f"/networks/{net}")).json()["IPAM"]["Config"][0]["Subnet"]


class LabHost(OverlayVerbs, EnginePeer):
    """One shoald of the lab, driven like the Engine API peers (containers, networks)."""

    name = "lab"

    def __init__(self, host, workdir: str) -> None:  # noqa: ANN001 - shoal.lab.Host
        super().__init__(workdir)
        self.host = host
        self.name = host.name
        self.sock = host.sock
        self.client = self._client()

    def vxlan_of(self, net: str) -> tuple[str, str]:
        """(namespace path, device) of this host's VXLAN device for `net`."""
        return f"/run/netns/{self.host.name}", "vx-" + self.network_id(net)[:12]

    def rss_kib(self) -> int:
        return rss_kib(self.host.shoald_pid)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Cluster:
    """`count` hosts made by shoal.lab, busybox imported on each; `close` undoes all of it."""

    def __init__(self, name: str, count: int) -> None:
        from shoal import lab as labmod

        self.labmod = labmod
        self.name = name
        self.base = Path(tempfile.mkdtemp(prefix="shb-overlay-"))
        self.lab = None
        self.hosts: list[LabHost] = []
        try:
            self.lab = labmod.up(name, count, base=self.base, extra=["--log-level", "warning"])
            self.hosts = [LabHost(h, str(self.base)) for h in self.lab.hosts]
            labmod.import_image(self.lab, str(busybox_tar(self.base)))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for h in self.hosts:
            h.close()
        try:
            if self.lab is not None or (self.base / self.name / "lab.json").exists():
                self.labmod.down(self.name, self.base)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class DockerHost(OverlayVerbs, DockerPeer):
    """One dockerd of the Docker lab; its host namespace belongs to the DockerCluster."""

    def __init__(self, workdir: str, ns: Netns, ip: str) -> None:
        super().__init__(workdir)
        self.netns, self.ip = ns, ip
        self.host_ns = ns.path
        self.name = "docker-" + ns.name.split("-")[2]  # docker-h1

    def vxlan_of(self, net: str) -> tuple[str, str]:
        """The classic overlay keeps a network's bridge `br0` and VXLAN device `vxlan0` in a
        namespace of its own, bind-mounted at <exec-root>/netns/<epoch>-<id[:10]> inside
        dockerd's private mount namespace: reached here through /proc/<dockerd>/root."""
        nid = self.network_id(net)
        folder = f"/proc/{self.proc.pid}/root{self.root}/exec/netns"
        for entry in sorted(os.listdir(folder)):
            epoch, _, prefix = entry.partition("-")
            if epoch.isdigit() and prefix and nid.startswith(prefix):
                return f"{folder}/{entry}", "vxlan0"
        raise RuntimeError(f"{self.name}: no overlay namespace for {net} ({nid[:12]}) in {folder}")

    def rss_kib(self) -> int:
        return self.daemon_rss_kib()

    def members_seen(self) -> int:
        """Hosts this dockerd's serf reported joined (its log at info level), itself included."""
        try:
            text = (self.root / "log").read_text(errors="replace")
        except OSError:
            return 0
        return len({line.split("EventMemberJoin:", 1)[1].split()[0]
                    for line in text.splitlines() if "EventMemberJoin:" in line})


class _Namespaces:
    """Namespaces made in order, so `close` can remove exactly those, last first."""

    made: list[Netns]

    def _ns(self, tag: str) -> Netns:
        ns = Netns(tag)
        self.made.append(ns)
        return ns


class DockerCluster(_Namespaces):
    """`count` dockerds on a lab of their own with etcd v2 as cluster store (see the module doc)."""

    def __init__(self, count: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="shb-dov-"))
        self.made: list[Netns] = []
        self.etcd: list[subprocess.Popen] = []
        self.hosts: list[DockerHost] = []
        try:
            self._build(count)
        except BaseException:
            self.close()
            raise

    def _build(self, count: int) -> None:
        underlay = self._ns("dov-u")
        _batch(underlay.name, "link add ul0 type bridge\nlink set ul0 up\n")
        hosts = []
        for n in range(1, count + 1):
            ns = self._ns(f"dov-h{n}")
            _batch(underlay.name, f"link add h{n} type veth peer name eth0 netns {ns.name}\n"
                                  f"link set h{n} master ul0 up\n")
            _batch(ns.name, f"addr add {DOCKER_UNDERLAY}.{n}/24 dev eth0\nlink set eth0 up\n")
            hosts.append((ns, f"{DOCKER_UNDERLAY}.{n}"))
        members = hosts[:3]
        initial = ",".join(f"m{k}=http://{ip}:2380" for k, (_, ip) in enumerate(members, 1))
        for k, (ns, ip) in enumerate(members, 1):
            self._etcd(ns, ip, k, initial)
        store = "etcd://" + ",".join(f"{ip}:2379" for _, ip in members)
        _wait_etcd_v2(members[0][0], f"http://{members[0][1]}:2379")
        for ns, ip in hosts:
            h = DockerHost(str(self.base), ns, ip)
            self.hosts.append(h)
            h.spawn(ns, ["--cluster-store", store, "--cluster-advertise", f"{ip}:2376"], log_level="info")
        tar = str(busybox_tar(self.base))
        for h in self.hosts:
            h.wait_up()
            h.import_image(tar)
        deadline = time.monotonic() + 30
        while any(h.members_seen() < count for h in self.hosts):
            if time.monotonic() > deadline:
                seen = ", ".join(f"{h.name}: {h.members_seen()}" for h in self.hosts)
                raise RuntimeError(f"dockerd's serf did not join all {count} hosts in 30 s ({seen})")
            time.sleep(0.1)

    def _etcd(self, ns: Netns, ip: str, k: int, initial: str) -> None:
        from shoal import lab as labmod

        argv = [labmod.ETCD, "--name", f"m{k}", "--data-dir", str(self.base / f"etcd{k}"),
                "--listen-client-urls", f"http://{ip}:2379", "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.base.name, "--enable-v2=true", "--log-level", "warn"]
        with open(self.base / f"etcd{k}.log", "wb") as log:
            self.etcd.append(subprocess.Popen(in_ns(ns.path, argv), stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))

    def close(self) -> None:
        alive = [h for h in self.hosts if h.proc is not None and h.proc.poll() is None]
        for h in alive:
            h.remove_all_containers()
        for h in alive:  # all stop at once (each takes ~2 s), then each is waited for
            h.proc.terminate()
        for h in self.hosts:
            try:
                h.close()
            except Exception:  # noqa: BLE001 - keep closing the others
                pass
        for p in self.etcd:
            stop_pid(p, timeout=10)
        for ns in reversed(self.made):
            ns.close()
        self.made = []
        shutil.rmtree(self.base, ignore_errors=True)


def _wait_etcd_v2(ns: Netns, url: str, timeout_s: float = 30) -> None:
    """Until the store answers a v2 read (from inside a host: the lab is unreachable from here)."""
    probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1).read()"
    deadline = time.monotonic() + timeout_s
    while True:
        r = subprocess.run(in_ns(ns.path, [sys.executable, "-c", probe, url + "/v2/keys/"]), capture_output=True)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"etcd v2 API at {url} did not answer in {timeout_s:.0f} s: "
                               f"{r.stderr.decode(errors='replace').strip()[-200:]}")
        time.sleep(0.2)


def _batch(ns: str, cmds: str) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=cmds.encode(), check=True, capture_output=True)


class RawVxlan(_Namespaces):
    """Two container namespaces joined by a hand-made VXLAN pair (see the module doc)."""

    def __init__(self) -> None:
        self.made: list[Netns] = []
        self.containers: list[Netns] = []
        try:
            self.underlay = self._ns("vxu")
            _batch(self.underlay.name, "link add ul0 type bridge\nlink set ul0 up\n")
            hosts = [self._host(i) for i in (1, 2)]
            for i, j in ((0, 1), (1, 0)):
                self._peer(hosts[i], j)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def mac(i: int) -> str:
        return f"02:42:0a:63:00:{i + 2:02x}"

    def ip(self, i: int) -> str:
        return f"{RAW_OVERLAY}.{i + 2}"

    def _host(self, n: int) -> Netns:
        host, ctr = self._ns("vxh"), self._ns("vxc")
        self.containers.append(ctr)
        i = n - 1
        _batch(self.underlay.name, f"link add h{n} type veth peer name eth0 netns {host.name}\n"
                                   f"link set h{n} master ul0 up\n")
        _batch(host.name, f"addr add {RAW_UNDERLAY}.{n}/24 dev eth0\nlink set eth0 up\n"
                          f"link add br0 mtu {RAW_MTU} type bridge\n"
                          f"link add vx0 type vxlan id 42 local {RAW_UNDERLAY}.{n} dstport 4789 nolearning proxy\n"
                          f"link set vx0 mtu {RAW_MTU} master br0 up\n"
                          f"link add veth0 mtu {RAW_MTU} type veth peer name eth0 address {self.mac(i)} "
                          f"mtu {RAW_MTU} netns {ctr.name}\n"
                          "link set veth0 master br0 up\nlink set br0 up\n")
        _batch(ctr.name, f"addr add {self.ip(i)}/24 dev eth0\nlink set eth0 up\n")
        return host

    def _peer(self, host: Netns, j: int) -> None:
        """The remote container on this host's vxlan: FDB mac -> VTEP, neighbour ip -> mac."""
        subprocess.run(["bridge", "-n", host.name, "fdb", "replace", self.mac(j), "dev", "vx0",
                        "dst", f"{RAW_UNDERLAY}.{j + 1}", "self", "permanent"], check=True, capture_output=True)
        _batch(host.name, f"neigh replace {self.ip(j)} lladdr {self.mac(j)} dev vx0 nud permanent\n")

    def host_names(self) -> list[str]:
        """The VTEP namespaces (not the underlay, not the containers)."""
        return [ns.name for ns in self.made if ns is not self.underlay and ns not in self.containers]

    def close(self) -> None:
        for ns in reversed(self.made):
            ns.close()
        self.made = []
