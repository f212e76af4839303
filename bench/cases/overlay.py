"""Overlay networks across hosts (issue #16): data path against a hand-made VXLAN pair and
Docker's classic overlay, and how fast each cluster converges. Needs etcd (Debian
`etcd-server`); n/a without it.

One shoal cluster of 3 hosts (overlaylab.Cluster, the code of `shoal cluster up`), one
Docker 20.10 cluster of 3 hosts with etcd's v2 API as its cluster store
(overlaylab.DockerCluster) and one raw VXLAN pair (overlaylab.RawVxlan) are built once;
the peers the suite started are not used. Rows, in the shoal, docker and raw columns:
* throughput and TCP round trip, a container on host A -> a container on host B on an
  overlay network; raw: the same between the two hand-made container namespaces. Rounds
  are paired (the sides back to back, the first one rotated), after a warm-up each;
* convergence: `run -d` (create + start) on B returns -> the first echo reply to the new
  container from the existing container on A (bench/echoprobe.py, 1 ms apart). And, in
  separate interleaved runs, the same moment -> the new container's neighbour entry on
  A's vxlan device (polled by a thread inside the namespace that holds it; negative: it
  was there before the start returned). Each run uses a fresh static address; shoal's
  and Docker's runs alternate;
* network create on A returns -> listed on C (GET /networks polled every ms), and rm on A
  returns -> gone from C's list;
* daemon RSS on each host at the end (shoald; dockerd + its containerd).
Docker's cluster is left out (n/a) with `bench/run --no-overlay-docker`, or when dockerd
is not installed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cases import CaseRun, Config
from cases.traffic import IPERF, RR, TCPRR, _throughput, iperf, tcp_rr
from common import Progress, in_ns, say, stop_pid
from peers import Peer
from report import NA, Row

HOSTS = int(os.environ.get("SHOAL_BENCH_OVERLAY_HOSTS", "3"))  # 50 for the many-host figures (not in bench/run)
NET = "shbov"
DOCKER_SUBNET = "10.77.0.0/24"  # Docker takes a static address (--ip) only on a network with a given subnet
DOCKERD = "/usr/sbin/dockerd"
ECHOPROBE = str(Path(__file__).resolve().parents[1] / "echoprobe.py")
ROWS = [
    Row("tp.overlay", "overlay: throughput container on host A -> container on host B (iperf3)", "Gbit/s",
        higher_better=True),
    Row("rr.overlay", "overlay: TCP round trip container on A -> container on B", "us"),
    Row("conv.overlay", f"overlay convergence ({HOSTS} hosts): run -d on B returns -> first echo reply from A",
        "ms"),
    Row("entry.overlay", "... run -d on B returns -> neighbour entry on A's vxlan device (< 0: before)", "ms"),
    Row("netvis.overlay", "overlay network create on A returns -> listed on C", "ms"),
    Row("netgone.overlay", "overlay network rm on A returns -> gone from C's list", "ms"),
    Row("rss.overlay", f"daemon RSS per host ({HOSTS} hosts, one overlay, 2 containers; docker: + containerd)",
        "MiB"),
]
TRAFFIC = ["tp.overlay", "rr.overlay"]
CONV = ["conv.overlay", "entry.overlay"]
VIS = ["netvis.overlay", "netgone.overlay"]
CONTROL = CONV + VIS + ["rss.overlay"]
TIMEOUT_S = 10.0


class Side(Peer):
    """A column of the report: "shoal" or "docker" (a cluster) or "raw" (the hand-made pair)."""

    def __init__(self, name: str) -> None:
        self.name = name


@dataclass
class Ends:
    """A client namespace, a server namespace and address, the servers running there."""

    client_ns: str
    server_ns: str
    server_ip: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def serve(self) -> None:
        for argv in (["iperf3", "-s", "-p", str(IPERF)], [sys.executable, TCPRR, "serve", str(RR)]):
            self.procs.append(subprocess.Popen(in_ns(self.server_ns, argv), stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               start_new_session=True))

    def close(self) -> None:
        for p in self.procs:
            stop_pid(p, timeout=5)


def eventually(pred, what: str, timeout_s: float = TIMEOUT_S, every_s: float = 0.001) -> float:  # noqa: ANN001
    """Poll until pred() is true; the time.monotonic() at which it was seen true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if pred():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s: {what}")
        time.sleep(every_s)


def _cluster_ends(hosts: list, subnet: str | None = None) -> Ends:
    """The overlay network made on A (seen on B), a server container on B, a client on A."""
    a, b = hosts[0], hosts[1]
    a.overlay_create(NET, subnet)
    eventually(lambda: NET in b.network_names(), f"network {NET} on {b.name}", every_s=0.05)
    srv = b.inspect(b.run(NET))
    cli = a.inspect(a.run(NET))
    return Ends(cli.netns, srv.netns, srv.ip)


