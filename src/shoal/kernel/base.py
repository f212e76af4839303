"""What every kernel module shares: the error, the link record, name -> index.

Kept apart from kernel.netlink so that its helpers (kernel.vxlan, kernel.sandbox) can
use them without importing the Netlink class, and Netlink can use those helpers: no
import cycle inside the package.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field

from pyroute2 import NetlinkError

from shoal.errors import ShoalError

IFA_F_NODAD = 0x02


def ifindex(name: str) -> int | None:
    """`name`'s index in this thread's namespace: one ioctl, where a netlink lookup has
    pyroute2 decode the link's whole message (~1 ms of Python each, several per start)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


class KernelError(ShoalError):
    """The kernel refused an operation; the message says which and why."""


@dataclass(frozen=True)
class LinkInfo:
    name: str
    index: int
    kind: str
    alias: str
    mtu: int
    up: bool
    mac: str
    addresses: tuple[str, ...] = field(default=())
    """"ip/prefixlen", global scope; read by `links()` only: pyroute2 filters an address dump
    by link in Python, so asking for one link's costs a dump of every address (~0.3 s with
    a thousand bridges)."""
    master: int = 0
    """The index of the bridge this link is a port of; 0 for none."""


def fail(action: str, exc: NetlinkError) -> KernelError:
    """A KernelError that says what was tried and the kernel's reason (errno name)."""
    reason = errno.errorcode.get(exc.code, str(exc.code))
    return KernelError(f"{action}: {exc.args[1] if len(exc.args) > 1 else exc} ({reason})")
