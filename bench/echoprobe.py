"""A raw-socket ICMP echo loop, for convergence: how soon does a new address answer?

    nsenter --net=NS python echoprobe.py      # then, per line on stdin: "IP TIMEOUT_S"

Started once inside a namespace (the existing container's), it waits for a line, then
sends an echo to IP every millisecond until the first reply from IP (or the timeout) and
prints one JSON line: {"reply": CLOCK_MONOTONIC at the reply or null, "sent": N,
"first": CLOCK_MONOTONIC of the first echo}. CLOCK_MONOTONIC is one clock for the whole
machine, so the bench subtracts the moment it sent the line. Kept running between probes
so no process start (~30 ms for Python) is inside a measurement.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import time

INTERVAL_S = 0.001


def checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def echo(ident: int, seq: int) -> bytes:
    payload = b"shoal-bench"
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(head + payload), ident, seq) + payload


def is_reply(data: bytes, ident: int) -> bool:
    icmp = data[(data[0] & 0xF) * 4:]
    return len(icmp) >= 8 and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident


def probe(sock: socket.socket, ip: str, timeout_s: float, ident: int) -> dict:
    """Echo every INTERVAL_S until IP answers; a send that fails (no neighbour yet) is retried."""
    first = time.monotonic()
    deadline, sent, nxt = first + timeout_s, 0, first
    while (now := time.monotonic()) < deadline:
        if now >= nxt:
            sent += 1
            try:
                sock.sendto(echo(ident, sent & 0xFFFF), (ip, 0))
            except OSError:
                pass  # EHOSTUNREACH after a failed ARP: keep trying
            nxt = now + INTERVAL_S
        if select.select([sock], [], [], max(0.0, min(nxt, deadline) - time.monotonic()))[0]:
            data, addr = sock.recvfrom(65535)
            if addr[0] == ip and is_reply(data, ident):
                return {"reply": time.monotonic(), "sent": sent, "first": first}
    return {"reply": None, "sent": sent, "first": first}


def main() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        ip, timeout_s = line.split()
        while select.select([sock], [], [], 0)[0]:
            sock.recv(65535)  # replies left over from the previous probe
        print(json.dumps(probe(sock, ip, float(timeout_s), ident)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
