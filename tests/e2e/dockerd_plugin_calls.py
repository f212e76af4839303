"""Record what a real dockerd sends a remote plugin for the e2e test's commands, into
tests/golden/plugins/ (run by hand, as root, where Debian's docker.io is installed:
`PYTHONPATH=src .venv/bin/python -m tests.e2e.dockerd_plugin_calls`).

dockerd runs as bench/peers/docker.py starts one: in a throwaway network namespace
(`shr-dk...`), in a private mount namespace with tmpfs on /run and /etc/docker, its
roots in a temp dir. The test plugin runs in dockerd's mount and network namespaces, so
its socket is dockerd's /run/docker/plugins/shr-plug.sock and nothing touches the
machine's plugin directories. Everything is removed by exact name and pid afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.plugin_server import PluginProc

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "plugins"
LAUNCH = ('hostname "$0" && mount -t tmpfs shr-run /run && '
          '{ [ ! -d /etc/docker ] || mount -t tmpfs shr-etc /etc/docker; } && exec "$@"')


def normalize(calls: list[dict]) -> list[dict]:
    """Ids and paths that differ per run replaced by names in order of appearance."""
    names: dict[str, str] = {}

    def name(value: str, kind: str) -> str:
        if value not in names:
            names[value] = f"<{kind}{sum(1 for v in names.values() if v.startswith('<' + kind)) + 1}>"
        return names[value]

    out = []
    for call in calls:
        body = json.loads(json.dumps(call["body"]))
        if isinstance(body, dict):
            for key, kind in (("NetworkID", "net"), ("EndpointID", "ep"), ("SandboxKey", "sandbox")):
                if key in body:
                    body[key] = name(body[key], kind)
        out.append({"method": call["method"], "body": body})
    return out


def docker(sock: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(sock.parent / "cfg")}
    p = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {p.stderr}")
    return p


def commands(sock: Path) -> bool:
    """The e2e test's lifecycle (test_plugin_network_lifecycle_with_the_docker_cli); whether
    the ping between the two containers went through."""
    docker(sock, "network", "create", "-d", "shr-plug", "--ipam-driver", "shr-plug", "--ipam-opt", "k=v",
           "-o", "o=1", "pnet")
    docker(sock, "run", "-d", "--name", "ca", "--network", "pnet", "busybox", "sleep", "600")
    docker(sock, "run", "-d", "--name", "cb", "--network", "pnet", "busybox", "sleep", "600")
    # with br_netfilter loaded, frames between two ports of the plugin's bridge cross
    # iptables' FORWARD chain, whose policy dockerd sets to DROP: the ping may not pass
    pinged = docker(sock, "exec", "ca", "ping", "-c1", "-W2", "10.77.0.3", check=False).returncode == 0
    docker(sock, "network", "disconnect", "pnet", "ca")
    docker(sock, "rm", "-f", "ca", "cb")
    docker(sock, "network", "rm", "pnet")
    return pinged


def main() -> None:
    netns = f"shr-dk{secrets.token_hex(4)}"
    root = Path(tempfile.mkdtemp(prefix="shr-dk-"))
    sock = root / "docker.sock"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    dockerd = plug = None
    try:
        with open(root / "dockerd.log", "wb") as log:
            dockerd = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{netns}", "unshare", "--mount", "--uts", "--propagation", "private",
                 "sh", "-c", LAUNCH, netns, "dockerd", "--data-root", str(root / "data"), "--exec-root",
                 str(root / "exec"), "--pidfile", str(root / "pid"), "-H", f"unix://{sock}", "--log-level", "warn"],
                stdout=log, stderr=log, start_new_session=True)
        for _ in range(600):
            if sock.exists() and docker(sock, "version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError((root / "dockerd.log").read_text()[-2000:])
        plug = PluginProc(root, "shr-plug")  # its log and calls(); started here, inside dockerd's namespaces
        plug.argv = ["nsenter", f"--target={dockerd.pid}", "--mount", "--net", "sh", "-c",
                     'mkdir -p /run/docker/plugins && exec "$@"', "sh", sys.executable,
                     str(REPO / "tests" / "plugin_server.py"), "--log", str(plug.log), "--kernel",
                     "--socket", "/run/docker/plugins/shr-plug.sock"]
        with open(root / "plug.err", "wb") as err:
            plug.proc = subprocess.Popen(plug.argv, stdout=subprocess.DEVNULL, stderr=err)
        for _ in range(100):
            if subprocess.run(["nsenter", f"--target={dockerd.pid}", "--mount", "test", "-S",
                               "/run/docker/plugins/shr-plug.sock"], check=False).returncode == 0:
                break
            time.sleep(0.05)
        tar = root / "busybox.tar"
        subprocess.run([str(REPO / "scripts" / "build-busybox-rootfs"), str(tar)], check=True, capture_output=True)
        docker(sock, "import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest")
        version = docker(sock, "version", "--format", "{{.Server.Version}}").stdout.strip()
        pinged = commands(sock)
        GOLDEN.mkdir(parents=True, exist_ok=True)
        out = GOLDEN / "dockerd-lifecycle.json"
        out.write_text(json.dumps({"dockerd": version, "ping_between_containers": pinged,
                                   "calls": normalize(plug.calls())}, indent=1) + "\n")
        print(f"{len(plug.calls())} calls from dockerd {version} -> {out}")
    finally:
        if sock.exists():
            docker(sock, "rm", "-f", "ca", "cb", check=False)
        if plug is not None and plug.proc is not None:
            plug.proc.terminate()
            plug.proc.wait(timeout=10)
        if dockerd is not None:
            dockerd.send_signal(signal.SIGTERM)
            try:
                dockerd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dockerd.kill()
                dockerd.wait()
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(str(root) + "/")]
        for point in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
