"""Networks and containers through remote plugins, beside the built-in driver (issue #10),
paired by round:

* **shoald using a plugin**: shoald's own `bridge` driver against the same kind of network
  made by a remote network-driver plugin (tests/plugin_server.py --kernel: a bridge per
  network and a veth pair per endpoint made with `ip`, the simplest real plugin), both in
  one shoald. What the plugin itself costs (a Python HTTP server running `ip`) is in the
  figure: read it as "a plugin of that speed", not as shoal's overhead alone.
* **dockerd using shoal**: dockerd 20.10's own `bridge` driver against `-d shoal-bridge`
  served by a shoald beside it (`--serve-plugins`), in one throwaway host namespace.

    .venv/bin/python bench/plugins_ab.py [--rounds 15] [--only shoal|docker]

Each round: network create, container run (create+start until running) on it, container
rm -f, network rm, timed one by one through the Engine API, alternating the two drivers.
Namespaces, daemons and temp dirs are removed at exit. Not part of `bench/run`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402

from common import BIN, Netns, in_ns, stop_pid  # noqa: E402
from peers.docker import DockerPeer  # noqa: E402
from peers.engine import CMD, IMAGE  # noqa: E402
from peers.shoal import ShoalPeer  # noqa: E402

STEPS = ("network create", "run", "rm -f", "network rm")


def round_trip(client: httpx.Client, driver: str, name: str, out: dict[str, list[float]]) -> None:
    def timed(step: str, fn) -> httpx.Response:  # noqa: ANN001
        t0 = time.perf_counter()
        r = fn()
        out[step].append((time.perf_counter() - t0) * 1e3)
        if r.status_code >= 400:
            raise RuntimeError(f"{driver} {step}: {r.status_code} {r.text}")
        return r

    timed("network create", lambda: client.post("/networks/create", json={"Name": name, "Driver": driver}))

    made: dict[str, str] = {}

    def run() -> httpx.Response:
        body = {"Image": IMAGE, "Cmd": CMD, "HostConfig": {"NetworkMode": name}}
        r = client.post("/containers/create", json=body)
        if r.status_code >= 400:
            return r
        made["id"] = r.json()["Id"]
        return client.post(f"/containers/{made['id']}/start")

    try:
        timed("run", run)
    finally:
        if "id" in made:
            timed("rm -f", lambda: client.delete(f"/containers/{made['id']}", params={"force": "1"}))
    timed("network rm", lambda: client.delete(f"/networks/{name}"))


def compare(client: httpx.Client, drivers: tuple[str, str], rounds: int, tag: str) -> dict[str, dict[str, list]]:
    times = {d: {s: [] for s in STEPS} for d in drivers}
    for i in range(rounds):
        for d in (drivers if i % 2 == 0 else drivers[::-1]):  # who goes first alternates
            round_trip(client, d, f"shb{tag}{i}{d.replace('-', '')}", times[d])
        print(f"  {tag} round {i + 1}/{rounds}", file=sys.stderr)
    return times


def table(title: str, times: dict[str, dict[str, list]], base: str, other: str) -> None:
    print(f"\n{title}\n\n| step | {base} (ms) | {other} (ms) | {other}/{base} |\n|---|---:|---:|---:|")
    for step in STEPS:
        a, b = statistics.median(times[base][step]), statistics.median(times[other][step])
        print(f"| {step} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")


def shoal_with_plugin(work: Path, rounds: int, tar: str) -> None:
    from tests.plugin_server import PluginProc

    sockets = work / "plugins"
    sockets.mkdir()
    peer = ShoalPeer(str(work))
    peer.extra = ("--plugin-sockets", str(sockets), "--plugin-specs", str(work / "no-specs"))
    plug = None
    try:
        peer.start(tar)
        plug = PluginProc(work, "shb-plug", socket_dir=sockets, extra=["--kernel"],
                          argv_prefix=["nsenter", f"--net={peer.ns.path}"]).start()
        table("shoald: its bridge driver against a remote plugin's (tests/plugin_server.py --kernel)",
              compare(peer.client, ("bridge", "shb-plug"), rounds, "p"), "bridge", "shb-plug")
    finally:
        if plug is not None:
            plug.stop()
        peer.close()


def docker_with_shoal(work: Path, rounds: int, tar: str) -> None:
    plugins = work / "served"
    plugins.mkdir()
    docker = DockerPeer(str(work))
    ns = Netns("plugdk")
    docker.ns, docker.host_ns = ns, ns.path
    shoald = None
    try:
        docker.spawn(ns, ["--bip", "10.199.0.1/24"], plugins=str(plugins))
        docker.wait_up()
        docker.import_image(tar)
        root = work / "shoald"
        shoald = subprocess.Popen(in_ns(ns.path, [str(BIN / "shoald"), "--data-root", str(root), "-H",
                                                  f"unix://{work / 'shoal.sock'}", "--log-level", "warning",
                                                  "--self-heal-interval", "0", "--br-netfilter", "leave",
                                                  "--serve-plugins", str(plugins)]),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not (plugins / "shoal-bridge.sock").exists():
            if shoald.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("shoald --serve-plugins did not come up")
            time.sleep(0.05)
        table("dockerd 20.10: its bridge driver against shoal-bridge served by shoald",
              compare(docker.client, ("bridge", "shoal-bridge"), rounds, "d"), "bridge", "shoal-bridge")
    finally:
        docker.close()
        if shoald is not None:
            stop_pid(shoald)
        ns.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--only", choices=("shoal", "docker"))
    args = ap.parse_args()
    tar = str(HERE.parent / "build" / "busybox.tar")
    work = Path(tempfile.mkdtemp(prefix="shb-plugab-"))
    try:
        for which, part in (("shoal", shoal_with_plugin), ("docker", docker_with_shoal)):
            if args.only in (None, which):
                (work / which).mkdir()
                part(work / which, args.rounds, tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
