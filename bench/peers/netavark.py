"""netavark (podman's network backend) driven directly with its JSON, as podman does.

`netavark --config DIR setup NETNS < options.json` inside the throwaway host namespace
(firewall driver iptables, DNS off). podman does IPAM itself and hands netavark static
addresses; here a counter per network does that. netavark creates the bridge on the first
setup and deletes it on the last teardown, so each network keeps one "anchor" endpoint
for the whole run: the bridge then persists, as a Docker network does, and no row pays
for creating it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess

from common import Netns, in_ns, tool
from peers import Ctr, Unsupported
from peers.tools import ToolPeer

NETAVARK = "/usr/lib/podman/netavark"


class NetavarkPeer(ToolPeer):
    name = "netavark"
    no_daemon = "netavark: no daemon (one netavark process per setup/teardown)"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.nets: dict[str, dict] = {}
        self.anchors: list[Ctr] = []

    def start(self, image_tar: str) -> None:
        if not os.access(NETAVARK, os.X_OK):
            raise RuntimeError(f"{NETAVARK} not found: apt-get install netavark")
        super().start(image_tar)

    def describe(self) -> str:
        v = subprocess.run([NETAVARK, "--version"], capture_output=True, text=True).stdout.strip()
        return f"{v} (firewall driver iptables, DNS off; podman-style static IPs)"

    def network_create(self, name: str) -> str:
        raise Unsupported("netavark: no network object (podman writes a JSON file; "
                          "the bridge appears at the first setup)")

    def ensure_network(self, name: str) -> str:
        if name not in self.nets:
            k = len(self.nets)
            subnet = ipaddress.ip_network(f"10.{89 + k}.0.0/16")
            self.nets[name] = {
                "next": 2, "subnet": subnet,
                "info": {"name": name, "id": secrets.token_hex(32), "driver": "bridge",
                         "network_interface": f"shbnv{k}",
                         "subnets": [{"subnet": str(subnet), "gateway": str(subnet.network_address + 1)}],
                         "ipv6_enabled": False, "internal": False, "dns_enabled": False,
                         "ipam_options": {"driver": "host-local"}},
            }
            ns = Netns("nvka", lo_up=False)
            anchor = Ctr(id=secrets.token_hex(32), net=name, netns=ns.path, extra={"ns": ns, "eps": {}})
            self.anchors.append(anchor)
            self.attach(anchor, name, "eth0")
        return name

    def _options(self, ctr: Ctr, net: str, ifname: str, ip: str) -> dict:
        opts = {"container_id": ctr.extra.setdefault("nid", secrets.token_hex(32)), "container_name": ctr.id,
                "networks": {net: {"static_ips": [ip], "interface_name": ifname}},
                "network_info": {net: self.nets[net]["info"]}}
        if ifname == "eth0" and ctr.publish:
            opts["port_mappings"] = [{"host_ip": "", "container_port": c, "host_port": h, "range": 1,
                                      "protocol": "tcp"} for c, h in ctr.publish.items()]
        return opts

    def _call(self, verb: str, netns: str, opts: dict) -> str:
        env = {**os.environ, "NETAVARK_FW": "iptables"}
        return tool(in_ns(self.host_ns, [NETAVARK, "--config", str(self.root / "config"), verb, netns]),
                    json.dumps(opts).encode(), env)

    def attach(self, ctr: Ctr, net: str, ifname: str) -> str:
        n = self.nets[net]
        ip = str(n["subnet"].network_address + n["next"])
        n["next"] += 1
        opts = self._options(ctr, net, ifname, ip)
        self._call("setup", ctr.netns, opts)
        ctr.extra["eps"][ifname] = opts
        return ip

    def detach(self, ctr: Ctr, ifname: str) -> None:
        opts = ctr.extra["eps"].pop(ifname)
        self._call("teardown", ctr.netns, opts)

    def close_networks(self) -> None:
        for anchor in self.anchors:
            try:
                self.detach(anchor, "eth0")
            except Exception:  # noqa: BLE001 - the host namespace goes anyway
                pass
            anchor.extra["ns"].close()
