"""Synchronous netlink operations over one pyroute2 IPRoute socket.

Every public method is idempotent where it can be ("ensure_*", delete of a missing
link is fine) and undoes its own partial work when it fails half-way, so callers only
need to roll back whole steps.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from contextlib import contextmanager
from collections.abc import Sequence
from typing import Iterator

from pyroute2 import IPRoute, NetlinkError

from shoal.kernel import rtdump
from shoal.kernel.base import IFA_F_NODAD, KernelError, LinkInfo, fail, ifindex
from shoal.kernel.macvlan import MacvlanOps
from shoal.kernel.routed import RoutedOps
from shoal.kernel.vxlan import VxlanOps

PROC_USER_INIT_INO, PROC_NET_INIT_INO = 0xEFFFFFFD, 0xEFFFFFF9  # include/linux/proc_ns.h (kernels that fix them)

__all__ = ["IFA_F_NODAD", "KernelError", "LinkInfo", "Netlink", "ifindex"]


def _write_sysctls(values: dict[str, str], missing_ok: bool = False) -> list[str]:
    written = []
    for key, value in values.items():
        if ".." in key or key.startswith("/"):
            raise KernelError(f"invalid sysctl key {key}")
        if missing_ok and not os.path.exists(f"/proc/sys/{key}"):
            continue
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        except OSError as exc:
            raise KernelError(f"cannot set sysctl {key.replace('/', '.')}={value}: {exc.strerror}") from exc
        written.append(key)
    return written


class Netlink(VxlanOps, MacvlanOps, RoutedOps):
    """Owns one IPRoute; must be used from a single thread (the facade's). The overlay's
    vxlan devices, FDB and neighbour entries come from `VxlanOps` (kernel.vxlan), macvlan
    ports and their VLAN parents from `MacvlanOps` (kernel.macvlan), routed veths and
    their routes from `RoutedOps` (kernel.routed)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        if netns:
            self._ipr = IPRoute(netns=netns, flags=0)
        else:
            self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    @contextmanager
    def _inside(self) -> Iterator[None]:
        """This thread in this kernel's namespace, for what does not go through `_ipr`."""
        from shoal.kernel import sandbox

        if not self.netns:
            yield
            return
        with sandbox.entered(self.netns if self.netns.startswith("/") else f"/run/netns/{self.netns}"):
            yield

    # -- queries -----------------------------------------------------------------------
    def _index(self, name: str) -> int | None:
        with self._inside():
            return ifindex(name)

    def link(self, name: str) -> LinkInfo | None:
        msg = self._link_msg(name)
        return self._info(msg) if msg is not None else None

    def _link_msg(self, name: str):  # noqa: ANN202 - pyroute2 message
        """The link's whole netlink message (vxlan settings live in it), or None if gone."""
        index = self._index(name)
        if index is None:
            return None
        try:
            return self._ipr.link("get", index=index)[0]
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise fail(f"cannot read link {name}", exc) from exc

    def links(self) -> list[LinkInfo]:
        """Every link, with one address dump for all of them (not one per link)."""
        by_index: dict[int, list[str]] = {}
        for a in self._ipr.addr("dump"):
            if a["scope"] == 0:
                by_index.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        return [self._info(m, tuple(by_index.get(m["index"], ()))) for m in self._ipr.link("dump")]

    @staticmethod
    def _info(msg, addrs: tuple[str, ...] = ()) -> LinkInfo:  # noqa: ANN001 - pyroute2 message
        linkinfo = msg.get_attr("IFLA_LINKINFO")
        kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo else ""
        return LinkInfo(
            name=msg.get_attr("IFLA_IFNAME"),
            index=msg["index"],
            kind=kind or "",
            alias=msg.get_attr("IFLA_IFALIAS") or "",
            mtu=msg.get_attr("IFLA_MTU"),
            up=bool(msg["flags"] & 1),
            mac=msg.get_attr("IFLA_ADDRESS") or "",
            addresses=addrs,
            master=msg.get_attr("IFLA_MASTER") or 0,
        )

    def routes(self) -> list[str]:
        """Destinations in the main table (both families), default routes left out."""
        try:
            with self._inside():
                return rtdump.main_routes()
        except OSError as exc:
            raise KernelError(f"cannot read the host's routes: {exc.strerror}") from exc

    # -- bridges -----------------------------------------------------------------------
    def ensure_bridge(self, name: str, *, mtu: int, addresses: list[str], alias: str, mac: str = "") -> bool:
        """Create or repair bridge `name`; returns True when it had to be created.

        The bridge's MAC is always set explicitly: a bridge without one follows the lowest
        MAC among its ports, so removing that port changes the gateway's MAC under every
        other container's ARP entry (no traffic until they expire, 30 s or more). A new
        bridge gets `mac`; one that exists keeps the MAC it has (its containers' ARP
        caches hold it), set again so that it is pinned from now on."""
        existing = self.link(name)
        created = existing is None
        if created:
            extra = {"address": mac} if mac else {}
            try:
                self._ipr.link("add", ifname=name, kind="bridge", mtu=mtu, **extra)
            except NetlinkError as exc:
                raise fail(f"failed to create bridge {name}", exc) from exc
        try:
            index = existing.index if existing else self._index(name)
            if index is None:
                raise KernelError(f"bridge {name} vanished while it was being set up")
            self._ensure_addresses(index, addresses)
            pin = {"address": existing.mac} if existing is not None and existing.mac else {}
            self._ipr.link("set", index=index, mtu=mtu, ifalias=alias, state="up", **pin)
        except NetlinkError as exc:
            if created:
                self.delete_link(name)
            raise fail(f"failed to set up bridge {name}", exc) from exc
        return created

    def _ensure_addresses(self, index: int, wanted: list[str]) -> None:
        """Adds each; one that is there already is fine (cheaper than reading them first)."""
        for cidr in wanted:
            iface = ipaddress.ip_interface(cidr)
            flags = IFA_F_NODAD if iface.version == 6 else 0
            try:
                self._ipr.addr(
                    "add", index=index, address=str(iface.ip),
                    prefixlen=iface.network.prefixlen, flags=flags,
                )
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise

    def add_veth(
        self, host_name: str, peer_name: str, netns_path: str, *, mac: str, mtu: int, bridge: str, alias: str
    ) -> None:
        """A veth whose peer is born inside `netns_path`, host end enslaved to `bridge`."""
        from shoal.kernel import sandbox

        master = self._index(bridge)
        if master is None:
            raise KernelError(f"bridge {bridge} not found: restart shoald to repair its network")
        sandbox.add_veth(
            self._ipr, host_name, peer_name, netns_path, mac=mac, mtu=mtu, master_index=master, alias=alias,
            index_of=self._index,
        )

    def attach_port(self, ifname: str, bridge: str) -> None:
        """Put an existing link back on `bridge`, up (after the bridge was recreated)."""
        index, master = self._index(ifname), self._index(bridge)
        if index is None or master is None:
            raise KernelError(f"cannot attach {ifname} to {bridge}: "
                              f"{ifname if index is None else bridge} not found")
        try:
            self._ipr.link("set", index=index, master=master, state="up")
        except NetlinkError as exc:
            raise fail(f"failed to attach {ifname} to {bridge}", exc) from exc

    def set_hairpin(self, ifname: str) -> None:
        """Hairpin mode on a bridge port: a container may reach itself through a published port."""
        index = self._index(ifname)
        if index is None:
            raise KernelError(f"bridge port {ifname} not found")
        try:
            self._ipr.brport("set", index=index, mode=1)
        except NetlinkError as exc:
            raise fail(f"failed to set hairpin on {ifname}", exc) from exc

    def set_sysctls(self, values: dict[str, str], missing_ok: bool = False) -> list[str]:
        """Write /proc/sys keys (`net/ipv4/ip_forward`) in this kernel's namespace only;
        `missing_ok`: skip keys a module not loaded would provide (net/bridge/...). -> the
        keys written."""
        if not values:
            return []
        with self._inside():
            return _write_sysctls(values, missing_ok)

    def in_initial_netns(self) -> bool:
        """Whether this kernel's namespace is the machine's (pid 1's): other software
        shares it, so machine-wide switches there are not ours to flip."""
        with self._inside():  # thread-self: `_inside` moves this thread, not the process
            mine = os.stat("/proc/thread-self/ns/net").st_ino
        try:
            return mine == os.stat("/proc/1/ns/net").st_ino
        except OSError:  # pid 1 hidden (a sandbox's init): newer kernels number init_net fixed
            fixed = os.stat("/proc/thread-self/ns/user").st_ino == PROC_USER_INIT_INO
            return mine == PROC_NET_INIT_INO or not fixed  # can't tell: take it for the machine's

    def retire_link(self, name: str, new_name: str, object_id: str, addresses: Sequence[str] = ()) -> bool:
        """Take `name` out of use at once (down, off its bridge, without `addresses`, renamed
        `new_name`) so that the name and its subnet are free before the slow delete (netdev
        unregistration waits for RCU: ~30-40 ms a bridge, ~20 a veth pair).  Its alias
        becomes `OWNER:retired:gone-ID`: still ours, owned by nothing, so restore deletes it
        after a crash.  False if it is gone or its alias does not end with `object_id`.
        The addresses are named, not flushed: a flush dumps every address of the namespace
        (90 ms with a thousand bridges), and a down link keeps its IPv4 local route."""
        msg = self._link_msg(name)
        if msg is None or not (alias := msg.get_attr("IFLA_IFALIAS") or "").endswith(object_id):
            return False
        retired = f"{alias.rsplit(':', 2)[0]}:retired:gone-{object_id[:12]}"
        index = msg["index"]
        try:
            self._ipr.link("set", index=index, state="down", master=0)
            for cidr in addresses:
                self._del_addr(index, cidr)
            self._ipr.link("set", index=index, ifname=new_name, ifalias=retired)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise fail(f"failed to retire link {name}", exc) from exc
        return True

    def _del_addr(self, index: int, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        try:
            self._ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as exc:
            if exc.code != errno.EADDRNOTAVAIL:
                raise

    def delete_link(self, name: str) -> None:
        """Delete by exact name; a link that is already gone is fine."""
        index = self._index(name)
        if index is None:
            return
        try:
            self._ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise fail(f"failed to delete link {name}", exc) from exc
