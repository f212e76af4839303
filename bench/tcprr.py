"""TCP request/response latency: one byte each way on one connection (like netperf TCP_RR).

    python tcprr.py serve PORT               # echo server, one connection at a time
    python tcprr.py client HOST PORT COUNT   # prints the round trips in microseconds (JSON)

The bench runs both ends inside namespaces with nsenter; ICMP cannot cross a published
port, so this is the latency probe that can.
"""

from __future__ import annotations

import json
import socket
import sys
import time

WARMUP = 10


def serve(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(1):
                conn.sendall(data)


def client(host: str, port: int, count: int) -> list[float]:
    with socket.create_connection((host, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        for i in range(WARMUP + count):
            t0 = time.perf_counter_ns()
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise RuntimeError("connection closed by the server")
            if i >= WARMUP:
                out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve":
        serve(int(argv[1]))
    elif len(argv) == 4 and argv[0] == "client":
        print(json.dumps(client(argv[1], int(argv[2]), int(argv[3]))))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
