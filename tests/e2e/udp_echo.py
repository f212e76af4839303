"""UDP helper for tests, run inside a namespace with nsenter: `serve PORT` answers every
datagram with `pong <sender address>`; `ask HOST PORT` sends one and prints the answer."""

import socket
import sys


def serve(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(f"pong {peer[0]}".encode(), peer)


def ask(host: str, port: int) -> None:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.5)
    s.sendto(b"ping", (host, port))
    try:
        print(s.recvfrom(2048)[0].decode())
    except OSError:
        pass


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        ask(sys.argv[2], int(sys.argv[3]))
