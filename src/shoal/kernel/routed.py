"""The routed data plane (drivers.routed): a container routed at layer 3, no bridge.

Per endpoint a veth pair. The container's end holds its address as a /32, a link-scope
route to GATEWAY4 and its default route via it (Calico's plumbing); nothing answers at
that address, the host's end takes every frame. The host's end has a fixed MAC
(HOST_MAC, the same on every such veth: each is a link of its own), proxy ARP, no
proxy delay and forwarding on, and the host holds a /32 route to the container through
it. The container also gets a permanent neighbour entry GATEWAY4 -> HOST_MAC: proxy ARP
answers only when the host has a route to the target through another interface, and a
host without a default route (a lab namespace, an isolated site) would leave its
containers without a gateway; with the entry the container never needs to ask.

`RoutedOps` is mixed into `Netlink`; it uses its `_ipr`, `_index` and `_inside`.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Iterable
from typing import Any

from pyroute2 import NetlinkError

from shoal.kernel import sandbox
from shoal.kernel.base import KernelError, fail

GATEWAY4 = "169.254.1.1"
HOST_MAC = "ee:ee:ee:ee:ee:ee"
RT_SCOPE_LINK = 253
RTPROT_BIRD = 12
NUD_PERMANENT = 0x80


def host_sysctls(host: str) -> dict[str, str]:
    return {f"net/ipv4/conf/{host}/proxy_arp": "1", f"net/ipv4/neigh/{host}/proxy_delay": "0",
            f"net/ipv4/conf/{host}/forwarding": "1"}


def _v4(addresses: Iterable[str]) -> list[str]:
    return [str(ipaddress.ip_interface(a).ip) for a in addresses if a and ipaddress.ip_interface(a).version == 4]


class RoutedOps:
    """Routed veths and the routes around them (mixed into Netlink)."""

    _ipr: Any
    _index: Any  # Netlink's: name -> index in its namespace
    set_sysctls: Any  # Netlink's: written in its namespace
    delete_link: Any  # Netlink's: by exact name, a link already gone is fine

    def add_routed_veth(self, host: str, peer: str, netns_path: str, *, mac: str, mtu: int, alias: str,
                        addresses: list[str], default_route: bool, routes: list[str]) -> None:
        """The pair, both ends configured (see module doc); all or nothing. `routes`: the
        prefixes the container reaches through this link when another endpoint gives its
        default route."""
        fd = os.open(netns_path, os.O_RDONLY)
        try:
            self._ipr.link("add", ifname=host, kind="veth", mtu=mtu, address=HOST_MAC,
                           peer={"ifname": peer, "mtu": mtu, "net_ns_fd": fd, **({"address": mac} if mac else {})})
        except NetlinkError as exc:
            raise fail(f"failed to create veth {host}", exc) from exc
        finally:
            os.close(fd)
        try:
            index = self._index(host)
            if index is None:
                raise KernelError(f"veth {host} vanished")
            self.set_sysctls(host_sysctls(host))
            self._ipr.link("set", index=index, ifalias=alias, state="up")
            self.routed_host_routes(host, addresses)
            configure_inside(netns_path, peer, addresses, default_route=default_route, routes=routes)
        except BaseException:
            self.delete_link(host)
            raise

    def routed_host_routes(self, host: str, addresses: list[str]) -> None:
        """`IP/32 dev HOST scope link` for each address (replace: idempotent, for repair)."""
        index = self._index(host)
        if index is None:
            raise KernelError(f"veth {host} not found")
        try:
            for ip in _v4(addresses):
                self._ipr.route("replace", dst=ip, dst_len=32, oif=index, scope=RT_SCOPE_LINK)
        except NetlinkError as exc:
            raise fail(f"failed to route {', '.join(addresses)} to {host}", exc) from exc

    def routes_of_proto(self, proto: int) -> list[tuple[str, str, str]]:
        """(prefix, gateway, type) of every IPv4 route of the main table made by `proto`."""
        out = []
        for msg in self._ipr.get_routes(family=2, proto=proto):
            dst = msg.get_attr("RTA_DST") or "0.0.0.0"
            kind = {1: "unicast", 6: "blackhole"}.get(msg["type"], str(msg["type"]))
            out.append((f"{dst}/{msg['dst_len']}", msg.get_attr("RTA_GATEWAY") or "", kind))
        return out

    def delete_routes_inside(self, proto: int, prefixes: list[str]) -> int:
        """Every route of `proto` whose destination lies inside one of `prefixes` (what a
        stopped BIRD left of ours: `shoald --cleanup`); returns how many went."""
        nets = [ipaddress.ip_network(p) for p in prefixes]
        gone = 0
        for msg in self._ipr.get_routes(family=2, proto=proto):
            dst = ipaddress.ip_network(f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}")
            if any(dst.subnet_of(n) for n in nets if n.version == 4):
                try:
                    self._ipr.route("del", dst=str(dst.network_address), dst_len=dst.prefixlen, proto=proto,
                                    type=msg["type"], table=msg.get_attr("RTA_TABLE") or 254)
                    gone += 1
                except NetlinkError as exc:
                    if exc.code != errno.ESRCH:
                        raise fail(f"failed to delete route {dst}", exc) from exc
        return gone


def configure_inside(netns_path: str, ifname: str, addresses: list[str], *, default_route: bool,
                     routes: list[str]) -> None:
    """The container's end: /32s, up, the gateway's neighbour entry and link route, then
    the default route (or, without it, `routes`) via the gateway."""
    with sandbox.iface_socket(netns_path, ifname) as (c, index):
        if index is None:
            raise KernelError(f"interface {ifname} not found in {netns_path}")
        try:
            for ip in _v4(addresses):
                c.addr("add", index=index, address=ip, prefixlen=32)
            c.link("set", index=index, state="up")
            c.neigh("replace", dst=GATEWAY4, lladdr=HOST_MAC, ifindex=index, state=NUD_PERMANENT)
            c.route("replace", dst=GATEWAY4, dst_len=32, oif=index, scope=RT_SCOPE_LINK)
            for prefix in (["0.0.0.0/0"] if default_route else routes):
                net = ipaddress.ip_network(prefix)
                c.route("replace", dst=str(net.network_address), dst_len=net.prefixlen, gateway=GATEWAY4, oif=index)
        except NetlinkError as exc:
            raise fail(f"failed to configure {ifname} in {netns_path}", exc) from exc
