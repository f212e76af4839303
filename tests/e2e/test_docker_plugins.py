"""shoal's drivers served to a real dockerd 20.10 (Debian's docker.io) as remote plugins.

One throwaway host namespace holds both daemons, as one machine would: shoald
(`--serve-plugins DIR`) and a dockerd of our own, with its own data and exec roots, in a
private mount namespace whose /run is a tmpfs with DIR bind-mounted on
/run/docker/plugins, where dockerd looks plugins up. dockerd starts first, so it finds
forwarding off, turns it on and sets the FORWARD policy to DROP (its worst case for us);
shoald runs with `--br-netfilter leave`, as in the machine's namespace, so the bridged
frames go through dockerd's iptables chains as well. An "upstream" namespace stands for
the outside world (198.51.100.0/24, a documentation range that never leaves the veth).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import is_root
from tests.e2e.conftest import Shoald, unmount_below

pytestmark = pytest.mark.skipif(shutil.which("dockerd") is None or shutil.which("containerd") is None,
                                reason="dockerd (Debian's docker.io) not installed")

# sh -c LAUNCH HOSTNAME PLUGIN_DIR dockerd ARGS...: own hostname, private /run (plugins bound
# in) and /etc/docker, then exec dockerd in place
LAUNCH = ('hostname "$0" && mount -t tmpfs sha-run /run && mkdir -p /run/docker/plugins && '
          'mount --bind "$1" /run/docker/plugins && '
          '{ [ ! -d /etc/docker ] || mount -t tmpfs sha-etc /etc/docker; } && shift && exec "$@"')
UPSTREAM = "198.51.100.2"


class Dockerd:
    def __init__(self, netns: str, root: Path, plugins: Path, extra: list[str] | None = None) -> None:
        self.netns, self.root, self.plugins = netns, root, plugins
        self.extra = extra or []
        self.sock = root / "docker.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "pid"), "-H", f"unix://{self.sock}", "--log-level", "info",
                "--bip", "10.199.0.1/24", *self.extra]  # not 172.17.0.0/16: shoald's default bridge has it
        with open(self.root / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--uts", "--propagation",
                 "private", "sh", "-c", LAUNCH, self.netns, str(self.plugins), *args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited:\n{(self.root / 'dockerd.log').read_text()[-3000:]}")
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer in 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill_leftovers(self) -> None:
        """containerd and shims outlive dockerd only on failure: by pid, found by our root."""
        mine = str(self.root)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if mine in cmd and "pytest" not in cmd:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(self.root / "cfg")}
        p = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=90)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p


def _ns(netns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True)


@pytest.fixture
def docker_host(busybox_tar):
    if not is_root():
        pytest.skip("needs root")
    tag = secrets.token_hex(3)
    host, up = f"sha-dk{tag}", f"sha-up{tag}"
    root = Path(tempfile.mkdtemp(prefix="sha-dk-"))
    plugins = root / "plugins"
    plugins.mkdir()
    for ns in (host, up):
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "-n", host, "link", "add", f"sha-u{tag}", "type", "veth", "peer", "name", "up0",
                    "netns", up], check=True)
    subprocess.run(["ip", "-n", host, "addr", "add", "198.51.100.1/24", "dev", f"sha-u{tag}"], check=True)
    subprocess.run(["ip", "-n", host, "link", "set", f"sha-u{tag}", "up"], check=True)
    subprocess.run(["ip", "-n", up, "addr", "add", f"{UPSTREAM}/24", "dev", "up0"], check=True)
    subprocess.run(["ip", "-n", up, "link", "set", "up0", "up"], check=True)
    dockerd = Dockerd(host, root / "docker", plugins)
    (root / "docker").mkdir()
    # no periodic self-heal: the test deletes shoal's DOCKER-USER rules on purpose and
    # looks at the traffic before anything puts them back
    shoald = Shoald(host, root / "shoal", ["--serve-plugins", str(plugins), "--br-netfilter", "leave",
                                           "--self-heal-interval", "0"])
    (root / "shoal").mkdir()
    try:
        dockerd.start()  # first: it finds forwarding off and sets FORWARD's policy to DROP
        dockerd.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        shoald.start()
        yield shoald, dockerd, host
    finally:
        try:
            for cid in dockerd.docker("ps", "-aq", check=False).stdout.split():
                dockerd.docker("rm", "-f", cid, check=False)
        finally:
            dockerd.stop()
            shoald.stop()
            dockerd.kill_leftovers()
            for ns in (host, up):
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
            unmount_below(root)
            if os.environ.get("SHA_KEEP"):
                shutil.copy(root / "shoal" / "shoald.log", "/tmp/sha-shoald.log")
                shutil.copy(root / "docker" / "dockerd.log", "/tmp/sha-dockerd.log")
            shutil.rmtree(root, ignore_errors=True)


def _ping(dockerd: Dockerd, name: str, ip: str) -> bool:
    return dockerd.docker("exec", name, "ping", "-c", "1", "-W", "2", ip, check=False).returncode == 0


def _ip(dockerd: Dockerd, name: str, net: str) -> str:
    out = dockerd.docker("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", name)
    return out.stdout.strip()


def _docker_user(host: str) -> list[str]:
    return [r for r in _ns(host, "iptables", "-S", "DOCKER-USER").stdout.splitlines() if "shoal:" in r]


def _clean(shoald: Shoald) -> None:
    check = shoald.shoal("system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_docker_runs_containers_on_a_shoal_bridge_network(docker_host):
    shoald, dockerd, host = docker_host
    assert "-P FORWARD DROP" in _ns(host, "iptables", "-S", "FORWARD").stdout
    nid = dockerd.docker("network", "create", "-d", "shoal-bridge", "--subnet", "10.123.0.0/24", "n1").stdout.strip()
    info = json.loads(dockerd.docker("network", "inspect", "n1").stdout)[0]
    assert info["Driver"] == "shoal-bridge" and info["IPAM"]["Config"][0]["Subnet"] == "10.123.0.0/24"
    status, net = shoald.api("GET", f"/networks/{nid}")
    assert status == 200 and net["Driver"] == "bridge" and net["IPAM"]["Config"][0]["Gateway"] == "10.123.0.1"
    assert len(_docker_user(host)) == 2
    for name in ("c1", "c2"):
        dockerd.docker("run", "-d", "--name", name, "--network", "n1", "busybox", "sleep", "3600")
    b = _ip(dockerd, "c2", "n1")
    assert b.startswith("10.123.0.") and _ping(dockerd, "c1", b) and _ping(dockerd, "c1", UPSTREAM)
    assert dockerd.docker("exec", "c1", "ip", "-o", "addr", "show", "eth0").stdout.count("inet 10.123.0.") == 1
    _clean(shoald)

    # the finding: without shoal's DOCKER-USER rules dockerd's FORWARD policy drops both the
    # bridged frames (br_netfilter) and the routed ones
    for rule in _docker_user(host):
        _ns(host, "iptables", *shlex.split(rule.replace("-A", "-D", 1)))
    assert _ns(host, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").stdout.strip() == "1"  # dockerd's
    assert not _ping(dockerd, "c1", b) and not _ping(dockerd, "c1", UPSTREAM)
    found = shoald.api("GET", "/shoal/check")[1]["Findings"]
    assert [f["Area"] for f in found] == ["firewall"] and "DOCKER-USER" in found[0]["Problem"], found
    _ns(host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")  # bridged frames skip iptables then,
    assert _ping(dockerd, "c1", b) and not _ping(dockerd, "c1", UPSTREAM)  # routed ones never do
    _ns(host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    shoald.restart()  # restore gives them back; the containers' veths stay
    assert len(_docker_user(host)) == 2 and _ping(dockerd, "c1", b) and _ping(dockerd, "c1", UPSTREAM)
    _clean(shoald)
    for rule in _docker_user(host):  # and so does a repair, without a restart
        _ns(host, "iptables", *shlex.split(rule.replace("-A", "-D", 1)))
    shoald.shoal("system", "check", "--repair")
    assert len(_docker_user(host)) == 2 and _ping(dockerd, "c1", b) and _ping(dockerd, "c1", UPSTREAM)
    _clean(shoald)

    dockerd.stop()  # its containers die with it (no live-restore): Leave and DeleteEndpoint, or not
    dockerd.start()
    dockerd.docker("start", "c1", "c2")
    b = _ip(dockerd, "c2", "n1")
    assert _ping(dockerd, "c1", b) and _ping(dockerd, "c1", UPSTREAM)
    _clean(shoald)

    dockerd.docker("rm", "-f", "c1", "c2")
    dockerd.docker("network", "rm", "n1")
    status, _ = shoald.api("GET", f"/networks/{nid}")
    assert status == 404
    assert not _docker_user(host)
    links = json.loads(_ns(host, "ip", "-j", "-d", "link").stdout or "[]")
    assert not [ln["ifname"] for ln in links if ln["ifname"].startswith(("veth", "shp", f"br-{nid[:12]}"))]
    _clean(shoald)


def test_docker_with_shoal_ipam(docker_host):
    shoald, dockerd, host = docker_host
    dockerd.docker("network", "create", "-d", "shoal-bridge", "--ipam-driver", "shoal-ipam", "n2")
    info = json.loads(dockerd.docker("network", "inspect", "n2").stdout)[0]
    subnet = info["IPAM"]["Config"][0]["Subnet"]
    assert info["IPAM"]["Driver"] == "shoal-ipam" and subnet != "172.17.0.0/16"  # shoal0 has that one
    dockerd.docker("run", "-d", "--name", "c3", "--network", "n2", "busybox", "sleep", "3600")
    dockerd.docker("run", "-d", "--name", "c4", "--network", "n2", "busybox", "sleep", "3600")
    assert _ping(dockerd, "c3", _ip(dockerd, "c4", "n2")) and _ping(dockerd, "c3", UPSTREAM)
    _clean(shoald)
    dockerd.docker("rm", "-f", "c3", "c4")
    dockerd.docker("network", "rm", "n2")
    _clean(shoald)
