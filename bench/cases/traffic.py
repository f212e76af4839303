"""Throughput and latency: container to container, and to a published port from two places.

Per peer: a server container (iperf3 -s on 5201, tcprr echo on 5202, both published as
15201/15202) and a client container on the same network. Tools run from the host's
binaries inside the namespaces (nsenter --net), so every peer runs the same iperf3.
Paths:
* container -> container: client container to the server's address, over the bridge;
* host -> 127.0.0.1:15201 in the peer's host namespace, what `curl localhost:PORT` does
  (Docker: its userland proxy; netavark and portmap: DNAT with route_localnet);
* host -> host address:15201 (10.250.0.1, on the veth below) from the host namespace itself;
* outside -> host address:15201 from a namespace standing for a remote client, joined to
  the host namespace by a veth (10.250.0.2 -> 10.250.0.1): DNAT and forwarding.
The raw peer dials the server's address directly on every port path (no NAT): the floor.
Rounds are interleaved across peers, each round starting at the next peer, after one
unrecorded warm-up run per peer.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cases import CaseRun, Config
from common import Netns, Progress, in_ns, stop_pid
from peers import Ctr, Peer
from report import Row

ROWS = [
    Row("tp.c2c", "throughput container -> container (iperf3)", "Gbit/s", higher_better=True),
    Row("lat.c2c", "ping RTT container -> container", "us"),
    Row("rr.c2c", "TCP round trip container -> container", "us"),
    Row("tp.port", "throughput host -> published port on 127.0.0.1 (iperf3)", "Gbit/s", higher_better=True),
    Row("rr.port", "TCP round trip host -> published port on 127.0.0.1", "us"),
    Row("tp.hostip", "throughput host -> published port on the host address (iperf3)", "Gbit/s",
        higher_better=True),
    Row("rr.hostip", "TCP round trip host -> published port on the host address", "us"),
    Row("tp.ext", "throughput outside -> published port on the host address (iperf3)", "Gbit/s",
        higher_better=True),
    Row("rr.ext", "TCP round trip outside -> published port on the host address", "us"),
]
C2C = ["tp.c2c", "lat.c2c", "rr.c2c"]
PORT = ["tp.port", "rr.port"]
HOSTIP = ["tp.hostip", "rr.hostip"]
EXT = ["tp.ext", "rr.ext"]
HOST_ADDR, OUTSIDE_ADDR = "10.250.0.1", "10.250.0.2"
IPERF, RR = 5201, 5202
PUBLISH = {IPERF: 15201, RR: 15202}
TCPRR = str(Path(__file__).resolve().parents[1] / "tcprr.py")


class Pair:
    """One peer's server and client containers and the servers running inside."""

    def __init__(self, peer: Peer) -> None:
        self.server: Ctr | None = None
        self.client: Ctr | None = None
        self.outside: Netns | None = None
        self.procs: list[subprocess.Popen] = []
        self.port: dict[int, tuple[str, int]] = {}
        try:
            net = peer.ensure_network("shbtraffic")
            self.server = peer.inspect(peer.run(net, publish=PUBLISH))
            self.client = peer.inspect(peer.run(net))
            self.outside = Netns("ext")
            _join_outside(peer, self.outside)
            for argv in (["iperf3", "-s", "-p", str(IPERF)], [sys.executable, TCPRR, "serve", str(RR)]):
                self.procs.append(subprocess.Popen(in_ns(self.server.netns, argv), stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                   start_new_session=True))
        except BaseException:
            self.close(peer)
            raise

    def close(self, peer: Peer) -> None:
        for p in self.procs:
            stop_pid(p, timeout=5)
        if self.outside is not None:
            self.outside.close()
        for ctr in (self.client, self.server):
            if ctr is not None:
                peer.rm(ctr)


def _join_outside(peer: Peer, outside: Netns) -> None:
    """A veth from the peer's host namespace to `outside`, default route back through the host."""
    host = Path(peer.host_ns).name
    subprocess.run(["ip", "-n", host, "link", "add", "shbext0", "type", "veth", "peer", "name", "eth0",
                    "netns", outside.name], check=True)
    subprocess.run(["ip", "-n", host, "-batch", "-"], check=True,
                   input=f"addr add {HOST_ADDR}/30 dev shbext0\nlink set shbext0 up\n".encode())
    subprocess.run(["ip", "-n", outside.name, "-batch", "-"], check=True,
                   input=f"addr add {OUTSIDE_ADDR}/30 dev eth0\nlink set eth0 up\n"
                         f"route add default via {HOST_ADDR}\n".encode())
    if peer.name == "raw":  # the floor routes to the container itself; every other peer enables forwarding
        subprocess.run(in_ns(peer.host_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]), check=True)


def iperf(ns: str, ip: str, port: int, seconds: int) -> list[float]:
    """Gbit/s per half-second interval of one iperf3 run."""
    r = subprocess.run(in_ns(ns, ["iperf3", "-c", ip, "-p", str(port), "-t", str(seconds), "-i", "0.5", "-J"]),
                       capture_output=True, text=True, timeout=seconds + 30)
    try:
        j = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"iperf3 to {ip}:{port}: {(r.stderr or r.stdout)[-300:]}") from None
    if j.get("error"):
        raise RuntimeError(f"iperf3 to {ip}:{port}: {j['error']}")
    return [iv["sum"]["bits_per_second"] / 1e9 for iv in j["intervals"]]


