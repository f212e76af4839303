"""The bench suite: the same operations on shoal and its peers, on one machine, in one run.

    .venv/bin/python bench/suite.py [--quick] [--count N] [--peers shoal,docker,...] [--cases ...]

Peers start in their own throwaway host namespaces; cases run interleaved over them; the
report (markdown table, plots, machine) goes to bench/results/STAMP/. Progress on stderr.
Exit 1 when any cell is an error (not for n/a): that is what keeps CI's --quick honest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plots  # noqa: E402
import report  # noqa: E402
from cases import Config, attach, container, many, network, overlay, traffic  # noqa: E402
from common import REPO, busybox_tar, machine, say  # noqa: E402
from peers import PEER_NAMES, Peer, make_peer  # noqa: E402

CASES = {"network": network, "container": container, "attach": attach, "many": many, "traffic": traffic,
         "overlay": overlay}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few runs of each (CI): runs 5, count 20, 2 s iperf")
    ap.add_argument("--runs", type=int, help="samples per timed operation (default 30; quick 5)")
    ap.add_argument("--count", type=int, help="containers one after another (default 100; quick 20)")
    ap.add_argument("--seconds", type=int, help="iperf3 seconds per round (default 4; quick 2)")
    ap.add_argument("--rounds", type=int, help="traffic rounds per peer (default 5; quick 1)")
    ap.add_argument("--peers", default=",".join(PEER_NAMES), help="comma list (default: all)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma list (default: all)")
    ap.add_argument("--no-overlay-docker", dest="overlay_docker", action="store_false",
                    help="leave Docker's classic overlay (3 dockerds, etcd v2) out of the overlay case")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"), help="results folder")
    args = ap.parse_args(argv)
    q = args.quick
    args.runs = args.runs or (5 if q else 30)
    args.count = args.count or (20 if q else 100)
    args.seconds = args.seconds or (2 if q else 4)
    args.rounds = args.rounds or (1 if q else 5)
    wanted = {p for p in args.peers.split(",") if p}
    args.peers = [p for p in PEER_NAMES if p in wanted] + sorted(wanted - set(PEER_NAMES))
    args.cases = [c for c in args.cases.split(",") if c]
    for c in args.cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}: one of {', '.join(CASES)}")
    for p in args.peers:
        if p not in PEER_NAMES:
            ap.error(f"unknown peer {p!r}: one of {', '.join(PEER_NAMES)}")
    return args


def _on_sigterm(owner: int):
    """SIGTERM cleans up like Ctrl-C, in this process only: forked helpers (pyroute2's) just exit."""
    def handler(signum, frame):  # noqa: ANN001 - signal handler signature
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt
    return handler


def start_peers(names: list[str], workdir: str, tar: str, peers: list[Peer]) -> dict[str, report.NA]:
    """Start each peer; one that cannot start is an error in every row, the others go on."""
    failed = {}
    for name in names:
        peer = make_peer(name, workdir)
        peers.append(peer)
        say(f"== starting {name}")
        try:
            peer.start(tar)
        except Exception as e:  # noqa: BLE001 - reported as this peer's error
            say(f"  {name} did not start: {e}")
            failed[name] = report.NA(f"{name} did not start: {str(e)[:300]}", error=True)
    return failed


def measure(args: argparse.Namespace, workdir: str, peers: list[Peer]) -> dict:
    tar = str(busybox_tar(Path(workdir)))
    failed = start_peers(args.peers, workdir, tar, peers)
    live = [p for p in peers if p.name not in failed]
    described = {p.name: p.describe() for p in live}
    cfg = Config(runs=args.runs, count=args.count, seconds=args.seconds, rounds=args.rounds,
                 pings=20 if args.quick else 100, overlay_docker=args.overlay_docker)
    rows: list[report.Row] = []
    results: dict[str, dict[str, report.Cell]] = {p: {} for p in args.peers}
    series: dict[str, list[float]] = {}
    rounds: dict[str, dict[str, dict[int, float]]] = {}
    breakdown: dict[str, dict] = {}
    for name in args.cases:
        say(f"== {name}")
        case = CASES[name].run(live, cfg)
        rows += case.rows
        for peer, cells in case.cells.items():  # overlay fills shoal and raw whatever --peers says
            results.setdefault(peer, {}).update(cells)
        for peer, extra in case.extra.items():
            if "series" in extra:
                series[peer] = extra["series"]
            if "rounds" in extra:
                rounds.setdefault(peer, {}).update(extra["rounds"])
            if peer == "shoal" and "breakdown" in extra:
                breakdown.update(extra["breakdown"])
    for name, na in failed.items():
        results[name] = {r.key: na for r in rows} | results.get(name, {})
    columns = [p for p in PEER_NAMES if p in args.peers or results.get(p)]
    return {"rows": rows, "results": results, "series": series, "rounds": rounds, "peers": described,
            "config": cfg, "columns": columns, "breakdown": breakdown}


def _paired(m: dict) -> str:
    rows = [r for r in m["rows"] if r.key.startswith("tp.")]
    table = report.paired_markdown(rows, m["rounds"], m["columns"])
    if not table:
        return ""
    return ("Throughput paired by round: shoal's median in a round over the other peer's in the same\n"
            "round (they ran back to back), then the median of those ratios and a 90% bootstrap\n"
            "interval. Drift over the run cancels here; prefer these to the table's ratios.\n\n"
            f"{table}\n\n")


def _breakdown(m: dict) -> str:
    table = report.breakdown_markdown(m["rows"], m["breakdown"])
    if not table:
        return ""
    return ("## Where shoal's time goes\n\n"
            "From shoald's GET /shoal/timings, read before and after each sample: per operation, the\n"
            "mean ms of each layer's exclusive time (a call's own time, minus the timed calls inside\n"
            "it) and its share of the daemon's request time (`api ms/op`); the layers add up to it.\n"
            "`other` is the controller's own code, lock waits and JSON; `outside` the client's wait\n"
            "beyond the daemon's request clock (HTTP, socket); `background` work outside requests\n"
            "(exit watchers) during the sample, not in the total. The largest layer is in bold.\n\n"
            f"{table}\n\n")


def write(args: argparse.Namespace, m: dict, host: dict, wall_s: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out) / stamp
    out.mkdir(parents=True, exist_ok=True)
    table = report.markdown_table(m["rows"], m["results"], m["columns"])
    config = {"mode": "quick" if args.quick else "full", "runs": args.runs, "count": args.count,
              "iperf3": f"{args.rounds} x {args.seconds} s", "wall time": f"{wall_s:.0f} s",
              "load average at the end": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    pics = []
    if m["series"]:
        plots.per_container(m["series"], out / "per-container.png")
        pics.append("![time per container](per-container.png)")
    if any(k in c for c in m["results"].values() for k in plots.THROUGHPUT_KEYS):
        plots.throughput(m["results"], m["columns"], out / "throughput.png")
        pics.append("![throughput per path](throughput.png)")
    text = (f"# shoal bench {stamp} ({config['mode']})\n\n"
            "Each cell: median (p90); for Gbit/s rows the tail is p10. `shoal/X`: shoal's median over X's,\n"
            "so above 1 is slower for ms/us/MiB/KiB and faster for Gbit/s. n/a and error cells cite a note\n"
            "under the table. Read ratios within this run; see bench/README.md.\n\n"
            f"{table}\n\n{_paired(m)}{_breakdown(m)}" + "\n".join(pics) + "\n\n## Machine, peers and run\n\n"
            f"{report.machine_markdown(host, m['peers'], config)}\n")
    (out / "report.md").write_text(text)
    (out / "results.json").write_text(json.dumps({
        "machine": host, "peers": m["peers"], "config": config, "rows": [r.__dict__ for r in m["rows"]],
        "results": report.to_json(m["results"]), "series": m["series"], "rounds": m["rounds"],
        "breakdown": m["breakdown"]}, indent=1))
    print(text)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        say("bench: run as root (it makes network namespaces and starts daemons)")
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm(os.getpid()))
    t0 = time.monotonic()
    host = machine()
    workdir = tempfile.mkdtemp(prefix="shb-bench-")
    peers: list[Peer] = []
    try:
        m = measure(args, workdir, peers)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        for peer in reversed(peers):
            say(f"== stopping {peer.name}")
            try:
                peer.close()
            except Exception as e:  # noqa: BLE001 - keep closing the others
                say(f"  {peer.name}: close: {e}")
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    out = write(args, m, host, time.monotonic() - t0)
    errs = report.errors(m["results"])
    say(f"\nreport: {out / 'report.md'} (wall time {time.monotonic() - t0:.0f} s)")
    for e in errs:
        say(f"error: {e}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
