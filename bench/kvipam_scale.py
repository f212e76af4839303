"""What one global address claim costs as a network fills: 1st against Nth, on a real etcd.

    .venv/bin/python bench/kvipam_scale.py [--count 1000] [--prefix-len 22]    (root, ~1 minute)

Not part of `bench/run`. Starts one etcd member on 127.0.0.1 inside a throwaway network
namespace of its own (removed at the end), claims one pool through `KVIpam`, then
`--count` addresses one after another as overlay endpoints do (an owner each), and
prints the claim time by decile, then a release + re-claim in a full network (the
freed address must be the one handed out again: lowest free). Each claim lists the
pool's claims to find the lowest free address, so its cost grows with the endpoints on
the network; this measures by how much.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PORT = 23790


async def measure(count: int, prefix_len: int) -> None:
    from shoal.controller.kvipam import KVIpam
    from shoal.ipam.api import GLOBAL_DEFAULT, OPT_OWNER
    from shoal.store.cluster import open_kv

    kv = open_kv(f"etcd://127.0.0.1:{PORT}/bench")
    ipam = KVIpam(kv, "/bench/", host="h1", lease=lambda: 0)
    pool_id, cidr, _ = await ipam.request_pool(GLOBAL_DEFAULT, f"10.200.0.0/{prefix_len}")
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        await ipam.request_address(pool_id, options={OPT_OWNER: f"ep{i}"})
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{count} claims in {cidr} on etcd {PORT} (one member, loopback)")
    print("| claims so far | claim ms, median of that tenth |")
    print("|---:|---:|")
    step = max(1, count // 10)
    for start in range(0, count, step):
        print(f"| {start}-{min(count, start + step) - 1} | {statistics.median(times[start:start + step]):.2f} |")
    first, last = statistics.median(times[:10]), statistics.median(times[-10:])
    print(f"last ten over first ten: {last / first:.2f}x")
    middle = f"10.200.0.{count // 2 % 250 + 2}"
    await ipam.release_address(pool_id, middle)
    again, _ = await ipam.request_address(pool_id, options={OPT_OWNER: "again"})
    print(f"released {middle}, next claim got {again}")
    await kv.close()


def inner(args: argparse.Namespace) -> int:
    data = tempfile.mkdtemp(prefix="shb-kvipam-")
    etcd = subprocess.Popen(["etcd", "--name", "b1", "--data-dir", data,
                             "--listen-client-urls", f"http://127.0.0.1:{PORT}",
                             "--advertise-client-urls", f"http://127.0.0.1:{PORT}",
                             "--listen-peer-urls", f"http://127.0.0.1:{PORT + 1}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{PORT + 1}",
                             "--initial-cluster", f"b1=http://127.0.0.1:{PORT + 1}", "--log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        asyncio.run(measure(args.count, args.prefix_len))
    finally:
        etcd.terminate()
        etcd.wait(timeout=30)
        subprocess.run(["rm", "-rf", "--", data], check=False)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--prefix-len", type=int, default=22)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        return inner(args)
    ns = f"shb-kvipam-{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, __file__, "--inner",
                               "--count", str(args.count), "--prefix-len", str(args.prefix_len)],
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
