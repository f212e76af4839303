"""Soak and scale: many containers on many networks, churned for minutes, on one shoald.

    .venv/bin/python bench/soak.py [--containers 1000] [--networks 50] [--minutes 10]

Fills the daemon with containers spread over networks, then churns them (a new run, a
forced removal, a connect, a disconnect, a restart, picked at random) while it samples
the daemon's RSS and open file descriptors. At the end: the invariant checker must find
nothing, and each operation's median latency over the last tenth of the churn is
compared with the first tenth (goal: within 1.3x). Writes bench/results/soak-STAMP/
{report.md, soak.json, soak.png}; progress on stderr. No timed assertions: it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, busybox_tar, machine, rss_kib, say  # noqa: E402
from peers.shoal import ShoalPeer  # noqa: E402

OPS = ("run", "rm", "connect", "disconnect", "restart")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, peer: ShoalPeer, networks: int, seed: int) -> None:
        self.peer, self.rng = peer, random.Random(seed)
        self.nets = [f"soak-{i}" for i in range(networks)]
        self.ctrs: dict[str, dict] = {}  # id -> {"nets": [...]}
        self.lat: dict[str, list[tuple[float, float]]] = {op: [] for op in OPS}  # (t, ms)
        self.samples: list[dict] = []
        self.t0 = time.monotonic()
        self.errors: list[str] = []

    def sample(self) -> None:
        pid = self.peer.proc.pid
        self.samples.append({"t": time.monotonic() - self.t0, "rss_kib": rss_kib(pid), "fds": fds(pid),
                             "containers": len(self.ctrs)})

    def _timed(self, op: str, fn) -> None:  # noqa: ANN001
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - counted and reported, the soak goes on
            self.errors.append(f"{op}: {exc}"[:300])
            return
        self.lat[op].append((time.monotonic() - self.t0, (time.perf_counter() - start) * 1e3))

    def run_one(self) -> None:
        net = self.rng.choice(self.nets)
        ctr = self.peer.run(net)
        self.ctrs[ctr.id] = {"nets": [net], "ctr": ctr}

    def step(self) -> None:
        op = self.rng.choice(OPS)
        if not self.ctrs:
            op = "run"
        cid = self.rng.choice(sorted(self.ctrs)) if self.ctrs else ""
        c = self.ctrs.get(cid)
        if op == "run":
            self._timed(op, self.run_one)
        elif op == "rm":
            self._timed(op, lambda: self.peer.rm(c["ctr"]))
            self.ctrs.pop(cid, None)
        elif op == "connect":
            free = [n for n in self.nets if n not in c["nets"]]
            if free:
                net = self.rng.choice(free)
                self._timed(op, lambda: self.peer.connect(c["ctr"], net))
                c["nets"].append(net)
        elif op == "disconnect" and len(c["nets"]) > 1:
            net = c["nets"].pop()
            self._timed(op, lambda: self.peer.disconnect(c["ctr"], net))
        elif op == "restart":
            self._timed(op, lambda: self.peer._ok(self.peer.client.post(f"/containers/{cid}/restart",
                                                                          params={"t": "1"})))


def ratio(points: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Median of the first and the last tenth (at least 5 each), and their ratio."""
    if len(points) < 10:
        return None
    k = max(5, len(points) // 10)
    first, last = statistics.median(p[1] for p in points[:k]), statistics.median(p[1] for p in points[-k:])
    return first, last, last / first


def plot(samples: list[dict], path: Path) -> None:
    """RSS on its own axis (MiB), fds beside the container count: flat lines under churn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ts = [s["t"] / 60 for s in samples]
    top.plot(ts, [s["rss_kib"] / 1024 for s in samples], color="tab:blue")
    top.set_ylabel("shoald RSS, MiB")
    top.set_ylim(bottom=0)
    bottom.plot(ts, [s["fds"] for s in samples], color="tab:orange", label="shoald open fds")
    bottom.plot(ts, [s["containers"] for s in samples], color="tab:gray", linestyle=":", label="containers")
    bottom.set_ylabel("count")
    bottom.set_xlabel("minutes (fill, then churn)")
    bottom.legend(loc="lower right")
    top.set_title("shoald while filled and churned")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=1000, help="containers to fill with (default 1000)")
    ap.add_argument("--networks", type=int, default=50, help="networks to spread them over (default 50)")
    ap.add_argument("--minutes", type=float, default=10, help="minutes of churn (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="shb-soak-")
    peer = ShoalPeer(work)
    try:
        peer.start(str(busybox_tar(Path(work))))
        soak = Soak(peer, args.networks, args.seed)
        for i, net in enumerate(soak.nets):  # Docker's default pools hold ~30 networks: subnets of our own
            peer._ok(peer.client.post("/networks/create", json={
                "Name": net, "IPAM": {"Config": [{"Subnet": f"10.{200 + i // 256}.{i % 256}.0/24"}]}}))
        say(f"== filling: {args.containers} containers on {args.networks} networks")
        while len(soak.ctrs) < args.containers:
            soak._timed("run", soak.run_one)
            if len(soak.ctrs) % 100 == 0:
                soak.sample()
                say(f"   {len(soak.ctrs)} containers, RSS {soak.samples[-1]['rss_kib'] // 1024} MiB")
        fill = {op: list(v) for op, v in soak.lat.items()}
        soak.lat = {op: [] for op in OPS}
        say(f"== churning for {args.minutes:g} min")
        end, next_sample = time.monotonic() + args.minutes * 60, 0.0
        steps = 0
        while time.monotonic() < end:
            soak.step()
            steps += 1
            if time.monotonic() >= next_sample:
                soak.sample()
                next_sample = time.monotonic() + 10
                s = soak.samples[-1]
                say(f"   {steps} ops, {s['containers']} containers, RSS {s['rss_kib'] // 1024} MiB, {s['fds']} fds")
        soak.sample()
        findings = peer.client.get("/shoal/check", timeout=300).json()["Findings"]
        return report(args, soak, fill, steps, findings)
    finally:
        peer.close()


def report(args: argparse.Namespace, soak: Soak, fill: dict, steps: int, findings: list) -> int:
    out = Path(args.out) / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    churn = [s for s in soak.samples if s["t"] >= soak.samples[0]["t"]]
    plot(churn, out / "soak.png")
    lines = [f"# soak: {args.containers} containers on {args.networks} networks, {args.minutes:g} min of churn", "",
             f"machine: {json.dumps(machine())}", "",
             f"operations in the churn: {steps}; errors: {len(soak.errors)}; invariant findings at the end: "
             f"{len(findings)}", "",
             "| op | n | first tenth median ms | last tenth median ms | last/first |", "|---|---|---|---|---|"]
    for op, points in soak.lat.items():
        r = ratio(points)
        lines.append(f"| {op} | {len(points)} | " + (" | ".join(f"{x:.1f}" for x in r[:2]) + f" | {r[2]:.2f}x |"
                                                    if r else "n/a | n/a | n/a |"))
    rss = [s["rss_kib"] for s in soak.samples]
    fdl = [s["fds"] for s in soak.samples]
    lines += ["", f"RSS MiB: start {rss[0] / 1024:.0f}, max {max(rss) / 1024:.0f}, end {rss[-1] / 1024:.0f}; "
              f"open fds: start {fdl[0]}, max {max(fdl)}, end {fdl[-1]}", "",
              f"fill: run median {statistics.median(p[1] for p in fill['run']):.1f} ms over {len(fill['run'])}",
              "", "![RSS and fds](soak.png)"]
    if soak.errors:
        lines += ["", "errors (first 10):", *[f"- {e}" for e in soak.errors[:10]]]
    if findings:
        lines += ["", "findings:", *[f"- {f['Area']}: {f['Subject']}: {f['Problem']}" for f in findings[:20]]]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "soak.json").write_text(json.dumps({"samples": soak.samples, "latency": soak.lat, "errors": soak.errors,
                                               "findings": findings}, indent=1))
    say(f"== report: {out / 'report.md'}")
    print("\n".join(lines))
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
