"""podman 4.3 (Debian) with `network_backend = "cni"` puts its containers on a shoal
network through `shoal-cni`: the runtime's own calls (ADD at start, DEL at removal), not
ours. podman runs inside shoald's throwaway host namespace with storage, run root,
containers.conf and CNI directories of its own under the test's temp dir."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import needs_docker, unmount_below

pytestmark = [needs_docker, pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")]

PLUGIN = Path(__file__).resolve().parents[2] / "src" / "shoal" / "cni" / "main.py"
# this machine's root may not raise rlimits (no CAP_SYS_RESOURCE): podman's defaults would
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture
def podman(box):
    root = Path(tempfile.mkdtemp(prefix="sht-pd-", dir="/tmp"))  # podman wants a run root under 50 characters
    (root / "bin").mkdir(parents=True)
    (root / "cni").mkdir()
    (root / "bin" / "shoal-cni").symlink_to(PLUGIN)
    conf = root / "containers.conf"
    conf.write_text(f'[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["{root / "bin"}", "/usr/lib/cni"]\n'
                    f'network_config_dir = "{root / "cni"}"\n[engine]\ncgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n')
    base = ["nsenter", f"--net=/run/netns/{box.netns}", "env", f"CONTAINERS_CONF={conf}", "podman",
            "--root", str(root / "storage"), "--runroot", str(root / "run"), "--tmpdir", str(root / "tmp")]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)
        assert not check or p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    run.root = root  # type: ignore[attr-defined]
    yield run
    run("rm", "-a", "-f", check=False)
    run("system", "reset", "-f", check=False)
    unmount_below(root)
    shutil.rmtree(root, ignore_errors=True)


def test_podman_containers_join_a_shoal_network(box, podman, busybox_tar):
    box.docker("network", "create", "--subnet", "10.98.0.0/24", "pods")
    (podman.root / "cni" / "pods.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "pods",
        "plugins": [{"type": "shoal-cni", "network": "pods", "socket": box.sock}]}))
    assert "shoal-cni" in podman("network", "ls").stdout
    podman("import", str(busybox_tar), "localhost/busybox")
    box.docker("run", "-d", "--name", "native", "--network", "pods", "busybox", "sleep", "600")
    native = json.loads(box.docker("inspect", "native").stdout)[0]["NetworkSettings"]["Networks"]["pods"]["IPAddress"]

    out = podman("run", "--rm", *LIMITS, "--network", "pods", "localhost/busybox", "sh", "-c",
                 f"ip -4 -o addr show eth0; ip route; ping -c1 -W2 {native}").stdout
    assert "10.98.0." in out and "default via 10.98.0.1" in out and "1 packets received" in out
    pod = podman("run", "-d", "--name", "shtpod", *LIMITS, "--network", "pods", "localhost/busybox",
                 "sleep", "600").stdout.strip()
    net = json.loads(box.docker("network", "inspect", "pods").stdout)[0]
    names = {c["Name"]: c["IPv4Address"].split("/")[0] for c in net["Containers"].values()}
    assert set(names) == {"native", pod}
    assert box.docker("exec", "native", "ping", "-c1", "-W2", names[pod]).returncode == 0
    assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    podman("rm", "-f", "-t", "0", "shtpod")  # podman's DEL
    net = json.loads(box.docker("network", "inspect", "pods").stdout)[0]
    assert [c["Name"] for c in net["Containers"].values()] == ["native"]
    assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    box.docker("rm", "-f", "native")
    box.docker("network", "rm", "pods")
