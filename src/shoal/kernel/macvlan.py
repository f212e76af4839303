"""macvlan endpoints, their 802.1q parents, and asking the kernel which link kinds it has.

A macvlan endpoint is made directly inside the sandbox (IFLA_NET_NS_FD, the parent's
index read in the host namespace) with its final name and MAC, as the bridge driver's
veth peer is: no temporary host-side name, no move, no rename (1.0 ms an add through the
facade, on 6.18). Its delete waits for RCU (15 ms), so a leave retires it instead (down,
no addresses, renamed: 1.8 ms) and deletes it in the background, like a veth.

A link kind the kernel lacks (no module: dummy, vlan, ipvlan on this machine's 6.18)
makes RTM_NEWLINK fail with EOPNOTSUPP ("Unknown device type" in iproute2's words);
`KernelUnsupported` says so, so a driver can tell "this kernel cannot" from "refused".

`MacvlanOps` is mixed into `Netlink`; it uses its `_ipr`, `_index` and `link`.
"""

from __future__ import annotations

import errno
import os
import secrets
from typing import TYPE_CHECKING

from pyroute2 import IPRoute, NetlinkError

from shoal.kernel.base import KernelError, LinkInfo, fail

MACVLAN_MODES = ("private", "vepa", "bridge", "passthru", "source")


class KernelUnsupported(KernelError):
    """The kernel has no support for a link kind (its module is not built or loadable)."""


def is_unsupported(exc: NetlinkError) -> bool:
    return exc.code == errno.EOPNOTSUPP


class MacvlanOps:
    _ipr: IPRoute
    if TYPE_CHECKING:  # provided by Netlink
        def _index(self, name: str) -> int | None: ...
        def delete_link(self, name: str) -> None: ...
        def link(self, name: str) -> LinkInfo | None: ...

    def add_macvlan(self, ifname: str, netns_path: str, *, parent: str, mode: str, mac: str = "") -> str:
        """A macvlan of `parent` born inside `netns_path` as `ifname` (down); -> its MAC.
        No `mac`: the kernel's (a passthru port always takes its parent's)."""
        if mode not in MACVLAN_MODES:
            raise KernelError(f"invalid macvlan mode {mode!r}")
        index = self._index(parent)
        if index is None:
            raise KernelError(f"the requested parent interface {parent} was not found on the host")
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            extra = {"address": mac} if mac else {}
            self._ipr.link("add", ifname=ifname, kind="macvlan", link=index, macvlan_mode=mode,
                           net_ns_fd=fd, **extra)
        except NetlinkError as exc:
            if is_unsupported(exc):
                raise KernelUnsupported(f"this kernel has no macvlan support: {exc}") from exc
            raise fail(f"failed to create the macvlan port {ifname} on {parent}", exc) from exc
        finally:
            os.close(fd)
        return self._mac_in(netns_path, ifname) if not mac else mac

    @staticmethod
    def _mac_in(netns_path: str, ifname: str) -> str:
        from shoal.kernel import sandbox

        with sandbox.open_netlink(netns_path) as c:
            found = c.link_lookup(ifname=ifname)
            return c.link("get", index=found[0])[0].get_attr("IFLA_ADDRESS") if found else ""

    def add_vlan(self, name: str, *, base: str, vlan_id: int, alias: str) -> None:
        """802.1q sub-interface `name` of `base`, up, marked `alias`; gone again if any step fails."""
        index = self._index(base)
        if index is None:
            raise KernelError(f"-o parent interface was not found on the host: {base}")
        try:
            self._ipr.link("add", ifname=name, kind="vlan", link=index, vlan_id=vlan_id)
        except NetlinkError as exc:
            if is_unsupported(exc):
                raise KernelUnsupported(
                    f"cannot create the 802.1q sub-interface {name}: this kernel has no 8021q (VLAN) support "
                    f"(load the 8021q module, or create {name} yourself and give it as the parent)") from exc
            raise fail(f"failed to create {name} vlan link", exc) from exc
        try:
            new = self._index(name)
            if new is None:
                raise KernelError(f"vlan link {name} vanished while it was being set up")
            self._ipr.link("set", index=new, ifalias=alias, state="up")
        except (NetlinkError, KernelError) as exc:
            self.delete_link(name)
            if isinstance(exc, KernelError):
                raise
            raise fail(f"failed to enable {name} the macvlan parent link", exc) from exc

    def ensure_stub_parent(self, name: str, *, alias: str, mtu: int) -> str:
        """A parent that reaches nothing, for a macvlan network without `-o parent`: a
        `dummy` as dockerd makes, else an `ifb` (this machine's kernel has no dummy; an
        ifb is as inert: up, carrier on, every frame given to it dropped; an empty bridge
        is not: its carrier goes off, and its ports' with it). Made if missing, then up
        and marked; -> its kind."""
        existing = self.link(name)
        kind = existing.kind if existing is not None else ""
        for candidate in ("dummy", "ifb") if existing is None else ():
            try:
                self._ipr.link("add", ifname=name, kind=candidate, mtu=mtu)
            except NetlinkError as exc:
                if is_unsupported(exc):
                    continue
                raise fail(f"failed to create the macvlan parent {name}", exc) from exc
            kind = candidate
            break
        else:
            if existing is None:
                raise KernelUnsupported(f"cannot create the macvlan parent {name}: this kernel has neither "
                                        "dummy nor ifb links")
        try:
            index = self._index(name)
            if index is None:
                raise KernelError(f"macvlan parent {name} vanished while it was being set up")
            self._ipr.link("set", index=index, ifalias=alias, state="up")
        except NetlinkError as exc:
            if existing is None:
                self.delete_link(name)
            raise fail(f"failed to enable {name} the macvlan parent link", exc) from exc
        return kind

    def has_link_kind(self, kind: str) -> bool:
        """Whether the kernel can make links of `kind`: an add without the attributes a
        real one needs fails with EOPNOTSUPP only when the kind is unknown (EINVAL, or a
        link, otherwise; one made is deleted at once)."""
        probe = f"shp{secrets.token_hex(5)}"
        try:
            self._ipr.link("add", ifname=probe, kind=kind)
        except NetlinkError as exc:
            return not is_unsupported(exc)
        self.delete_link(probe)
        return True
