"""What a read of one vxlan device's FDB or neighbour table costs when the host holds many
entries (docs/design.md, "Overlay data plane (kernel)"): pyroute2's dump, which fetches
every entry and filters in Python, against kernel.nldump's kernel-filtered dump read with
struct. Also one address lookup (device_of_address) among many addresses.

    .venv/bin/python bench/vxlan_dumps.py [--count 5000]

In a throwaway namespace (`sht-vxbench-*`, deleted by name): `vx-ours` with 10 entries
of each kind, `vx-other` with COUNT, and COUNT/5 addresses on a veth.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable

from pyroute2 import IPRoute

from shoal.kernel import Netlink


def median_ms(fn: Callable[[], object], runs: int = 10) -> tuple[float, int]:
    samples, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        size = len(fn())  # type: ignore[arg-type]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), size


def populate(ns: str, count: int) -> None:
    def batch(cmd: list[str], lines: list[str]) -> None:
        subprocess.run(cmd, input="\n".join(lines) + "\n", text=True, check=True)

    ip = ["ip", "-n", ns, "-batch", "-"]
    lines = ["link add eth0 type veth peer name eth1", "addr add 192.0.2.1/24 dev eth0", "link set eth0 up",
             "link set eth1 up", "link add ov0 type bridge", "link set ov0 up"]
    for name, vni in (("vx-ours", 1), ("vx-other", 2)):
        lines += [f"link add {name} type vxlan id {vni} local 192.0.2.1 dstport 4789 nolearning proxy",
                  f"link set {name} master ov0 up"]
    batch(ip, lines)
    neigh, fdb = [], []
    for dev, n in (("vx-ours", 10), ("vx-other", count)):
        for i in range(n):
            mac = f"02:42:0a:{1 if dev == 'vx-ours' else 2:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
            neigh.append(f"neigh add 10.{1 if dev == 'vx-ours' else 2}.{i >> 8 & 255}.{i & 255} lladdr {mac} "
                         f"dev {dev} nud permanent")
            fdb.append(f"fdb add {mac} dev {dev} dst 192.0.2.{2 + i % 200} self permanent")
    batch(ip, neigh + [f"addr add 10.200.{i >> 8 & 255}.{i & 255}/32 dev eth1" for i in range(count // 5)])
    batch(["nsenter", f"--net=/run/netns/{ns}", "bridge", "-batch", "-"], fdb)


def measure(ns: str, count: int) -> None:
    nl, ipr = Netlink(ns), IPRoute(netns=ns, flags=0)
    try:
        rows = []
        for dev in ("vx-ours", "vx-other"):
            index = ipr.link_lookup(ifname=dev)[0]
            rows.append((f"FDB of {dev}", median_ms(lambda i=index: list(ipr.fdb("dump", ifindex=i))),
                         median_ms(lambda d=dev: nl.fdb_entries(d))))
            rows.append((f"neighbours of {dev}", median_ms(lambda i=index: list(ipr.neigh("dump", ifindex=i))),
                         median_ms(lambda d=dev: nl.neigh_entries(d))))
        want = f"10.200.0.{min(count // 5, 200) - 1}"
        rows.append(("device_of_address", median_ms(
            lambda: [a for a in ipr.addr("dump") if a.get_attr("IFA_LOCAL") == want]),
            median_ms(lambda: [nl.device_of_address(want)])))
    finally:
        nl.close()
        ipr.close()
    print(f"{count} entries of each kind on vx-other, 10 on vx-ours, {count // 5} addresses; median of 10")
    print(f"{'read':28} {'pyroute2 dump + Python filter':>32} {'kernel filter + struct':>26}")
    for what, (old, old_n), (new, new_n) in rows:
        print(f"{what:28} {old:>20.1f} ms ({old_n:>5}) {new:>14.2f} ms ({new_n:>5})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    ns = f"sht-vxbench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        populate(ns, args.count)
        measure(ns, args.count)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


if __name__ == "__main__":
    main()