def _shoal_ends(cluster) -> Ends:  # noqa: ANN001 - overlaylab.Cluster
    return _cluster_ends(cluster.hosts)


def _raw_ends(raw) -> Ends:  # noqa: ANN001 - overlaylab.RawVxlan
    return Ends(raw.containers[0].path, raw.containers[1].path, raw.ip(1))


def _rounds(case: CaseRun, ends: dict[str, Ends], cfg: Config) -> None:
    sides = [p for p in case.peers if p.name in ends]
    for side in sides:  # unrecorded warm-up: the first side must not pay for the other's setup
        with case.guard(side, keys=[]):
            iperf(ends[side.name].client_ns, ends[side.name].server_ip, IPERF, 1)
    progress = Progress("overlay rounds x sides", cfg.rounds * len(sides), every_s=0)
    done = 0
    for r in range(cfg.rounds):
        for side in sides[r % len(sides):] + sides[:r % len(sides)]:
            if side in case.active(TRAFFIC):
                e = ends[side.name]
                with case.guard(side, keys=TRAFFIC):
                    _throughput(case, side, "tp.overlay", iperf(e.client_ns, e.server_ip, IPERF, cfg.seconds), r)
                    for v in tcp_rr(e.client_ns, e.server_ip, RR, cfg.pings):
                        case.add(side, "rr.overlay", v)
            done += 1
            progress.tick(done, side.name)


