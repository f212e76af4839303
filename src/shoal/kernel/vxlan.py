"""The overlay data plane: a vxlan device per overlay network, and its static tables.

Settings, and why (docs/design.md, "Overlay data plane (kernel)"): learning off, proxy
on, no l2miss/l3miss. Every remote endpoint is programmed as two permanent entries on the
vxlan device, a neighbour entry (ip -> mac, so the device answers ARP and neighbour
solicitations itself and no ARP crosses hosts) and an FDB entry (mac -> remote VTEP);
the overlay driver reconciles both tables against the store. Nothing is learnt from
traffic and nothing waits on a miss handler, so a restart of shoald changes nothing in
the data path (flannel dropped its miss handlers for this reason). No all-zero FDB
entry exists: broadcast and unknown unicast stay on their host.

`VxlanOps` is mixed into `Netlink`; it uses its `_ipr`, `_index`, `_inside` and `link`.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from pyroute2 import NetlinkError

from shoal.kernel import nldump
from shoal.kernel.base import KernelError, LinkInfo, fail

NUD_NOARP, NUD_PERMANENT = nldump.NUD_NOARP, nldump.NUD_PERMANENT
NTF_SELF = nldump.NTF_SELF
VNI_MAX = (1 << 24) - 1


def normal_mac(mac: str) -> str:
    """Lower case, colon separated; KernelError when it is not a 6-byte MAC."""
    parts = mac.replace("-", ":").lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise KernelError(f"invalid MAC address {mac!r}")
    return ":".join(parts)


def normal_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise KernelError(f"invalid IP address {ip!r}") from None


def vxlan_attrs(*, vni: int, local: str, port: int) -> dict[str, Any]:
    """pyroute2 keywords for a new device; KernelError for values the kernel would refuse
    with a less helpful message (or, for a multicast local, after creating nothing)."""
    if not 1 <= vni <= VNI_MAX:
        raise KernelError(f"invalid VXLAN id {vni}: must be 1 to {VNI_MAX}")
    if not 1 <= port <= 65535:
        raise KernelError(f"invalid VXLAN port {port}")
    addr = ipaddress.ip_address(normal_ip(local))
    if addr.is_multicast or addr.is_unspecified or addr.is_loopback:
        raise KernelError(f"invalid VXLAN local address {local}: must be a unicast address of this host")
    attrs: dict[str, Any] = {"vxlan_id": vni, "vxlan_port": port, "vxlan_learning": 0, "vxlan_proxy": 1,
                             "vxlan_l2miss": 0, "vxlan_l3miss": 0}
    attrs["vxlan_local6" if addr.version == 6 else "vxlan_local"] = str(addr)
    return attrs


def vxlan_drift(data: dict[str, Any], *, vni: int, local: str, port: int) -> list[str]:
    """What differs between an existing device's IFLA_INFO_DATA and what is wanted, in
    words; these are set at creation only (the kernel refuses to change VNI, port, proxy
    and misses), so any drift means the device is made again."""
    want = vxlan_attrs(vni=vni, local=local, port=port)
    found = []
    for key, value in want.items():
        attr = "IFLA_" + key.upper()
        have = data.get(attr)
        if key.startswith("vxlan_local") and have is not None:
            have = str(ipaddress.ip_address(have))
        if have != value:
            found.append(f"{key.removeprefix('vxlan_')} is {have} (want {value})")
    return found


def _info_data(msg: Any) -> dict[str, Any]:
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    data = linkinfo.get_attr("IFLA_INFO_DATA") if linkinfo else None
    return {name: value for name, value in (data["attrs"] if data else []) if name.startswith("IFLA_VXLAN")}


class VxlanOps:
    """vxlan devices and their FDB and neighbour tables (mixed into Netlink)."""

    _ipr: Any

    def ensure_vxlan(self, name: str, *, vni: int, local: str, port: int = 4789, mtu: int, bridge: str,
                     alias: str, mac: str = "") -> bool:
        """Create or repair vxlan `name` on `bridge`; True when it was (re)made, and then its
        FDB and neighbour tables are empty: the caller programs every entry again.

        A device with other creation-time settings (VNI, local, port, flags, MAC) is made
        again if its alias is ours and refused otherwise; MTU, alias, master and up are
        set in place. Nothing is left behind when a step fails."""
        attrs = vxlan_attrs(vni=vni, local=local, port=port)
        mac = normal_mac(mac) if mac else ""
        master = self._index(bridge)
        if master is None:
            raise KernelError(f"bridge {bridge} not found: cannot attach vxlan {name}")
        if self.device_of_address(local) is None:
            raise KernelError(f"cannot make vxlan {name}: local address {local} is not on any link of this host")
        existing = self._existing_vxlan(name, alias, vni=vni, local=local, port=port, mac=mac)
        if existing is None:
            self._add_vxlan(name, attrs, mtu=mtu, mac=mac)
        try:
            self._attach_vxlan(name, existing, master=master, mtu=mtu, alias=alias)
        except KernelError:
            if existing is None:
                self.delete_link(name)
            raise
        return existing is None

    def _attach_vxlan(self, name: str, existing: LinkInfo | None, *, master: int, mtu: int, alias: str) -> None:
        index = existing.index if existing else self._index(name)
        if index is None:
            raise KernelError(f"vxlan {name} vanished while it was being set up")
        try:
            self._ipr.link("set", index=index, master=master, mtu=mtu, ifalias=alias, state="up")
        except NetlinkError as exc:
            raise fail(f"failed to set up vxlan {name}", exc) from exc

    def _existing_vxlan(self, name: str, alias: str, *, vni: int, local: str, port: int,
                        mac: str) -> LinkInfo | None:
        """The device to repair in place, or None once there is none (deleted if it drifted)."""
        msg = self._link_msg(name)
        if msg is None:
            return None
        info = self._info(msg)
        if info.kind != "vxlan":
            raise KernelError(f"a {info.kind or 'non-vxlan'} link named {name} exists: rename or remove it")
        drift = vxlan_drift(_info_data(msg), vni=vni, local=local, port=port)
        if mac and info.mac.lower() != mac:
            drift.append(f"mac is {info.mac} (want {mac})")
        if not drift:
            return info
        if info.alias != alias:
            raise KernelError(f"vxlan {name} is not shoal's ({'; '.join(drift)}): rename or remove it")
        self.delete_link(name)
        return None

    def _add_vxlan(self, name: str, attrs: dict[str, Any], *, mtu: int, mac: str) -> None:
        extra = {"address": mac} if mac else {}
        try:
            self._ipr.link("add", ifname=name, kind="vxlan", mtu=mtu, **attrs, **extra)
        except NetlinkError as exc:
            raise fail(f"failed to create vxlan {name} (VNI {attrs['vxlan_id']})", exc) from exc

    # -- FDB: remote MAC -> remote VTEP ------------------------------------------------
    def _dev_index(self, dev: str) -> int:
        index = self._index(dev)
        if index is None:
            raise KernelError(f"link {dev} not found")
        return index

    def fdb_replace(self, dev: str, mac: str, dst: str) -> None:
        """Permanent `mac -> dst` on vxlan `dev` (NTF_SELF: the device's own table, not its
        bridge's). Replace semantics: a MAC that moved to another VTEP is updated in place,
        so there is never a second entry for it."""
        index = self._dev_index(dev)
        try:
            self._ipr.fdb("replace", ifindex=index, lladdr=normal_mac(mac), dst=normal_ip(dst),
                          state=NUD_PERMANENT | NUD_NOARP, flags=NTF_SELF)
        except NetlinkError as exc:
            raise fail(f"failed to set FDB entry {mac} -> {dst} on {dev}", exc) from exc

    def fdb_delete(self, dev: str, mac: str, dst: str = "") -> None:
        """With `dst`, only an entry that still points there goes (one that moved to another
        VTEP stays); without it, the MAC's entry whatever its VTEP. Gone already is fine."""
        index = self._index(dev)
        if index is None:
            return
        extra = {"dst": normal_ip(dst)} if dst else {}
        try:
            self._ipr.fdb("del", ifindex=index, lladdr=normal_mac(mac), flags=NTF_SELF, **extra)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
                raise fail(f"failed to delete FDB entry {mac} on {dev}", exc) from exc

    def fdb_entries(self, dev: str) -> list[tuple[str, str]]:
        """(mac, dst) of the device's own permanent entries, an all-zero flood entry
        included; [] for a device that does not exist."""
        index = self._index(dev)
        if index is None:
            return []
        found = self._read(f"the FDB of {dev}", nldump.fdb, index)
        return [(n.lladdr, n.dst) for n in found if n.flags & NTF_SELF and n.permanent and n.dst]

    # -- neighbours: remote IP -> remote MAC (what the proxy answers) -----------------------
    def neigh_replace(self, dev: str, ip: str, mac: str) -> None:
        """Permanent `ip -> mac` on `dev`, IPv4 (ARP) or IPv6 (neighbour discovery)."""
        index = self._dev_index(dev)
        try:
            self._ipr.neigh("replace", ifindex=index, dst=normal_ip(ip), lladdr=normal_mac(mac),
                            state=NUD_PERMANENT)
        except NetlinkError as exc:
            raise fail(f"failed to set neighbour {ip} -> {mac} on {dev}", exc) from exc

    def neigh_delete(self, dev: str, ip: str) -> None:
        """Gone already (or no such device) is fine."""
        index = self._index(dev)
        if index is None:
            return
        try:
            self._ipr.neigh("del", ifindex=index, dst=normal_ip(ip))
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
                raise fail(f"failed to delete neighbour {ip} on {dev}", exc) from exc

    def neigh_entries(self, dev: str) -> list[tuple[str, str]]:
        """(ip, mac) of the device's permanent entries, both families; [] without the device."""
        index = self._index(dev)
        if index is None:
            return []
        found = self._read(f"the neighbours of {dev}", nldump.neighbours, index)
        return [(n.dst, n.lladdr) for n in found if n.permanent and n.dst and n.lladdr]

    # -- the underlay ------------------------------------------------------------------
    def device_of_address(self, ip: str) -> LinkInfo | None:
        """The link that holds local address `ip` (`--cluster-advertise IP`; its MTU bounds
        the overlay's), None when no link here has it. One address dump, read by struct."""
        want = normal_ip(ip)
        family = socket.AF_INET6 if ":" in want else socket.AF_INET
        for a in self._read("the addresses of this host", nldump.addresses, family):
            if a.address == want:
                return self._link_by_index(a.ifindex)
        return None

    def address_of_device(self, name: str) -> str:
        """The first (primary) global IPv4 address of link `name` (`--cluster-advertise
        IFACE`), "" when it has none; KernelError when there is no such link."""
        index = self._dev_index(name)
        for a in self._read(f"the addresses of {name}", nldump.addresses, socket.AF_INET, index):
            if a.scope == 0:
                return a.address
        return ""

    def _link_by_index(self, index: int) -> LinkInfo | None:
        try:
            return self._info(self._ipr.link("get", index=index)[0])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise fail(f"cannot read link {index}", exc) from exc

    def _read(self, what: str, dump: Callable[..., list], *args: Any) -> list:
        """`dump(*args)` in this kernel's namespace; `what` names the read in an error."""
        try:
            with self._inside():
                return dump(*args)
        except OSError as exc:
            raise KernelError(f"cannot read {what}: {exc.strerror}") from exc
