"""One route dump, read with `struct` instead of pyroute2's message parser.

Why: the pool-overlap check reads every route of the main table, and with a thousand
bridges pyroute2 needed ~3 s of CPU to decode that dump (each message becomes a tree of
Python objects); unpacking the two fields we need costs a few ms. Everything else in the
kernel layer stays on pyroute2.

- main_routes(): distinct destinations in the main table, both families, default routes
  left out (every bridge has its own fe80::/64: that is one destination).
"""

from __future__ import annotations

import socket
import struct

from shoal.kernel import nldump

RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_DONE = 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTA_DST, RTA_TABLE = 1, 15
MAIN_TABLE = 254
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
_NLMSG = struct.Struct("=IHHII")      # len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags


def _request(family: int, seq: int) -> bytes:
    body = _RTMSG.pack(family, 0, 0, 0, MAIN_TABLE, 0, 0, 0, 0)
    return _NLMSG.pack(_NLMSG.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _route(data: bytes, offset: int, length: int) -> tuple[int, bytes, int] | None:
    """(family, address, prefix length) of one RTM_NEWROUTE in the main table, or None."""
    family, dst_len, _, _, table, *_ = _RTMSG.unpack_from(data, offset + _NLMSG.size)
    attrs = nldump.attrs(data, offset + _NLMSG.size + _RTMSG.size, offset + length)
    if RTA_TABLE in attrs:
        table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0]
    dst = attrs.get(RTA_DST)
    if table != MAIN_TABLE or dst_len == 0 or dst is None:
        return None
    return family, dst, dst_len


def _dump(sock: socket.socket, family: int, seq: int) -> set[tuple[int, bytes, int]]:
    sock.send(_request(family, seq))
    out: set[tuple[int, bytes, int]] = set()
    while True:
        data = sock.recv(1 << 16)
        for kind, offset, length in nldump.messages(data):  # raises OSError on a refusal
            if kind == NLMSG_DONE:
                return out
            if kind == RTM_NEWROUTE and (dst := _route(data, offset, length)):
                out.add(dst)


def main_routes() -> list[str]:
    """In the calling thread's network namespace; OSError when the kernel refuses."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        # strict checking makes the kernel send the main table only (else also the local
        # table, a few routes more per bridge); the filter below still applies without it
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        except OSError:
            pass
        sock.bind((0, 0))
        found = _dump(sock, socket.AF_INET, 1) | _dump(sock, socket.AF_INET6, 2)
    # the kernel keeps destinations canonical (no host bits), so no ipaddress round trip
    return [f"{socket.inet_ntop(family, dst)}/{dst_len}" for family, dst, dst_len in sorted(found)]
