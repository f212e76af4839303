"""Network create + inspect + rm through shoald's API, beside the same kernel work done
directly with pyroute2 (the floor).  Interleaved A/B so drift hits both sides.

    .venv/bin/python bench/network_ops.py [--runs 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pyroute2 import IPRoute  # noqa: E402

from common import Daemon, Netns, machine, stats  # noqa: E402


def shoal_once(d: Daemon, i: int) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    r = d.client.post("/networks/create", json={"Name": f"bench{i}"})
    r.raise_for_status()
    t1 = time.perf_counter()
    d.client.get(f"/networks/{r.json()['Id']}").raise_for_status()
    t2 = time.perf_counter()
    d.client.delete(f"/networks/bench{i}").raise_for_status()
    t3 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3


def raw_once(ipr: IPRoute, i: int) -> float:
    t0 = time.perf_counter()
    ipr.link("add", ifname="br-raw", kind="bridge")
    idx = ipr.link_lookup(ifname="br-raw")[0]
    ipr.link("set", index=idx, mtu=1500, ifalias="raw")
    ipr.addr("add", index=idx, address="172.18.0.1", prefixlen=16)
    ipr.link("set", index=idx, state="up")
    ipr.link("del", index=idx)
    return (time.perf_counter() - t0) * 1e3


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args(argv)
    d = Daemon()
    raw_ns = Netns("raw")
    ipr = IPRoute(netns=raw_ns.name, flags=0)
    create, inspect, rm, total, raw = [], [], [], [], []
    try:
        for i in range(args.runs):
            c, g, r = shoal_once(d, i)
            create.append(c), inspect.append(g), rm.append(r), total.append(c + g + r)
            raw.append(raw_once(ipr, i))
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{args.runs}", file=sys.stderr)
        rss = d.rss_kib()
    finally:
        ipr.close()
        raw_ns.close()
        d.close()
    rows = {
        "shoal network create": stats(create),
        "shoal network inspect": stats(inspect),
        "shoal network rm": stats(rm),
        "shoal create+inspect+rm": stats(total),
        "raw pyroute2 bridge add+addr+up+del (floor)": stats(raw),
    }
    print(f"machine: {machine()}")
    print(f"{'operation':48} {'median ms':>10} {'p90 ms':>10}")
    for name, s in rows.items():
        print(f"{name:48} {s['median']:10.2f} {s['p90']:10.2f}")
    ratio = rows["shoal create+inspect+rm"]["median"] / rows["raw pyroute2 bridge add+addr+up+del (floor)"]["median"]
    print(f"ratio shoal create+inspect+rm / raw floor (medians): {ratio:.2f}x")
    print(f"shoald RSS after the run: {rss / 1024:.1f} MiB")
    return {"rows": rows, "rss_kib": rss, "ratio": ratio}


if __name__ == "__main__":
    main()
