"""Routed networks (issue #9) beside their floor and beside the overlay, in one run.

    .venv/bin/python bench/routed_ab.py [--rounds 4] [--seconds 3] [--samples 8] [--prefix shb]
    (root, ~3 minutes)

Not part of `bench/run`. Builds a 2-host shoal lab (shoal.lab: namespaces on an underlay
bridge, etcd, one shoald and, for the routed network, one BIRD per host) with a routed
network and an overlay network, a server container on host B and a client on host A on
each, and the raw routed path: two host namespaces on an underlay bridge of their own,
each with a container namespace joined by a veth (container /32, default via
169.254.1.1, proxy ARP on the host end, a /32 route back), the other host's /24 routed
by hand via its underlay address: the same kernel path with no nftables, no BIRD, no
store. Measures container A -> container B in interleaved rounds (iperf3 Gbit/s, TCP
round trip) and prints medians and paired ratios over raw.

Convergence: the time from a new container on B running (its start answered) until the
client on A gets its first ping answer (polled every 20 ms), (1) when B already holds a block with room (only B's
/32 route is new) and (2) when B must claim a block first (a new routed network per
sample: B's BIRD is reconfigured and announces it, A's BIRD installs it). Every
namespace is named `<prefix>-rt*`, the lab `<prefix>` + 4 hex; removed by exact name.
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import socket
import struct
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases.overlay import Ends
from cases.traffic import IPERF, RR, iperf, tcp_rr
from common import busybox_tar
from overlaylab import LabHost

RAW_UNDERLAY, RAW_POOL = "198.18.249", "10.98"


class RawRouted:
    """Two hosts, one container each, routed by hand (see the module doc)."""

    def __init__(self, prefix: str) -> None:
        tag = secrets.token_hex(2)
        self.underlay = f"{prefix}-rtu-{tag}"
        self.hosts = [f"{prefix}-rth{i}-{tag}" for i in (1, 2)]
        self.ctrs = [f"{prefix}-rtc{i}-{tag}" for i in (1, 2)]
        self.made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _ns(self, name: str, batch: str = "") -> None:
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.made.append(name)
        self._batch(name, "link set lo up\n" + batch)

    @staticmethod
    def _batch(ns: str, text: str) -> None:
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=text.encode(), check=True, capture_output=True)

    def ip(self, i: int) -> str:
        return f"{RAW_POOL}.{i + 1}.2"

    def _build(self) -> None:
        self._ns(self.underlay, "link add ul0 type bridge\nlink set ul0 up\n")
        for i, (host, ctr) in enumerate(zip(self.hosts, self.ctrs)):
            self._ns(host)
            self._ns(ctr)
            self._batch(self.underlay, f"link add h{i} type veth peer name eth0 netns {host}\nlink set h{i} master ul0 up\n")
            self._batch(host, f"addr add {RAW_UNDERLAY}.{i + 1}/24 dev eth0\nlink set eth0 up\n"
                              f"link add rt0 address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns {ctr}\n"
                              f"link set rt0 up\nroute add {self.ip(i)}/32 dev rt0 scope link\n"
                              f"route add {RAW_POOL}.{2 - i}.0/24 via {RAW_UNDERLAY}.{2 - i}\n")
            for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.rt0.proxy_arp=1",
                        "net.ipv4.neigh.rt0.proxy_delay=0"):
                subprocess.run(["ip", "netns", "exec", host, "sysctl", "-qw", key], check=True)
            self._batch(ctr, f"addr add {self.ip(i)}/32 dev eth0\nlink set eth0 up\n"
                             "neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent\n"
                             "route add 169.254.1.1/32 dev eth0 scope link\n"
                             "route add default via 169.254.1.1 dev eth0\n")

    def ends(self) -> Ends:
        return Ends(f"/run/netns/{self.ctrs[0]}", f"/run/netns/{self.ctrs[1]}", self.ip(1))

    def close(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "delete", name], check=False, stderr=subprocess.DEVNULL)
        self.made = []


def create(h: LabHost, name: str, driver: str, subnet: str, **options: str) -> None:
    body = {"Name": name, "Driver": driver, "IPAM": {"Driver": "default", "Config": [{"Subnet": subnet}]},
            "Options": options}
    h._ok(h.client.post("/networks/create", json=body))


def seen(h: LabHost, net: str) -> None:
    deadline = time.monotonic() + 30
    while net not in h.network_names():
        if time.monotonic() > deadline:
            raise RuntimeError(f"network {net} not seen on {h.name}")
        time.sleep(0.05)


class Pinger:
    """ICMP echo from inside a namespace: a raw socket opened there once (it stays there),
    so a poll costs one packet, not a process (the host has no ping binary)."""

    def __init__(self, ns_path: str) -> None:
        from shoal.kernel.sandbox import entered

        with entered(ns_path):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.ident, self.seq = os.getpid() & 0xFFFF, 0

    def ping(self, ip: str, timeout: float = 0.2) -> bool:
        self.seq = (self.seq + 1) & 0xFFFF
        body = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq) + b"shoal"
        csum = _checksum(body)
        self.sock.sendto(body[:2] + struct.pack("!H", csum) + body[4:], (ip, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                break
            data, addr = self.sock.recvfrom(1024)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, ident, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if addr[0] == ip and kind == 0 and ident == self.ident and seq == self.seq:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data[:len(data) // 2 * 2]))
    if len(data) % 2:
        total += data[-1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping_ok(ns: str, ip: str, timeout: float = 1.0) -> bool:
    p = Pinger(ns)
    try:
        return p.ping(ip, timeout)
    finally:
        p.close()


def reach_time(a_ns: str, b: LabHost, net: str, timeout: float = 60.0) -> tuple[float, float, object]:
    """Seconds from B's start request, and from its answer (the container runs), until A's
    first ping answer (polled every 20 ms); and the container."""
    pinger = Pinger(a_ns)
    try:
        asked = time.monotonic()
        started = b.run(net)
        running = time.monotonic()
        ctr = b.inspect(started)
        while not pinger.ping(ctr.ip, 0.02):
            if time.monotonic() - asked > timeout:
                raise RuntimeError(f"{ctr.ip} on {b.name} not reachable after {timeout:.0f} s")
        now = time.monotonic()
        return now - asked, now - running, ctr
    finally:
        pinger.close()


def convergence(a: LabHost, b: LabHost, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("block held, from request", "block held, from running",
                                                   "block claimed, from request", "block claimed, from running")}
    client = a.inspect(a.run("r1"))
    for _ in range(samples):  # r1: B holds a block with room (its server container is in it)
        asked, running, ctr = reach_time(client.netns, b, "r1")
        out["block held, from request"].append(asked)
        out["block held, from running"].append(running)
        b.rm(ctr)
    a.rm(client)
    for i in range(samples):  # a new network each time: B's first container claims its block
        net = f"rc{i}"
        create(a, net, "routed", f"10.{80 + i}.0.0/16")
        seen(b, net)
        cli = a.inspect(a.run(net))
        asked, running, ctr = reach_time(cli.netns, b, net)
        out["block claimed, from request"].append(asked)
        out["block claimed, from running"].append(running)
        b.rm(ctr)
        a.rm(cli)
        a._ok(a.client.delete(f"/networks/{net}"))
    return out


def nft(ns: str, *args: str, text: str | None = None) -> str:
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=text, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)} in {ns}: {p.stderr.strip()}")
    return p.stdout


def measure(e: Ends, seconds: int, hosts: list[str], bare: bool) -> tuple[float, float]:
    """One round of one path; `bare`: shoal's inet table deleted on both hosts meanwhile
    (so no conntrack there), put back after from `nft list ruleset`."""
    saved = {h: nft(h, "list", "ruleset") for h in hosts} if bare else {}
    try:
        for h in saved:
            nft(h, "delete", "table", "inet", "shoal")
        return (statistics.median(iperf(e.client_ns, e.server_ip, IPERF, seconds)),
                statistics.median(tcp_rr(e.client_ns, e.server_ip, RR, 200)))
    finally:
        for h, text in saved.items():
            nft(h, "flush", "ruleset")
            nft(h, "-f", "-", text=text)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def report(tp: dict[str, list[float]], rr: dict[str, list[float]], conv: dict[str, list[float]]) -> None:
    print("| path | Gbit/s median | over raw, paired median (min-max) | TCP RR us median | RR over raw |")
    print("|---|---:|---:|---:|---:|")
    for v in tp:
        pairs = sorted(x / y for x, y in zip(tp[v], tp["raw routed"], strict=True))
        rr_ratio = statistics.median(rr[v]) / statistics.median(rr["raw routed"])
        print(f"| {v} | {statistics.median(tp[v]):.2f} | {statistics.median(pairs):.2f}x "
              f"({pairs[0]:.2f}-{pairs[-1]:.2f}) | {statistics.median(rr[v]):.1f} | {rr_ratio:.2f}x |")
    print()
    print("| new container on B reachable from A | samples | median s | p90 s | max s |")
    print("|---|---:|---:|---:|---:|")
    for k, v in conv.items():
        print(f"| {k} | {len(v)} | {statistics.median(v):.3f} | {pct(v, 0.9):.3f} | {max(v):.3f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--prefix", default="shb", help="names of namespaces, lab and temp dir (default shb)")
    args = ap.parse_args()
    from shoal import lab as labmod

    base = Path(tempfile.mkdtemp(prefix=f"{args.prefix}-routed-"))
    name = args.prefix.replace("-", "")[:4] + secrets.token_hex(2)
    lab, hosts, raw, ends = None, [], None, {}
    try:
        lab = labmod.up(name, 2, base=base, extra=["--log-level", "warning"])
        hosts = [LabHost(h, str(base)) for h in lab.hosts]
        labmod.import_image(lab, str(busybox_tar(base)))
        a, b = hosts
        create(a, "r1", "routed", "10.64.0.0/16")
        create(a, "ov1", "overlay", "10.65.0.0/24")
        for net in ("r1", "ov1"):
            seen(b, net)
        for label, net in (("shoal routed", "r1"), ("shoal overlay", "ov1")):
            srv = b.inspect(b.run(net))
            cli = a.inspect(a.run(net))
            ends[label] = Ends(cli.netns, srv.netns, srv.ip)
        raw = RawRouted(args.prefix)
        ends["raw routed"] = raw.ends()
        for e in ends.values():
            e.serve()
        time.sleep(0.5)
        for e in ends.values():  # warm-up, and BGP has converged once this passes
            deadline = time.monotonic() + 60
            while not ping_ok(e.client_ns, e.server_ip):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{e.server_ip} unreachable")
            iperf(e.client_ns, e.server_ip, IPERF, 1)
        ends["shoal routed, no inet table"] = ends["shoal routed"]
        names = list(ends)
        tp: dict[str, list[float]] = {v: [] for v in names}
        rr: dict[str, list[float]] = {v: [] for v in names}
        lab_hosts = [h.name for h in lab.hosts]
        for r in range(args.rounds):
            for v in names[r % len(names):] + names[:r % len(names)]:
                t, q = measure(ends[v], args.seconds, lab_hosts, bare=v.endswith("no inet table"))
                tp[v].append(t)
                rr[v].append(q)
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        conv = convergence(a, b, args.samples)
        report(tp, rr, conv)
    finally:
        for e in {id(e): e for e in ends.values()}.values():
            e.close()
        if raw is not None:
            raw.close()
        for h in hosts:
            h.close()
        if lab is not None or (base / name / "lab.json").exists():
            labmod.down(name, base)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
