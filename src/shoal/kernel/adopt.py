"""Interfaces someone else made (a remote plugin's SrcName), moved into a sandbox and back.

libnetwork's sandbox code does this for every driver that names an interface in Join:
the link goes from the host namespace into the sandbox, down, renamed (DstPrefix + N),
given the endpoint's MAC and addresses, up, then routed. When the endpoint leaves it is
put down, given its old name back and returned to the host namespace, where the plugin
deletes it (DeleteEndpoint). A move that fails half-way is undone the same way, so the
plugin finds its link where it left it.

Runs on the kernel facade's thread only (setns affects the calling thread).
"""

from __future__ import annotations

import errno
import ipaddress
import os

from pyroute2 import IPRoute, NetlinkError

from shoal.kernel.base import KernelError, fail
from shoal.kernel.sandbox import iface_socket, netns_alive, on_iface


def move_in(ipr: IPRoute, index: int | None, src: str, netns_path: str) -> None:
    """The host's link `src` (index in `ipr`'s namespace) into the sandbox."""
    if index is None:
        raise KernelError(f"failed to get link by name {src!r}: the plugin's interface is not in shoald's namespace")
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("set", index=index, state="down")
        ipr.link("set", index=index, net_ns_fd=fd)
    except NetlinkError as exc:
        raise fail(f"failed to move {src} into {netns_path}", exc) from exc
    finally:
        os.close(fd)


def rename_inside(netns_path: str, src: str, dst: str, mac: str, host_ns: str) -> None:
    """In the sandbox: `src` renamed `dst`, MAC set when one is given. On failure the link
    goes back to the host namespace under its own name."""
    with iface_socket(netns_path, src) as (c, index):
        if index is None:
            raise KernelError(f"interface {src} vanished while moving into {netns_path}")
        try:
            c.link("set", index=index, ifname=dst)
            if mac:
                c.link("set", index=index, address=mac)
        except NetlinkError as exc:
            _home(c, index, src, host_ns)
            raise fail(f"failed to set up {src} as {dst} in {netns_path}", exc) from exc


def add_routes(netns_path: str, ifname: str, routes: list[tuple[str, str]]) -> None:
    """`(destination, next hop)` pairs; an empty next hop is a connected route on
    `ifname` (the plugin's RouteType 1)."""
    with iface_socket(netns_path, ifname) as (c, index):
        if index is None:
            raise KernelError(f"interface {ifname} not found in {netns_path}")
        for dst, via in routes:
            net = ipaddress.ip_network(dst, strict=False)
            try:
                if via:
                    c.route("replace", dst=str(net), gateway=via)
                else:
                    c.route("replace", dst=str(net), oif=index, scope=253)  # link scope
            except NetlinkError as exc:
                raise fail(f"failed to add the plugin's route {dst} {'via ' + via if via else 'dev ' + ifname}", exc) from exc


def move_out(netns_path: str, ifname: str, src: str, host_ns: str) -> None:
    """The sandbox's `ifname` down, renamed `src` and back in the host namespace; gone
    already (or the sandbox with it) is fine."""
    def home(c: IPRoute, index: int) -> None:
        c.link("set", index=index, state="down")
        _home(c, index, src, host_ns, rename=True)

    if netns_alive(netns_path):
        on_iface(netns_path, ifname, "put down", home)


def _home(c: IPRoute, index: int, src: str, host_ns: str, rename: bool = True) -> None:
    fd = os.open(host_ns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if rename:
            c.link("set", index=index, ifname=src)
        c.link("set", index=index, net_ns_fd=fd)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise fail(f"failed to return {src} to the host namespace", exc) from exc
    finally:
        os.close(fd)
