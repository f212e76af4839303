"""Does a change cost more when there are many?  The 1st versus the Nth network and
published port (issue #4's scale target: the 1000th costs at most 1.5x the 1st), and
their removal with N present versus with one left.

    .venv/bin/python bench/scale.py [--count 1000]

Networks: created one after another through shoald's API (pools cut from 10.0.0.0/8 as
/24s, so a thousand fit).  Published ports: added one by one to shoal's nftables
firewall in a throwaway namespace (a port is one DNAT map element; the same code path as
`docker run -p`, without a container per port).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import httpx  # noqa: E402

from common import BIN, Netns, in_ns, stop_pid  # noqa: E402

from shoal.firewall import NetworkConfig, Nft, NftFirewall, PortMapping  # noqa: E402


def window(samples: list[float], at: int, width: int = 10) -> float:
    part = samples[max(0, at - width // 2):at + width // 2] or samples
    return statistics.median(part)


def networks(count: int) -> tuple[list[float], list[float]]:
    """shoald in a throwaway namespace with pools for a thousand /24 networks."""
    ns = Netns("scale")
    root = Path(tempfile.mkdtemp(prefix="shb-scale-"))
    sock = str(root / "s.sock")
    proc = subprocess.Popen(in_ns(ns.path, [str(BIN / "shoald"), "--data-root", str(root / "d"), "-H",
                                            f"unix://{sock}", "--log-level", "warning",
                                            "--default-address-pool", "base=10.0.0.0/8,size=24"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    client = httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://shoal", timeout=30)
    times, removals = [], []
    try:
        for _ in range(300):
            try:
                client.get("/_ping").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        for i in range(count):
            t0 = time.perf_counter()
            client.post("/networks/create", json={"Name": f"scale{i}"}).raise_for_status()
            times.append((time.perf_counter() - t0) * 1e3)
            if (i + 1) % 100 == 0:
                print(f"  networks {i + 1}/{count}", file=sys.stderr)
        for i in reversed(range(count)):  # the newest first: the first removal has N present
            t0 = time.perf_counter()
            client.delete(f"/networks/scale{i}").raise_for_status()
            removals.append((time.perf_counter() - t0) * 1e3)
    finally:
        client.close()
        stop_pid(proc)
        ns.close()
        shutil.rmtree(root, ignore_errors=True)
    return times, removals


async def ports(count: int) -> tuple[list[float], list[float]]:
    ns = Netns("fw")
    fw = NftFirewall(Nft(prefix=("nsenter", f"--net={ns.path}")))
    times, removals, mappings = [], [], []
    try:
        await fw.apply_state(fw.state)
        await fw.add_network(NetworkConfig("shb-br0", subnets4=("10.9.0.0/16",)))
        for i in range(count):
            mapping = PortMapping("tcp", 20000 + i, f"10.9.{i // 250}.{i % 250 + 2}", 80, "shb-br0")
            t0 = time.perf_counter()
            await fw.add_ports([mapping])
            times.append((time.perf_counter() - t0) * 1e3)
            mappings.append(mapping)
            if (i + 1) % 100 == 0:
                print(f"  ports {i + 1}/{count}", file=sys.stderr)
        for mapping in reversed(mappings):
            t0 = time.perf_counter()
            await fw.remove_ports([mapping])
            removals.append((time.perf_counter() - t0) * 1e3)
    finally:
        ns.close()
    return times, removals


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args(argv)
    net, net_rm = networks(args.count)
    prt, prt_rm = asyncio.run(ports(args.count))
    print(f"{'change':36} {'1st (ms)':>10} {'Nth (ms)':>10} {'Nth/1st':>8} {'worst (ms)':>11}")
    for name, samples in (("network create (API)", net), ("published port (nft element)", prt),
                          ("network rm (API)", net_rm[::-1]), ("published port removal", prt_rm[::-1])):
        # removals are reversed: "1st" is the last one left, "Nth" the first of N
        first, last = window(samples, 5), window(samples, len(samples) - 5)
        print(f"{name:36} {first:10.2f} {last:10.2f} {last / first:8.2f} {max(samples):11.1f}   "
              f"(N={len(samples)}, medians of 10 around each end)")


if __name__ == "__main__":
    main()
