"""`docker pull` from one local registry into dockerd 20.10 and into shoald, paired by round
(issue #11).

One throwaway host namespace holds the registry (Debian's docker-registry 2.8 on
127.0.0.1:5000), dockerd and shoald, so both daemons pull the same bytes over the same
loopback. Images, built here and seeded with skopeo:

* **big**: 5 gzip layers of ~20 MiB each (random bytes in a few hundred files per layer,
  so neither compression nor file creation is free), ~100 MiB;
* **small**: the busybox rootfs as one layer (~1 MiB);
* **big-b**: big's first four layers and a different fifth, for the disk figure.

Each round removes the image from both daemons, then pulls it through the Engine API
(`POST /images/create`, the stream read to its end), the two daemons in alternating order.
During each pull the daemon's RSS is sampled every 10 ms (dockerd's own process; shoald's),
so "memory during a pull" is the peak above the daemon's RSS before it. After the rounds
both images are pulled and the disk each daemon's data root grew by is reported.

    .venv/bin/python bench/pull_ab.py [--rounds 5] [--layer-mib 20]

Not part of `bench/run` (it needs dockerd, docker-registry and skopeo).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402

from common import BIN, Netns, in_ns, rss_kib, stop_pid  # noqa: E402
from peers.docker import DockerPeer  # noqa: E402

from tests import oci_layout as ol  # noqa: E402
from tests.registry_server import RegistryServer  # noqa: E402

REGISTRY = "127.0.0.1:5000"


def big_layers(layer_mib: int, files: int = 200, salt: bytes = b"") -> list[list[ol.Entry]]:
    per = layer_mib * (1 << 20) // files
    return [[ol.directory(f"l{i}")] + [ol.file(f"l{i}/f{j}", os.urandom(per) + salt) for j in range(files)]
            for i in range(5)]


def seed_images(server: RegistryServer, ns: Netns, layer_mib: int, busybox: bytes, work: Path) -> None:
    big = big_layers(layer_mib)
    b_top = big_layers(layer_mib, salt=b"b")[4]
    small = ol.build_image([[]], compression="gzip", Cmd=["sh"])
    images = {"bench/big": ol.build_image(big, Cmd=["sh"]), "bench/big-b": ol.build_image(big[:4] + [b_top], Cmd=["sh"])}
    for repo, image in images.items():
        layout = work / repo.replace("/", "-")
        ol.write_image(layout, "1", image)
        ol.seed(server.url, layout, repo, "1", netns=ns.name)
    # the small one: the busybox tar as its only layer, gzip
    import gzip
    import json
    blob = ol.Blob(ol.LAYER_TYPES["gzip"], gzip.compress(busybox, mtime=0))
    cfg = json.loads(small.config.data)
    cfg["rootfs"]["diff_ids"] = [ol.sha256(busybox)]
    config = ol.Blob(ol.OCI_CONFIG, json.dumps(cfg).encode())
    manifest = ol.Blob(ol.OCI_MANIFEST, json.dumps({"schemaVersion": 2, "mediaType": ol.OCI_MANIFEST,
                                                    "config": config.descriptor(), "layers": [blob.descriptor()]}).encode())
    layout = work / "small"
    ol.write_image(layout, "1", ol.Image(manifest, config, (blob,), (ol.sha256(busybox),)))
    ol.seed(server.url, layout, "bench/small", "1", netns=ns.name)


class Sampler:
    """Peak RSS of one pid while a pull runs, sampled every 10 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.base = rss_kib(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(0, self.peak - self.base)


def pull(client: httpx.Client, repo: str, pid: int) -> tuple[float, int]:
    sampler = Sampler(pid)
    t0 = time.perf_counter()
    with client.stream("POST", "/images/create", params={"fromImage": f"{REGISTRY}/{repo}", "tag": "1"},
                       timeout=600) as r:
        body = b"".join(r.iter_raw())
    elapsed = (time.perf_counter() - t0) * 1e3
    grew = sampler.stop()
    if r.status_code != 200 or b'"error"' in body:
        raise RuntimeError(f"pull {repo}: {r.status_code} {body[-500:]!r}")
    return elapsed, grew


def remove(client: httpx.Client, repo: str) -> None:
    client.delete(f"/images/{REGISTRY}/{repo}:1", params={"force": "1"})


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layer-mib", type=int, default=20)
    args = ap.parse_args()
    busybox = (HERE.parent / "build" / "busybox.tar").read_bytes()
    work = Path(tempfile.mkdtemp(prefix="shb-pullab-"))
    ns = Netns("pullab")
    server = docker = shoald = None
    try:
        server = RegistryServer(netns=ns.name).start()
        print("seeding the registry ...", file=sys.stderr)
        seed_images(server, ns, args.layer_mib, busybox, work)
        (work / "docker").mkdir()
        docker = DockerPeer(str(work / "docker"))
        docker.ns, docker.host_ns = ns, ns.path
        docker.spawn(ns, ["--bip", "10.198.0.1/24"])
        docker.wait_up()
        sock = work / "shoal.sock"
        shoald = subprocess.Popen(in_ns(ns.path, [str(BIN / "shoald"), "--data-root", str(work / "shoald"),
                                                  "-H", f"unix://{sock}", "--log-level", "warning",
                                                  "--self-heal-interval", "0"]),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not sock.exists():
            if shoald.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("shoald did not come up")
            time.sleep(0.05)
        shoal = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://shoal", timeout=600)
        peers = {"docker": (docker.client, docker.proc.pid), "shoal": (shoal, shoald.pid)}
        times = {(p, img): [] for p in peers for img in ("big", "small")}
        mem = {(p, img): [] for p in peers for img in ("big", "small")}
        for i in range(args.rounds):
            order = list(peers) if i % 2 == 0 else list(peers)[::-1]
            for img in ("big", "small"):
                for name in order:
                    client, pid = peers[name]
                    remove(client, f"bench/{img}")
                    elapsed, grew = pull(client, f"bench/{img}", pid)
                    times[(name, img)].append(elapsed)
                    mem[(name, img)].append(grew)
            print(f"  round {i + 1}/{args.rounds}", file=sys.stderr)
        print(f"\nPull from a local registry 2.8, {args.rounds} rounds, medians (ms); RSS growth peak (MiB)\n")
        print("| image | dockerd 20.10 | shoald | shoald/dockerd | dockerd RSS+ | shoald RSS+ |\n|---|---:|---:|---:|---:|---:|")
        for img, label in (("big", f"5 layers x {args.layer_mib} MiB"), ("small", "1 layer, busybox")):
            a, b = statistics.median(times[("docker", img)]), statistics.median(times[("shoal", img)])
            ma, mb = max(mem[("docker", img)]) / 1024, max(mem[("shoal", img)]) / 1024
            print(f"| {label} | {a:.0f} | {b:.0f} | {b / a:.2f}x | {ma:.1f} | {mb:.1f} |")
        for name, (client, _) in peers.items():
            remove(client, "bench/big")
            remove(client, "bench/small")
        roots = {"docker": work / "docker", "shoal": work / "shoald"}
        before = {n: du(p) for n, p in roots.items()}
        for name, (client, pid) in peers.items():
            pull(client, "bench/big", pid)
            pull(client, "bench/big-b", pid)
        grown = {n: du(p) - before[n] for n, p in roots.items()}
        print(f"\nDisk for big and big-b (sharing 4 of 5 layers): dockerd {grown['docker'] / 2**20:.0f} MiB, "
              f"shoald {grown['shoal'] / 2**20:.0f} MiB ({grown['shoal'] / grown['docker']:.2f}x)")
        shoal.close()
    finally:
        if docker is not None:
            docker.close()
        if shoald is not None:
            stop_pid(shoald)
        if server is not None:
            server.stop()
        ns.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
