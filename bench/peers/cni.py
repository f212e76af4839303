"""The CNI reference plugins (`bridge` with `host-local` IPAM) driven by the CNI protocol.

Each call is the plugin binary run inside the throwaway host namespace with CNI_COMMAND,
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH in its environment and the network conf
on stdin, as libcni does. A container with published ports also gets `portmap` chained
after `bridge` (prevResult + runtimeConfig.portMappings); others run `bridge` alone.
The bridge plugin never deletes its bridge, so networks persist like Docker's.
"""

from __future__ import annotations

import json
import os

from common import in_ns, pkg_version, tool
from peers import Ctr, Unsupported
from peers.tools import ToolPeer

CNI_PATH = "/usr/lib/cni"
VERSION = "1.0.0"


class CniPeer(ToolPeer):
    name = "cni"
    no_daemon = "cni: no daemon (one plugin process per ADD/DEL)"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.nets: dict[str, dict] = {}

    def start(self, image_tar: str) -> None:
        for plugin in ("bridge", "host-local", "portmap"):
            if not os.access(f"{CNI_PATH}/{plugin}", os.X_OK):
                raise RuntimeError(f"{CNI_PATH}/{plugin} not found: apt-get install containernetworking-plugins")
        super().start(image_tar)

    def describe(self) -> str:
        return (f"CNI bridge + host-local {pkg_version('containernetworking-plugins')} "
                f"(cniVersion {VERSION}, ipMasq on; portmap chained for published ports)")

    def network_create(self, name: str) -> str:
        raise Unsupported("cni: no network object (a conf file; the bridge appears at the first ADD)")

    def ensure_network(self, name: str) -> str:
        if name not in self.nets:
            k = len(self.nets)
            self.nets[name] = {
                "cniVersion": VERSION, "name": name, "type": "bridge", "bridge": f"shbcni{k}",
                "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": f"10.{88 - k}.0.0/16"}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.root / "ipam")},
            }
        return name

    def _call(self, plugin: str, command: str, ctr: Ctr, ifname: str, conf: dict) -> str:
        env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": ctr.id, "CNI_NETNS": ctr.netns,
               "CNI_IFNAME": ifname, "CNI_PATH": CNI_PATH}
        return tool(in_ns(self.host_ns, [f"{CNI_PATH}/{plugin}"]), json.dumps(conf).encode(), env)

    def _portmap_conf(self, ctr: Ctr, net: str, prev: dict) -> dict:
        return {"cniVersion": VERSION, "name": net, "type": "portmap", "capabilities": {"portMappings": True},
                "snat": True, "prevResult": prev,
                "runtimeConfig": {"portMappings": [{"hostPort": h, "containerPort": c, "protocol": "tcp"}
                                                   for c, h in ctr.publish.items()]}}

    def attach(self, ctr: Ctr, net: str, ifname: str) -> str:
        conf = self.nets[net]
        result = json.loads(self._call("bridge", "ADD", ctr, ifname, conf))
        chain = [("bridge", conf)]
        ctr.extra["eps"][ifname] = chain
        if ifname == "eth0" and ctr.publish:
            pm = self._portmap_conf(ctr, net, result)
            result = json.loads(self._call("portmap", "ADD", ctr, ifname, pm))
            chain.append(("portmap", pm))
        return result["ips"][0]["address"].split("/")[0]

    def detach(self, ctr: Ctr, ifname: str) -> None:
        for plugin, conf in reversed(ctr.extra["eps"].pop(ifname)):
            self._call(plugin, "DEL", ctr, ifname, conf)