def ping(ns: str, ip: str, count: int) -> list[float]:
    """ICMP round trips in microseconds (busybox ping, 20 ms apart)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    r = subprocess.run(in_ns(ns, [busybox, "ping", "-c", str(count), "-i", "0.02", "-W", "2", ip]),
                       capture_output=True, text=True, timeout=count * 0.1 + 30)
    rtts = [float(m) * 1e3 for m in re.findall(r"time=([0-9.]+) ms", r.stdout)]
    if not rtts:
        raise RuntimeError(f"ping {ip}: no reply: {(r.stderr or r.stdout)[-300:]}")
    return rtts


def tcp_rr(ns: str, ip: str, port: int, count: int) -> list[float]:
    r = subprocess.run(in_ns(ns, [sys.executable, TCPRR, "client", ip, str(port), str(count)]),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"tcprr to {ip}:{port}: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout)


def _on_host_address(published: tuple[str, int]) -> tuple[str, int]:
    """Where a port published on 127.0.0.1 is reached on the host's address (the raw peer's
    "published" address is the container's own, which stays as it is)."""
    ip, port = published
    return (HOST_ADDR if ip == "127.0.0.1" else ip), port


def _throughput(case: CaseRun, peer: Peer, key: str, values: list[float], rnd: int) -> None:
    """Every interval as a sample, and the round's median for the paired (per-round) ratios."""
    for v in values:
        case.add(peer, key, v)
    case.extra[peer.name].setdefault("rounds", {}).setdefault(key, {})[rnd] = statistics.median(values)


def _round(case: CaseRun, peer: Peer, pair: Pair, cfg: Config, rnd: int) -> None:
    srv, cli = pair.server, pair.client
    if peer in case.active(C2C):
        with case.guard(peer, keys=C2C):
            _throughput(case, peer, "tp.c2c", iperf(cli.netns, srv.ip, IPERF, cfg.seconds), rnd)
            for v in ping(cli.netns, srv.ip, cfg.pings):
                case.add(peer, "lat.c2c", v)
            for v in tcp_rr(cli.netns, srv.ip, RR, cfg.pings):
                case.add(peer, "rr.c2c", v)
    if peer in case.active(PORT):
        with case.guard(peer, keys=PORT):
            if not pair.port:
                pair.port = {c: peer.published(srv, c) for c in (IPERF, RR)}
            ip, port = pair.port[IPERF]
            _throughput(case, peer, "tp.port", iperf(peer.host_ns, ip, port, cfg.seconds), rnd)
            ip, port = pair.port[RR]
            for v in tcp_rr(peer.host_ns, ip, port, cfg.pings):
                case.add(peer, "rr.port", v)
    if peer in case.active(HOSTIP):
        with case.guard(peer, keys=HOSTIP):
            if not pair.port:
                pair.port = {c: peer.published(srv, c) for c in (IPERF, RR)}
            _throughput(case, peer, "tp.hostip", iperf(peer.host_ns, *_on_host_address(pair.port[IPERF]), cfg.seconds),
                        rnd)
            for v in tcp_rr(peer.host_ns, *_on_host_address(pair.port[RR]), cfg.pings):
                case.add(peer, "rr.hostip", v)
    if peer in case.active(EXT):
        with case.guard(peer, keys=EXT):
            if not pair.port:
                pair.port = {c: peer.published(srv, c) for c in (IPERF, RR)}
            _throughput(case, peer, "tp.ext", iperf(pair.outside.path, *_on_host_address(pair.port[IPERF]), cfg.seconds),
                        rnd)
            for v in tcp_rr(pair.outside.path, *_on_host_address(pair.port[RR]), cfg.pings):
                case.add(peer, "rr.ext", v)


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    case = CaseRun("traffic", peers, ROWS)
    pairs: dict[str, Pair] = {}
    try:
        for peer in peers:
            with case.guard(peer):
                pairs[peer.name] = Pair(peer)
        time.sleep(0.5)  # the servers were just started: do not race the first client
        for peer in peers:  # unrecorded: the first peer must not pay for the others' setup
            if peer.name in pairs:
                with case.guard(peer, keys=[]):
                    iperf(pairs[peer.name].client.netns, pairs[peer.name].server.ip, IPERF, 1)
        progress = Progress("traffic rounds x peers", cfg.rounds * len(pairs), every_s=0)
        done = 0
        for r in range(cfg.rounds):
            for peer in peers[r % len(peers):] + peers[:r % len(peers)]:  # each round starts elsewhere
                if peer.name in pairs:
                    _round(case, peer, pairs[peer.name], cfg, r)
                    done += 1
                    progress.tick(done, peer.name)
    finally:
        for peer in peers:
            if peer.name in pairs:
                with case.guard(peer, keys=[]):
                    pairs[peer.name].close(peer)
    return case
