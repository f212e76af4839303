"""Neighbour, FDB and address dumps that the kernel filters, read with `struct`.

Why: pyroute2 sends every dump unfiltered and filters in Python after decoding each
message into a tree of objects. An overlay host holds a permanent neighbour and FDB entry
per remote endpoint of every overlay network, so "the entries of this vxlan device" cost
a decode of every entry of the host: measured with 5000 entries on another device and 10
on ours, ~155 ms (neighbours) and ~135 ms (FDB) per call, against under 1 ms here. The
kernel filters a neighbour dump by the NDA_IFINDEX attribute, an FDB dump by ndm_ifindex
(with strict checking, kernel 4.20+), an address dump by ifa_index (strict checking);
the parser drops other devices' messages too, so an older kernel that ignores a filter
only costs time, never correctness.

- neighbours(ifindex): every neighbour entry of one device, both families.
- fdb(ifindex): the FDB entries of one device (its own, NTF_SELF, and its bridge's).
- addresses(family, ifindex): addresses of one device, or of all with ifindex 0.

Each opens a NETLINK_ROUTE socket in the calling thread's namespace.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

RTM_NEWADDR, RTM_GETADDR, RTM_NEWNEIGH, RTM_GETNEIGH = 20, 22, 28, 30
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NDA_DST, NDA_LLADDR, NDA_IFINDEX = 1, 2, 8
IFA_ADDRESS, IFA_LOCAL = 1, 2
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_SELF, NTF_MASTER = 0x02, 0x04
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
_NLMSG = struct.Struct("=IHHII")   # len, type, flags, seq, pid
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTA = struct.Struct("=HH")         # len, type


@dataclass(frozen=True)
class Neighbour:
    """One neighbour or FDB entry; `dst` is "" when the entry has none (a bridge's own)."""

    family: int
    ifindex: int
    state: int
    flags: int
    dst: str
    lladdr: str

    @property
    def permanent(self) -> bool:
        return bool(self.state & NUD_PERMANENT)


@dataclass(frozen=True)
class Address:
    family: int
    ifindex: int
    prefixlen: int
    scope: int
    address: str


def _rta(kind: int, payload: bytes) -> bytes:
    length = _RTA.size + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _request(kind: int, body: bytes, seq: int) -> bytes:
    return _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def neigh_request(ifindex: int, seq: int = 1) -> bytes:
    """Both families (AF_UNSPEC); the device goes in NDA_IFINDEX, the only place the
    kernel reads it for a neighbour dump."""
    body = _NDMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _rta(NDA_IFINDEX, struct.pack("=I", ifindex))
    return _request(RTM_GETNEIGH, body, seq)


def fdb_request(ifindex: int, seq: int = 1) -> bytes:
    """AF_BRIDGE with the device in ndm_ifindex (read there under strict checking)."""
    return _request(RTM_GETNEIGH, _NDMSG.pack(socket.AF_BRIDGE, ifindex, 0, 0, 0), seq)


def addr_request(family: int, ifindex: int, seq: int = 1) -> bytes:
    return _request(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, ifindex), seq)


def attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    """The rtattrs between `offset` and `end`, by type (shared with kernel.rtdump)."""
    found = {}
    while offset + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            break
        found[kind & 0x3FFF] = data[offset + _RTA.size:offset + length]  # without NLA_F_NESTED/BYTEORDER
        offset += (length + 3) & ~3
    return found


def _ip(raw: bytes | None) -> str:
    if raw is None:
        return ""
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


def _mac(raw: bytes | None) -> str:
    return ":".join(f"{b:02x}" for b in raw) if raw else ""


def parse_neighbour(data: bytes, offset: int, length: int, ifindex: int) -> Neighbour | None:
    """The RTM_NEWNEIGH message at `offset`, or None when it belongs to another device."""
    family, index, state, flags, _ = _NDMSG.unpack_from(data, offset + _NLMSG.size)
    if ifindex and index != ifindex:
        return None
    found = attrs(data, offset + _NLMSG.size + _NDMSG.size, offset + length)
    return Neighbour(family, index, state, flags, _ip(found.get(NDA_DST)), _mac(found.get(NDA_LLADDR)))


def parse_address(data: bytes, offset: int, length: int, ifindex: int) -> Address | None:
    """The RTM_NEWADDR message at `offset`; IFA_LOCAL is the address for IPv4 (IFA_ADDRESS
    is the peer's on a point-to-point link), IPv6 has IFA_ADDRESS only."""
    family, prefixlen, _, scope, index = _IFADDRMSG.unpack_from(data, offset + _NLMSG.size)
    if ifindex and index != ifindex:
        return None
    found = attrs(data, offset + _NLMSG.size + _IFADDRMSG.size, offset + length)
    raw = found.get(IFA_LOCAL, found.get(IFA_ADDRESS))
    return Address(family, index, prefixlen, scope, _ip(raw)) if raw else None


def messages(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(type, offset, length) of each netlink message in one received buffer; raises
    OSError for an NLMSG_ERROR that carries an error."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            return
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, offset + _NLMSG.size)[0]
            if code:
                raise OSError(code, f"netlink dump: {os.strerror(code)}")
        yield kind, offset, length
        offset += (length + 3) & ~3


def _dump(request: bytes, want: int, parse: Callable[[bytes, int, int, int], Any], ifindex: int) -> list:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        except OSError:
            pass  # an older kernel: it dumps everything and the parser filters
        sock.bind((0, 0))
        sock.send(request)
        out = []
        while True:
            data = sock.recv(1 << 16)
            for kind, offset, length in messages(data):
                if kind == NLMSG_DONE:
                    return out
                if kind == want and (item := parse(data, offset, length, ifindex)) is not None:
                    out.append(item)


def neighbours(ifindex: int) -> list[Neighbour]:
    return _dump(neigh_request(ifindex), RTM_NEWNEIGH, parse_neighbour, ifindex)


def fdb(ifindex: int) -> list[Neighbour]:
    return _dump(fdb_request(ifindex), RTM_NEWNEIGH, parse_neighbour, ifindex)


def addresses(family: int, ifindex: int = 0) -> list[Address]:
    return _dump(addr_request(family, ifindex), RTM_NEWADDR, parse_address, ifindex)
