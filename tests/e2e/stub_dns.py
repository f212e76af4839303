"""A stub upstream DNS server for tests: answers `*.upstream.test` with 10.53.0.1, NXDOMAIN
otherwise.  Run inside the test's host namespace on a loopback address only."""

import socket
import sys

import dns.message
import dns.rcode
import dns.rrset


def main(addr: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, port))
    print("ready", flush=True)
    while True:
        wire, peer = sock.recvfrom(4096)
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        name = q.question[0].name.to_text().lower()
        if name.endswith("upstream.test.") and q.question[0].rdtype == 1:
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "10.53.0.1"))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(r.to_wire(), peer)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
