"""The floor: the same kernel objects made directly, with no daemon, store, rules or NAT.

A network is a bridge with an address (pyroute2, one netlink socket kept open in the
throwaway host namespace); an endpoint is a veth pair with one end on the bridge and the
other moved into the container's namespace, addressed with one `ip -batch` there. A
"published port" here is the container's address dialled directly from the host
namespace: the path any port forwarding adds its cost to.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

from pyroute2 import IPRoute

from peers import Ctr
from peers.tools import ToolPeer


class RawPeer(ToolPeer):
    name = "raw"
    no_daemon = "raw: no daemon (netlink calls from the bench process)"
    no_monitor = "raw: no per-container process (runc run -d directly)"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.ipr: IPRoute | None = None
        self.nets: dict[str, dict] = {}
        self.seq = 0

    def start(self, image_tar: str) -> None:
        super().start(image_tar)
        self.ipr = IPRoute(netns=self.ns.name, flags=0)

    def describe(self) -> str:
        return "kernel objects made directly: pyroute2 bridge/veth, `ip -batch` in the container, runc"

    def _bridge(self, ifname: str, subnet: ipaddress.IPv4Network) -> None:
        self.ipr.link("add", ifname=ifname, kind="bridge")
        idx = self.ipr.link_lookup(ifname=ifname)[0]
        self.ipr.link("set", index=idx, mtu=1500, ifalias="shb-raw")
        self.ipr.addr("add", index=idx, address=str(subnet.network_address + 1), prefixlen=subnet.prefixlen)
        self.ipr.link("set", index=idx, state="up")

    def network_create(self, name: str) -> str:
        self._bridge("shbrawtmp", ipaddress.ip_network("10.200.0.0/16"))
        return "shbrawtmp"

    def network_rm(self, ref: str) -> None:
        self.ipr.link("del", index=self.ipr.link_lookup(ifname=ref)[0])

    def ensure_network(self, name: str) -> str:
        if name not in self.nets:
            k = len(self.nets)
            subnet = ipaddress.ip_network(f"10.{77 + k}.0.0/16")
            self._bridge(f"shbraw{k}", subnet)
            self.nets[name] = {"bridge": f"shbraw{k}", "subnet": subnet, "next": 2}
        return name

    def attach(self, ctr: Ctr, net: str, ifname: str) -> str:
        n = self.nets[net]
        ip = n["subnet"].network_address + n["next"]
        n["next"] += 1
        self.seq += 1
        host_if = f"shbv{self.seq}"
        fd = os.open(ctr.netns, os.O_RDONLY)
        try:
            self.ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": ifname, "net_ns_fd": fd})
        finally:
            os.close(fd)
        idx = self.ipr.link_lookup(ifname=host_if)[0]
        self.ipr.link("set", index=idx, master=self.ipr.link_lookup(ifname=n["bridge"])[0], state="up")
        ctr.extra["eps"][ifname] = host_if
        cmds = f"addr add {ip}/{n['subnet'].prefixlen} dev {ifname}\nlink set {ifname} up\n"
        if ifname == "eth0":
            cmds += f"route add default via {n['subnet'].network_address + 1}\n"
        subprocess.run(["ip", "-n", ctr.extra["ns"].name, "-batch", "-"], input=cmds.encode(), check=True)
        return str(ip)

    def detach(self, ctr: Ctr, ifname: str) -> None:
        host_if = ctr.extra["eps"].pop(ifname)
        self.ipr.link("del", index=self.ipr.link_lookup(ifname=host_if)[0])

    def published(self, ctr: Ctr, container_port: int) -> tuple[str, int]:
        return ctr.ip, container_port

    def close_networks(self) -> None:
        if self.ipr is not None:
            self.ipr.close()

