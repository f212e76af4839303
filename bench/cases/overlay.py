"""Overlay networks across hosts (issue #16): data path against a hand-made VXLAN pair, and
how fast the cluster converges. Needs etcd (Debian `etcd-server`); n/a without it.

One shoal cluster of 3 hosts (overlaylab.Cluster, the code of `shoal cluster up`) and one
raw VXLAN pair (overlaylab.RawVxlan) are built once; the peers the suite started are not
used. Rows, in the shoal and raw columns:
* throughput and TCP round trip, a container on host A -> a container on host B on an
  overlay network; raw: the same between the two hand-made container namespaces. Rounds
  are paired (shoal and raw back to back, the first one rotated), after a warm-up each;
* convergence: `run -d` (create + start) on B returns -> the first echo reply to the new
  container from the existing container on A (bench/echoprobe.py, 1 ms apart). And, in
  separate interleaved runs, the same moment -> the new container's neighbour entry on
  A's vxlan device (polled by a thread inside A's namespace; negative: it was there
  before the start returned). Each run uses a fresh static address;
* network create on A returns -> listed on C (GET /networks polled every ms), and rm on A
  returns -> gone from C's list;
* shoald RSS on each host at the end.
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

HOSTS = 3
NET = "shbov"
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
    Row("rss.overlay", f"shoald RSS per host ({HOSTS} hosts, one overlay, 2 containers)", "MiB"),
]
TRAFFIC = ["tp.overlay", "rr.overlay"]
CONV = ["conv.overlay", "entry.overlay"]
VIS = ["netvis.overlay", "netgone.overlay"]
CONTROL = CONV + VIS + ["rss.overlay"]
TIMEOUT_S = 10.0


class Side(Peer):
    """A column of the report: "shoal" (the cluster) or "raw" (the hand-made pair)."""

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


def _shoal_ends(cluster) -> Ends:  # noqa: ANN001 - overlaylab.Cluster
    a, b = cluster.hosts[0], cluster.hosts[1]
    a.overlay_create(NET)
    eventually(lambda: NET in b.network_names(), f"network {NET} on {b.name}", every_s=0.05)
    srv = b.inspect(b.run(NET))
    cli = a.inspect(a.run(NET))
    return Ends(cli.netns, srv.netns, srv.ip)


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


def _conv_run(case: CaseRun, side: Side, hosts: list, vxlan: str, prober: Prober, ip: str, watch: bool) -> None:
    """One container on B at `ip`; either the echo probe from A or the entry watch on A."""
    a, b = hosts[0], hosts[1]
    watcher = None
    if watch:
        watcher = EntryWatch(f"/run/netns/{a.host.name}", vxlan, ip)
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


def _convergence(case: CaseRun, side: Side, cluster, ends: Ends, cfg: Config) -> None:  # noqa: ANN001
    a = cluster.hosts[0]
    subnet = ipaddress.ip_network(a.subnet(NET))
    vxlan = "vx-" + a.client.get(f"/networks/{NET}").json()["Id"][:12]
    prober = Prober(ends.client_ns)
    progress = Progress("overlay convergence", cfg.runs)
    try:
        for i in range(cfg.runs):
            for k, watch in enumerate((False, True)):
                ip = str(subnet.network_address + 64 + (2 * i + k) % 180)  # fresh (for 90 runs): A never saw it
                subprocess.run(in_ns(ends.client_ns, ["ip", "neigh", "flush", "dev", "eth0"]),
                               check=False, capture_output=True)
                _conv_run(case, side, cluster.hosts, vxlan, prober, ip, watch)
            progress.tick(i + 1)
    finally:
        prober.close()


def _visibility(case: CaseRun, side: Side, cluster, cfg: Config) -> None:  # noqa: ANN001
    a, c = cluster.hosts[0], cluster.hosts[-1]
    progress = Progress("overlay network visibility", cfg.runs)
    for i in range(cfg.runs):
        name = f"shbvis{i}"
        nid = a.overlay_create(name)
        t0 = time.monotonic()
        seen = eventually(lambda name=name: name in c.network_names(), f"{name} listed on {c.name}")
        case.add(side, "netvis.overlay", (seen - t0) * 1e3)
        a.network_rm(nid)
        t0 = time.monotonic()
        gone = eventually(lambda name=name: name not in c.network_names(), f"{name} gone from {c.name}")
        case.add(side, "netgone.overlay", (gone - t0) * 1e3)
        progress.tick(i + 1)


def _measure(case: CaseRun, shoal: Side, raw: Side, cfg: Config, made: dict) -> None:
    from overlaylab import Cluster, RawVxlan

    ends: dict[str, Ends] = {}
    with case.guard(shoal):
        say(f"  [overlay] starting a {HOSTS}-host cluster")
        made["cluster"] = Cluster("shb" + secrets.token_hex(2), HOSTS)
        ends["shoal"] = _shoal_ends(made["cluster"])
    with case.guard(raw, keys=TRAFFIC):
        made["raw"] = RawVxlan()
        ends["raw"] = _raw_ends(made["raw"])
    made["ends"] = ends
    for e in ends.values():
        e.serve()
    time.sleep(0.5)  # the servers were just started: do not race the first client
    _rounds(case, ends, cfg)
    if "shoal" not in ends:
        return
    cluster = made["cluster"]
    with case.guard(shoal, keys=CONV):
        _convergence(case, shoal, cluster, ends["shoal"], cfg)
    with case.guard(shoal, keys=VIS):
        _visibility(case, shoal, cluster, cfg)
    with case.guard(shoal, keys=["rss.overlay"]):
        for h in cluster.hosts:
            case.add(shoal, "rss.overlay", h.rss_kib() / 1024)


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    shoal, raw = Side("shoal"), Side("raw")
    case = CaseRun("overlay", [shoal, raw], ROWS)
    case.drop(raw, NA("raw: entries written by hand once, no control plane"), CONTROL)
    from shoal import lab as labmod

    if not os.access(labmod.ETCD, os.X_OK):
        for side in (shoal, raw):
            case.drop(side, NA("overlay: etcd not installed (Debian etcd-server)"))
        return case
    made: dict = {}
    try:
        _measure(case, shoal, raw, cfg, made)
    finally:
        for e in made.get("ends", {}).values():
            e.close()
        for key in ("raw", "cluster"):
            if key in made:
                with case.guard(shoal if key == "cluster" else raw, keys=[]):
                    made[key].close()
    return case
