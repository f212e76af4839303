"""Containers through shoald beside runc alone (the floor), interleaved A/B.

    .venv/bin/python bench/containers.py [--runs 30] [--count 100]

1. `run -d` until running, then `rm -f`: shoald API (create + start, with a network
   endpoint) and the docker CLI against shoald, beside `runc run -d` + `runc delete -f`
   of the same rootfs with no network.
2. `--count` containers started one after another on one network: time per container as
   the count grows, containers per second, shoald RSS and memory per running container
   (the per-container conmon's RSS, and shoald's growth divided by the count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BIN, Daemon, machine, stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def conmon_pids(root: Path) -> list[int]:
    pids = []
    for pidfile in root.glob("d/runtime/containers/*/conmon.pid"):
        try:
            pids.append(int(pidfile.read_text().strip()))
        except ValueError:
            pass
    return pids


class RuncFloor:
    """The same rootfs under plain runc: no network, no monitor, no store."""

    def __init__(self, tar: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="shb-runc-"))
        (self.dir / "rootfs").mkdir()
        subprocess.run(["tar", "-xf", str(tar), "-C", str(self.dir / "rootfs")], check=True)
        subprocess.run(["runc", "spec"], cwd=self.dir, check=True)
        cfg = json.loads((self.dir / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["sleep", "600"]
        (self.dir / "config.json").write_text(json.dumps(cfg))
        self.root = self.dir / "state"

    def once(self, i: int) -> tuple[float, float]:
        cid = f"shb-floor-{i}"
        t0 = time.perf_counter()
        subprocess.run(["runc", "--root", str(self.root), "run", "-d", cid], cwd=self.dir, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t1 = time.perf_counter()
        subprocess.run(["runc", "--root", str(self.root), "delete", "-f", cid], check=True)
        return (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def api_once(d: Daemon, i: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = d.client.post("/containers/create", json={"Image": "busybox", "Cmd": ["sleep", "600"]})
    r.raise_for_status()
    cid = r.json()["Id"]
    d.client.post(f"/containers/{cid}/start").raise_for_status()
    t1 = time.perf_counter()
    d.client.delete(f"/containers/{cid}?force=1").raise_for_status()
    return (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3


def cli_once(d: Daemon, i: int) -> tuple[float, float]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{d.sock}", "DOCKER_CONFIG": str(d.root / "dc")}
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "busybox", "sleep", "600"], env=env, check=True, capture_output=True)
    t1 = time.perf_counter()
    cid = subprocess.run(["docker", "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()[0]
    t2 = time.perf_counter()
    subprocess.run(["docker", "rm", "-f", cid], env=env, check=True, capture_output=True)
    return (t1 - t0) * 1e3, (time.perf_counter() - t2) * 1e3


def many(d: Daemon, count: int) -> dict:
    d.client.post("/networks/create", json={"Name": "benchnet"}).raise_for_status()
    rss0 = d.rss_kib()
    times = []
    t_start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        r = d.client.post("/containers/create", json={
            "Image": "busybox", "Cmd": ["sleep", "600"], "HostConfig": {"NetworkMode": "benchnet"}})
        r.raise_for_status()
        d.client.post(f"/containers/{r.json()['Id']}/start").raise_for_status()
        times.append((time.perf_counter() - t0) * 1e3)
        if (i + 1) % 25 == 0:
            print(f"  started {i + 1}/{count}", file=sys.stderr)
    total = time.perf_counter() - t_start
    rss1 = d.rss_kib()
    conmons = [rss_kib(p) for p in conmon_pids(d.root)]
    buckets = {}
    step = max(1, count // 4)
    for start in range(0, count, step):
        buckets[f"{start + 1}-{min(count, start + step)}"] = stats(times[start:start + step])
    return {
        "per_container": stats(times), "buckets": buckets, "per_second": count / total,
        "rss_before_kib": rss0, "rss_after_kib": rss1,
        "conmon_rss_kib": (sum(conmons) / len(conmons)) if conmons else 0, "conmons": len(conmons),
    }


def build_tar() -> Path:
    out = Path(tempfile.mkdtemp(prefix="shb-img-")) / "busybox.tar"
    subprocess.run([str(REPO / "scripts" / "build-busybox-rootfs"), str(out)], check=True, capture_output=True)
    return out


def report(rows: dict, big: dict, count: int) -> None:
    print(f"machine: {machine()}")
    print(f"{'operation':52} {'median ms':>10} {'p90 ms':>10}")
    for name, s in rows.items():
        print(f"{name:52} {s['median']:10.1f} {s['p90']:10.1f}")
    ratio = rows["shoal API create+start (bridge endpoint)"]["median"] / rows["runc run -d alone (floor)"]["median"]
    print(f"ratio shoal API run / runc floor (medians): {ratio:.2f}x")
    print(f"\n{count} containers one after another on one network: "
          f"{big['per_second']:.1f} containers/s, median {big['per_container']['median']:.1f} ms")
    for bucket, s in big["buckets"].items():
        print(f"  containers {bucket:>9}: median {s['median']:.1f} ms, p90 {s['p90']:.1f} ms")
    growth = (big["rss_after_kib"] - big["rss_before_kib"]) / max(count, 1)
    print(f"shoald RSS {big['rss_before_kib'] / 1024:.1f} MiB -> {big['rss_after_kib'] / 1024:.1f} MiB "
          f"({growth:.0f} KiB per container); conmon RSS {big['conmon_rss_kib'] / 1024:.2f} MiB each "
          f"({big['conmons']} monitors)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--count", type=int, default=100)
    args = ap.parse_args(argv)
    tar = build_tar()
    d = Daemon()
    floor = RuncFloor(tar)
    try:
        subprocess.run([str(BIN / "shoal"), "-H", f"unix://{d.sock}", "image", "import", str(tar), "busybox:latest"],
                       capture_output=True)
        if d.client.get("/images/busybox/json").status_code != 200:
            with open(tar, "rb") as f:
                d.client.post("/images/create?fromSrc=-&repo=busybox&tag=latest", content=f.read(),
                              headers={"Content-Type": "application/x-tar"}).raise_for_status()
        api_run, api_rm, cli_run, cli_rm, f_run, f_rm = [], [], [], [], [], []
        has_docker = shutil.which("docker") is not None
        for i in range(args.runs):
            a, b = api_once(d, i)
            api_run.append(a), api_rm.append(b)
            if has_docker:
                a, b = cli_once(d, i)
                cli_run.append(a), cli_rm.append(b)
            a, b = floor.once(i)
            f_run.append(a), f_rm.append(b)
        rows = {"shoal API create+start (bridge endpoint)": stats(api_run), "shoal API rm -f": stats(api_rm)}
        if has_docker:
            rows.update({"docker CLI run -d against shoald": stats(cli_run),
                         "docker CLI rm -f against shoald": stats(cli_rm)})
        rows.update({"runc run -d alone (floor)": stats(f_run), "runc delete -f alone": stats(f_rm)})
        big = many(d, args.count)
        report(rows, big, args.count)
    finally:
        for cid in [c["Id"] for c in d.client.get("/containers/json?all=1").json()]:
            d.client.delete(f"/containers/{cid}?force=1")
        d.close()
        floor.close()
        shutil.rmtree(tar.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
