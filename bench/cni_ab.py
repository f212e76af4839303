"""CNI ADD and DEL: `shoal-cni` (backed by shoald) beside the reference `bridge` plugin with
`host-local` IPAM (issue #10's goal: no slower), paired by round.

    .venv/bin/python bench/cni_ab.py [--rounds 30]

Each round makes a fresh pod namespace per plugin, runs ADD then DEL through the plugin's
binary exactly as a runtime does (CNI environment, configuration on stdin), and times each
command from exec to exit. shoald runs in its own throwaway host namespace (as in
bench/run), the reference bridge in another one; every namespace and temp dir goes at exit.
Not part of `bench/run`; a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Netns, in_ns  # noqa: E402
from peers.shoal import ShoalPeer  # noqa: E402

REFERENCE = Path("/usr/lib/cni")


def timed(argv: list[str], conf: dict, env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=json.dumps(conf), capture_output=True, text=True, env=env)
    took = (time.perf_counter() - t0) * 1e3
    if p.returncode != 0:
        raise RuntimeError(f"{argv[-1]} {env['CNI_COMMAND']}: {p.stdout or p.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    if not (REFERENCE / "bridge").exists():
        print("needs containernetworking-plugins (/usr/lib/cni/bridge)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="shb-cni-"))
    shoal = ShoalPeer(str(work))
    ref_host = Netns("cniref")
    pods: list[Netns] = []
    times: dict[str, list[float]] = {k: [] for k in ("shoal ADD", "shoal DEL", "bridge ADD", "bridge DEL")}
    try:
        shoal.start(str(Path(__file__).resolve().parents[1] / "build" / "busybox.tar"))
        shoal.ensure_network("shbcni")
        ours = {"cniVersion": "1.1.0", "name": "shbcni", "type": "shoal-cni", "socket": str(shoal.root / "s.sock")}
        ref = {"cniVersion": "1.0.0", "name": "shbref", "type": "bridge", "bridge": "shbcni0", "isGateway": True,
               "ipMasq": False, "ipam": {"type": "host-local", "subnet": "10.97.0.0/16",
                                         "dataDir": str(work / "ipam"), "routes": [{"dst": "0.0.0.0/0"}]}}
        plugin = [str(Path(__file__).resolve().parents[1] / "src" / "shoal" / "cni" / "main.py")]  # as installed
        for i in range(args.rounds):
            for name, argv, conf in (("shoal", plugin, ours),
                                     ("bridge", in_ns(ref_host.path, [str(REFERENCE / "bridge")]), ref)):
                pod = Netns("cnipod")
                pods.append(pod)
                env = {"PATH": os.environ["PATH"], "CNI_PATH": str(REFERENCE), "CNI_CONTAINERID": f"shb{i}{name}",
                       "CNI_NETNS": pod.path, "CNI_IFNAME": "eth0", **({"PYTHONPATH": os.environ["PYTHONPATH"]}
                                                                       if "PYTHONPATH" in os.environ else {})}
                times[f"{name} ADD"].append(timed(argv, conf, {**env, "CNI_COMMAND": "ADD"}))
                times[f"{name} DEL"].append(timed(argv, conf, {**env, "CNI_COMMAND": "DEL"}))
                pod.close()
                pods.remove(pod)
            print(f"  round {i + 1}/{args.rounds}", file=sys.stderr)
    finally:
        for pod in pods:
            pod.close()
        shoal.close()
        ref_host.close()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| command | shoal-cni (ms) | bridge + host-local (ms) | shoal/bridge |")
    print("|---|---:|---:|---:|")
    for cmd in ("ADD", "DEL"):
        print(f"| {cmd} | {med[f'shoal {cmd}']:.1f} | {med[f'bridge {cmd}']:.1f} | "
              f"{med[f'shoal {cmd}'] / med[f'bridge {cmd}']:.2f}x |")
    both = [a + d for a, d in zip(times["shoal ADD"], times["shoal DEL"])]
    ref_both = [a + d for a, d in zip(times["bridge ADD"], times["bridge DEL"])]
    print(f"| ADD+DEL | {statistics.median(both):.1f} | {statistics.median(ref_both):.1f} | "
          f"{statistics.median(both) / statistics.median(ref_both):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
