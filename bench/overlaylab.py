"""What the overlay case runs on: a shoal cluster (shoal.lab, as `shoal cluster up`) and its
floor, a VXLAN pair made by hand with `ip` on the same kind of underlay.

Cluster: hosts are namespaces `shbXXXX-h<i>` on an underlay bridge in `shbXXXX-u`, a
3-member etcd, one shoald per host; removed with `lab.down` (exact pids and names), its
folder under a temp dir `/tmp/shb-overlay-*`.

Raw: `shb-vxu-*` holds the underlay bridge `ul0`; two hosts `shb-vxh-*` (eth0 on ul0,
198.18.250.1-2/24, MTU 1500) each with a bridge `br0` holding a vxlan `vx0` (VNI 42, port
4789, learning off, proxy on, as shoal's) and a veth to a container namespace `shb-vxc-*`
(10.99.0.2-3/24, MTU 1450). The remote container is one permanent FDB entry and one
permanent neighbour entry on each side, as shoal programs them: the same kernel objects
made directly, with no daemon, store or nftables. Deleted by exact name.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from common import Netns, busybox_tar, rss_kib
from peers.engine import IMAGE, EnginePeer

RAW_UNDERLAY = "198.18.250"
RAW_OVERLAY = "10.99.0"
RAW_MTU = 1450


class LabHost(EnginePeer):
    """One shoald of the lab, driven like the Engine API peers (containers, networks)."""

    name = "lab"

    def __init__(self, host, workdir: str) -> None:  # noqa: ANN001 - shoal.lab.Host
        super().__init__(workdir)
        self.host = host
        self.name = host.name
        self.sock = host.sock
        self.client = self._client()

    def overlay_create(self, name: str) -> str:
        body = {"Name": name, "Driver": "overlay", "CheckDuplicate": True}
        return self._ok(self.client.post("/networks/create", json=body)).json()["Id"]

    def network_names(self) -> set[str]:
        return {n["Name"] for n in self._ok(self.client.get("/networks")).json()}

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


def _batch(ns: str, cmds: str) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=cmds.encode(), check=True, capture_output=True)


class RawVxlan:
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

    def _ns(self, tag: str) -> Netns:
        ns = Netns(tag)
        self.made.append(ns)
        return ns

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
