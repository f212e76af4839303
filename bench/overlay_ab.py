"""Where the overlay's data-path cost goes: shoal's nftables tables on or off, beside raw.

    .venv/bin/python bench/overlay_ab.py [--rounds 6] [--seconds 3]    (root, ~3 minutes)

Not part of `bench/run`. Builds the overlay case's cluster and hand-made VXLAN pair
(overlaylab), then measures container A -> container B (iperf3, TCP round trip) in
interleaved rounds for: shoal as is; shoal with its `bridge shoal` table deleted on hosts A
and B; with its `inet shoal` table deleted (and so no conntrack in those namespaces);
with both deleted; with frames bridged within a network untracked (a rule added); with
the outer VXLAN packets untracked; and raw (`--variants` picks; `--gro` turns GRO on the
hosts' underlay veths, shoal's and raw's). A deleted table is put back from `nft list ruleset` after its
variant, in the lab's own namespaces only. Prints per-variant medians and paired ratios.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases.overlay import _raw_ends, _shoal_ends
from cases.traffic import IPERF, RR, iperf, tcp_rr
from overlaylab import Cluster, RawVxlan

VARIANTS = {"shoal": [], "bridged untracked": ["notrack"], "VXLAN untracked": ["vxlan"], "br_netfilter on": ["brnf"], "no bridge table": ["bridge"], "no inet table": ["inet"],
            "no tables": ["bridge", "inet"], "raw": []}
# "notrack": the guard chain's notrack rules deleted, so frames bridged between containers go
# through conntrack again (shoal before 2026-12-01)

BRIDGED_NOTRACK = """add rule inet shoal guard iifname . ip daddr @subnets4 fib daddr type != local notrack
"""
VXLAN_NOTRACK = """add rule inet shoal guard udp dport 4789 notrack
add chain inet shoal guard_out { type filter hook output priority raw; }
add rule inet shoal guard_out udp dport 4789 notrack
"""


GRO_ON = """import sys
from pyroute2.ethtool import Ethtool
e = Ethtool()
f = e.get_features(sys.argv[1])
f.features["rx-gro"].enable = True
e.set_features(sys.argv[1], f)
"""


def gro_on(ns: str, ifname: str = "eth0") -> None:
    """GRO on a host's underlay veth, as a NIC has it: the receive path then sees merged
    VXLAN packets instead of one per MTU, as on real hosts."""
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", GRO_ON, ifname], check=True)


def brnf(ns: str, value: str) -> None:
    """br_netfilter's per-namespace switches: with 1, bridged frames go through the IP hooks
    (conntrack, shoal's inet chains), as with `shoald --br-netfilter leave`."""
    for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"], check=True)


def nft(ns: str, *args: str, text: str | None = None) -> str:
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=text, capture_output=True, text=True,
                       check=False)
    if p.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)} in {ns}: {p.stderr.strip()}")
    return p.stdout


def one(ends, hosts: list[str], variant: str, seconds: int) -> tuple[float, float]:  # noqa: ANN001
    e = ends["raw" if variant == "raw" else "shoal"]
    saved = {h: nft(h, "list", "ruleset") for h in hosts}
    try:
        for h in hosts:
            for family in VARIANTS[variant]:
                if family == "brnf":
                    brnf(h, "1")  # shoald turns it off in a namespace of its own (--br-netfilter auto)
                elif family == "vxlan":
                    nft(h, "-f", "-", text=VXLAN_NOTRACK)
                elif family == "notrack":
                    nft(h, "-f", "-", text=BRIDGED_NOTRACK)
                else:
                    nft(h, "delete", "table", family, "shoal")
        tp = statistics.median(iperf(e.client_ns, e.server_ip, IPERF, seconds))
        rr = statistics.median(tcp_rr(e.client_ns, e.server_ip, RR, 200))
    finally:
        if "brnf" in VARIANTS[variant]:
            for h in hosts:
                brnf(h, "0")
        if VARIANTS[variant]:
            for h in hosts:
                nft(h, "flush", "ruleset")
                nft(h, "-f", "-", text=saved[h])
    return tp, rr


def report(tp: dict[str, list[float]], rr: dict[str, list[float]]) -> None:
    print("| variant | Gbit/s median | over raw, paired median (min-max) | TCP RR us median |")
    print("|---|---:|---:|---:|")
    for v in tp:
        pairs = sorted(a / b for a, b in zip(tp[v], tp["raw"], strict=True))
        print(f"| {v} | {statistics.median(tp[v]):.2f} | {statistics.median(pairs):.2f}x "
              f"({pairs[0]:.2f}-{pairs[-1]:.2f}) | {statistics.median(rr[v]):.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--gro", action="store_true", help="GRO on every host's underlay veth (shoal's and raw's)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list (raw is always run)")
    args = ap.parse_args()
    chosen = [v for v in VARIANTS if v in args.variants.split(",") or v == "raw"]
    made: dict = {}
    ends: dict = {}
    try:
        made["cluster"] = Cluster("shb" + secrets.token_hex(2), 3)
        ends["shoal"] = _shoal_ends(made["cluster"])
        made["raw"] = RawVxlan()
        ends["raw"] = _raw_ends(made["raw"])
        for e in ends.values():
            e.serve()
        time.sleep(0.5)
        hosts = [h.host.name for h in made["cluster"].hosts[:2]]
        if args.gro:
            for ns in [*hosts, *made["raw"].host_names()]:
                gro_on(ns)
        for e in ends.values():
            iperf(e.client_ns, e.server_ip, IPERF, 1)  # warm-up
        tp: dict[str, list[float]] = {v: [] for v in chosen}
        rr: dict[str, list[float]] = {v: [] for v in chosen}
        names = chosen
        for r in range(args.rounds):
            for v in names[r % len(names):] + names[:r % len(names)]:
                t, q = one(ends, hosts, v, args.seconds)
                tp[v].append(t)
                rr[v].append(q)
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        report(tp, rr)
    finally:
        for e in ends.values():
            e.close()
        for key in ("raw", "cluster"):
            if key in made:
                made[key].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