class Prober:
    """bench/echoprobe.py inside a namespace: `probe(ip)` -> monotonic time of the first reply."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(in_ns(ns, [sys.executable, ECHOPROBE]), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        if not json.loads(self.proc.stdout.readline() or "{}").get("ready"):
            raise RuntimeError("echoprobe did not start")

    def probe(self, ip: str) -> tuple[float | None, int]:
        self.proc.stdin.write(f"{ip} {TIMEOUT_S}\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline() or "{}")
        return out.get("reply"), out.get("sent", 0)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        stop_pid(self.proc, timeout=5)


class EntryWatch(threading.Thread):
    """Polls one vxlan device's neighbour table inside a host's namespace for one address;
    `seen` is the monotonic time it first appeared (kernel-filtered dumps, ~0.2 ms each)."""

    def __init__(self, host_ns: str, dev: str, ip: str) -> None:
        super().__init__(daemon=True)
        self.host_ns, self.dev, self.ip = host_ns, dev, ip
        self.seen: float | None = None
        self.error = ""
        self.stop = threading.Event()

    def run(self) -> None:
        from shoal.kernel import nldump
        from shoal.kernel.sandbox import entered

        try:
            with entered(self.host_ns):
                index = socket.if_nametoindex(self.dev)
                while not self.stop.is_set():
                    if any(n.dst == self.ip for n in nldump.neighbours(index)):
                        self.seen = time.monotonic()
                        return
                    time.sleep(0.0005)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            self.error = str(e)


def _conv_run(case: CaseRun, side: Side, hosts: list, vxlan: tuple[str, str], prober: Prober, ip: str,
              watch: bool) -> None:
    """One container on B at `ip`; either the echo probe from A or the entry watch on A."""
    a, b = hosts[0], hosts[1]
    watcher = None
    if watch:
        watcher = EntryWatch(*vxlan, ip)
        watcher.start()
    try:
        cid = b.run_at(NET, ip)
    except BaseException:
        if watcher is not None:
            watcher.stop.set()
        raise
    t0 = time.monotonic()
    try:
        if watcher is None:
            reply, sent = prober.probe(ip)
            if reply is None:
                raise RuntimeError(f"no echo reply from {ip} in {TIMEOUT_S:.0f} s ({sent} echoes sent)")
            case.add(side, "conv.overlay", (reply - t0) * 1e3)
        else:
            watcher.join(TIMEOUT_S)
            watcher.stop.set()
            if watcher.seen is None:
                raise RuntimeError(f"no neighbour entry for {ip} on {a.name}: {watcher.error or 'timeout'}")
            case.add(side, "entry.overlay", (watcher.seen - t0) * 1e3)
    finally:
        if watcher is not None:
            watcher.stop.set()
        b.rm_id(cid)


@dataclass
class Member:
    """A side with a cluster: its hosts, and the client and server of the data-path rounds."""

    side: Side
    hosts: list
    ends: Ends


def _convergence(case: CaseRun, members: list[Member], cfg: Config) -> None:
    """cfg.runs x (probe run, entry run) per side, the sides alternating run by run."""
    state: dict[str, tuple] = {}
    try:
        for m in members:
            with case.guard(m.side, keys=CONV):
                a = m.hosts[0]
                subnet = ipaddress.ip_network(a.subnet(NET))
                state[m.side.name] = (subnet, a.vxlan_of(NET), Prober(m.ends.client_ns))
        progress = Progress("overlay convergence", cfg.runs)
        for i in range(cfg.runs):
            for m in members:
                if m.side.name not in state or m.side not in case.active(CONV):
                    continue
                subnet, vxlan, prober = state[m.side.name]
                with case.guard(m.side, keys=CONV):
                    for k, watch in enumerate((False, True)):
                        ip = str(subnet.network_address + 64 + (2 * i + k) % 180)  # fresh (for 90 runs)
                        subprocess.run(in_ns(m.ends.client_ns, ["ip", "neigh", "flush", "dev", "eth0"]),
                                       check=False, capture_output=True)
                        _conv_run(case, m.side, m.hosts, vxlan, prober, ip, watch)
            progress.tick(i + 1)
    finally:
        for _, _, prober in state.values():
            prober.close()


def _visibility(case: CaseRun, members: list[Member], cfg: Config) -> None:
    progress = Progress("overlay network visibility", cfg.runs)
    for i in range(cfg.runs):
        for m in members:
            if m.side not in case.active(VIS):
                continue
            a, c = m.hosts[0], m.hosts[-1]
            with case.guard(m.side, keys=VIS):
                name = f"shbvis{i}"
                nid = a.overlay_create(name)
                t0 = time.monotonic()
                seen = eventually(lambda name=name, c=c: name in c.network_names(), f"{name} listed on {c.name}")
                case.add(m.side, "netvis.overlay", (seen - t0) * 1e3)
                a.network_rm(nid)
                t0 = time.monotonic()
                gone = eventually(lambda name=name, c=c: name not in c.network_names(), f"{name} gone from {c.name}")
                case.add(m.side, "netgone.overlay", (gone - t0) * 1e3)
        progress.tick(i + 1)


def _measure(case: CaseRun, sides: dict[str, Side], cfg: Config, made: dict) -> None:
    from overlaylab import Cluster, DockerCluster, RawVxlan

    shoal, docker, raw = sides["shoal"], sides["docker"], sides["raw"]
    ends: dict[str, Ends] = {}
    members: list[Member] = []
    made["ends"] = ends
    with case.guard(shoal):
        say(f"  [overlay] starting a {HOSTS}-host shoal cluster")
        made["shoal"] = Cluster("shb" + secrets.token_hex(2), HOSTS)
        ends["shoal"] = _shoal_ends(made["shoal"])
        members.append(Member(shoal, made["shoal"].hosts, ends["shoal"]))
    if docker in case.active():
        with case.guard(docker):
            say(f"  [overlay] starting a {HOSTS}-host Docker cluster (etcd v2 cluster store)")
            made["docker"] = DockerCluster(HOSTS)
            ends["docker"] = _cluster_ends(made["docker"].hosts, DOCKER_SUBNET)
            members.append(Member(docker, made["docker"].hosts, ends["docker"]))
    with case.guard(raw, keys=TRAFFIC):
        made["raw"] = RawVxlan()
        ends["raw"] = _raw_ends(made["raw"])
    for e in ends.values():
        e.serve()
    time.sleep(0.5)  # the servers were just started: do not race the first client
    _rounds(case, ends, cfg)
    _convergence(case, members, cfg)
    _visibility(case, members, cfg)
    for m in members:
        with case.guard(m.side, keys=["rss.overlay"]):
            for h in m.hosts:
                case.add(m.side, "rss.overlay", h.rss_kib() / 1024)


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    sides = {n: Side(n) for n in ("shoal", "docker", "raw")}
    case = CaseRun("overlay", list(sides.values()), ROWS)
    case.drop(sides["raw"], NA("raw: entries written by hand once, no control plane"), CONTROL)
    if not cfg.overlay_docker:
        case.drop(sides["docker"], NA("docker: classic overlay left out (--no-overlay-docker)"))
    elif not os.access(DOCKERD, os.X_OK):
        case.drop(sides["docker"], NA("docker: dockerd not installed (Debian docker.io)"))
    from shoal import lab as labmod

    if not os.access(labmod.ETCD, os.X_OK):
        for side in sides.values():
            case.drop(side, NA("overlay: etcd not installed (Debian etcd-server)"))
        return case
    made: dict = {}
    try:
        _measure(case, sides, cfg, made)
    finally:
        for e in made.get("ends", {}).values():
            e.close()
        for key in ("raw", "docker", "shoal"):
            if key in made:
                with case.guard(sides[key], keys=[]):
                    made[key].close()
    return case
