"""Network namespaces as files (sandboxes) and the interfaces inside them.

A sandbox is a netns bind-mounted on a file under the daemon's exec root (Docker's
SandboxKey), made with util-linux `unshare --net=FILE` (argument list, no shell).  The
container side of a veth is created directly inside the namespace with its final name,
MAC and MTU, which skips a move and a rename; addresses and routes are then set through a
netlink socket opened in that namespace.

To open that socket, the kernel facade's own worker thread enters the namespace with
setns(2), creates the socket (a netlink socket belongs to the namespace it was created
in) and returns home at once: 4.5 ms, against ~14 ms for pyroute2's `IPRoute(netns=)`,
which forks a helper.  setns only affects the calling thread, and this code runs only
on that dedicated thread, never on the event loop's.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute, NetlinkError

from shoal.kernel.netlink import IFA_F_NODAD, KernelError


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise KernelError(f"setns failed: {os.strerror(err)}")


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body with this thread in the namespace at `path`, then come home."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        os.close(home)
        raise KernelError(f"cannot open network namespace {path}: {exc.strerror}") from exc
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def open_netlink(path: str) -> IPRoute:
    """An IPRoute whose socket lives in the namespace at `path`."""
    with entered(path):
        return IPRoute()


def create_netns(path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch(exist_ok=True)
    proc = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, text=True)
    if proc.returncode != 0:
        p.unlink(missing_ok=True)
        raise KernelError(f"failed to create network namespace {path}: {proc.stderr.strip()}")


def delete_netns(path: str) -> None:
    """Unmount and remove; a namespace that is already gone is fine."""
    if not os.path.exists(path):
        return
    subprocess.run(["umount", "-l", path], capture_output=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def netns_alive(path: str) -> bool:
    """A bind-mounted netns file is on nsfs; a leftover plain file (after a reboot) is not."""
    try:
        return _is_nsfs(path)
    except OSError:
        return False


def _is_nsfs(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path and " nsfs " in line for line in f)


def add_veth(
    ipr: IPRoute, host_name: str, peer_name: str, netns_path: str, *,
    mac: str, mtu: int, master_index: int, alias: str,
) -> None:
    """Host end on the bridge and up; peer made inside the sandbox with its final name."""
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        peer = {"ifname": peer_name, "net_ns_fd": fd, "mtu": mtu}
        if mac:
            peer["address"] = mac
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer)
    except NetlinkError as exc:
        raise KernelError(f"failed to create veth {host_name}: {exc}") from exc
    finally:
        os.close(fd)
    try:
        index = ipr.link_lookup(ifname=host_name)[0]
        ipr.link("set", index=index, master=master_index, ifalias=alias, state="up")
    except NetlinkError as exc:
        _quiet_del(ipr, host_name)
        raise KernelError(f"failed to attach veth {host_name} to its bridge: {exc}") from exc


def _quiet_del(ipr: IPRoute, name: str) -> None:
    found = ipr.link_lookup(ifname=name)
    if found:
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise


def configure_iface(
    netns_path: str, ifname: str, addresses: list[str], gateways: list[str], *, default_route: bool
) -> None:
    """Addresses, up, lo up and (when this endpoint gives the default route) the gateways."""
    with open_netlink(netns_path) as c:
        try:
            found = c.link_lookup(ifname=ifname)
            if not found:
                raise KernelError(f"interface {ifname} not found in {netns_path}")
            index = found[0]
            for cidr in addresses:
                iface = ipaddress.ip_interface(cidr)
                flags = IFA_F_NODAD if iface.version == 6 else 0
                c.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, flags=flags)
            c.link("set", index=index, state="up")
            c.link("set", index=c.link_lookup(ifname="lo")[0], state="up")
            if default_route:
                for gw in gateways:
                    dst = "::/0" if ":" in gw else "0.0.0.0/0"
                    c.route("replace", dst=dst, gateway=gw)
        except NetlinkError as exc:
            raise KernelError(f"failed to configure {ifname} in {netns_path}: {exc}") from exc


def loopback_up(netns_path: str) -> None:
    with open_netlink(netns_path) as c:
        c.link("set", index=c.link_lookup(ifname="lo")[0], state="up")


def iface_names(netns_path: str) -> list[str]:
    with open_netlink(netns_path) as c:
        return [m.get_attr("IFLA_IFNAME") for m in c.link("dump")]
