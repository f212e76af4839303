"""Packet helpers for tests that need more than busybox offers."""

from __future__ import annotations

import os
import select
import socket
import struct
import time

from shoal.kernel.sandbox import entered


def icmp_checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def df_ping(netns_path: str, dst: str, size: int, timeout: float = 3.0) -> str:
    """One echo of `size` data bytes with DF set, from inside the namespace at `netns_path`:
    "ok", "EMSGSIZE" or "timeout". busybox ping has no `-M do`, and without DF the kernel
    fragments instead of failing."""
    with entered(netns_path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with sock:
        sock.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        ident, payload = os.getpid() & 0xFFFF, bytes(size)
        checksum = icmp_checksum(struct.pack("!BBHHH", 8, 0, 0, ident, 1) + payload)
        try:
            sock.sendto(struct.pack("!BBHHH", 8, 0, checksum, ident, 1) + payload, (dst, 0))
        except OSError as exc:
            return "EMSGSIZE" if exc.errno == 90 else str(exc)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data = sock.recv(65535)
            icmp = data[(data[0] & 0xF) * 4:]
            if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return "ok"
        return "timeout"
