"""Docker (Debian's docker.io): a dockerd of our own, inside a throwaway host namespace.

dockerd runs with its own data root, exec root, pidfile and socket under our temp dir, and
starts its own containerd there (state under the exec root). It also runs in a private
mount namespace with a tmpfs on /run and on /etc/docker, so nothing it writes (shim
sockets under /run/containerd, /etc/docker/key.json) lands on the machine, and its mounts
(overlay2, netns files) vanish with it, and in a private UTS namespace whose hostname is
the host namespace's name (the classic overlay names its serf member after the hostname:
two dockerds with one hostname throw each other out of the gossip). Images come only
from `docker import` of the busybox tarball: the bench never pulls.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from common import Netns, children, in_ns, need, rss_kib
from peers.engine import EnginePeer

CRUN = "/usr/bin/crun"

# Runs as `sh -c SCRIPT HOSTNAME dockerd ARGS...`: own hostname, private /run and /etc/docker,
# then exec dockerd (same pid: nsenter, unshare and sh all exec in place).
_LAUNCH = ('hostname "$0" && mount -t tmpfs shb-run /run && '
           '{ [ ! -d /etc/docker ] || mount -t tmpfs shb-etc /etc/docker; } && exec "$@"')
# The same, with the directory `$1` bound on /run/docker/plugins (where dockerd finds plugins).
_LAUNCH_PLUGINS = ('hostname "$0" && mount -t tmpfs shb-run /run && mkdir -p /run/docker/plugins && '
                   'mount --bind "$1" /run/docker/plugins && '
                   '{ [ ! -d /etc/docker ] || mount -t tmpfs shb-etc /etc/docker; } && shift && exec "$@"')


class DockerPeer(EnginePeer):
    stop_timeout_s = 30.0  # dockerd stops its containerd and shims first
    name = "docker"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.containerd_pid = 0

    def start(self, image_tar: str) -> None:
        self.ns = Netns("docker")
        self.host_ns = self.ns.path
        self.spawn(self.ns)
        self.wait_up()
        self.import_image(image_tar)

    def spawn(self, ns: Netns, extra: list[str] | None = None, log_level: str = "warn", plugins: str = "") -> None:
        """Start dockerd in `ns` (private mounts, /run, /etc/docker and hostname); no wait.
        `plugins`: a directory of plugin sockets dockerd is to find."""
        dockerd = need("dockerd", "docker.io")
        need("containerd", "containerd")
        args = [dockerd, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "pid"), "-H", f"unix://{self.root / 'docker.sock'}",
                "--log-level", log_level, *_crun(), *(extra or [])]
        launch = [_LAUNCH_PLUGINS, ns.name, plugins] if plugins else [_LAUNCH, ns.name]
        self._spawn(in_ns(ns.path, ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", *launch,
                                    *args]), "docker.sock")

    def wait_up(self, timeout_s: float = 60) -> None:
        self._wait_ping(self.proc, str(self.root / "log"), timeout_s)
        self.containerd_pid = self._find_containerd()

    def _find_containerd(self) -> int:
        for _ in range(100):
            for pid in children(self.proc.pid):
                if _comm(pid) == "containerd":
                    return pid
            time.sleep(0.05)
        return 0

    def describe(self) -> str:
        v = self._version()
        return f"dockerd {v.get('Version', '?')} (API {v.get('ApiVersion', '?')}), own containerd, userland-proxy on"

    def daemon_rss_kib(self) -> int:
        """dockerd plus the containerd it started: both are what a Docker host keeps running."""
        return rss_kib(self.proc.pid) + (rss_kib(self.containerd_pid) if self.containerd_pid else 0)

    def _remove_leftovers(self) -> None:
        """containerd and shims outlive dockerd only on failure: stop them by pid, found by our unique root."""
        mine = str(self.root)
        pids = [self.containerd_pid] if self.containerd_pid else []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and mine in _cmdline(int(entry)):
                pids.append(int(entry))
        for pid in dict.fromkeys(pids):
            if mine in _cmdline(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _crun() -> list[str]:
    """dockerd 20.10 registers only runc: crun, when installed, as a user would add it."""
    return ["--add-runtime", f"crun={CRUN}"] if os.access(CRUN, os.X_OK) else []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
