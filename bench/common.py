"""Shared bench helpers: throwaway namespaces, one-shot tools, memory, progress, the machine.

Everything the bench creates is named `shb-...` and deleted by that exact name; processes
are stopped by the exact pid the bench started.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


class Netns:
    """A named network namespace (`shb-TAG-hex`), loopback up so 127.0.0.1 works inside it."""

    def __init__(self, tag: str, lo_up: bool = True) -> None:
        self.name = f"shb-{tag}-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        if lo_up:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False, stderr=subprocess.DEVNULL)


def in_ns(ns_path: str, cmd: list[str]) -> list[str]:
    """nsenter execs the command in place (same pid), so Popen's pid is the tool's."""
    return ["nsenter", f"--net={ns_path}", *cmd]


def tool(cmd: list[str], stdin: bytes, env: dict | None = None) -> str:
    """Run a one-shot tool (netavark, a CNI plugin) with JSON on stdin; its stdout, or an error."""
    r = subprocess.run(cmd, input=stdin, capture_output=True, env=env)
    if r.returncode != 0:
        msg = (r.stderr + r.stdout).decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(cmd[-2:])}: exit {r.returncode}: {msg[-400:]}")
    return r.stdout.decode(errors="replace")


def rss_kib(pid: int) -> int:
    return _status_field(pid, "VmRSS:")


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (a Go binary's text) split among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def ppid(pid: int) -> int:
    return _status_field(pid, "PPid:")


def _status_field(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of one pid (to find the containerd a dockerd started)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and ppid(int(entry)) == pid:
            out.append(int(entry))
    return out


def stop_pid(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the exact process we started, SIGKILL it if it does not go."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Progress:
    """One line on stderr at most every few seconds: long runs show they are alive."""

    def __init__(self, label: str, total: int, every_s: float = 3.0) -> None:
        self.label, self.total, self.every = label, total, every_s
        self.t0 = self.last = time.monotonic()

    def tick(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if done == self.total or now - self.last >= self.every:
            self.last = now
            print(f"  [{self.label}] {done}/{self.total} {note} ({now - self.t0:.0f}s)", file=sys.stderr, flush=True)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def busybox_tar(workdir: Path) -> Path:
    """The busybox rootfs every peer imports: build/busybox.tar if setup made one, else build it."""
    prebuilt = REPO / "build" / "busybox.tar"
    if prebuilt.is_file() and prebuilt.stat().st_size > 0:
        return prebuilt
    out = workdir / "busybox.tar"
    subprocess.run([str(REPO / "scripts" / "build-busybox-rootfs"), str(out)], check=True, capture_output=True)
    return out


def _first_line(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def pkg_version(package: str) -> str:
    return _first_line(["dpkg-query", "-W", "-f", "${Version}", package])


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine() -> dict[str, str]:
    """What the numbers were measured on: read them against this, never across machines."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pkgs = ["docker.io", "containerd", "runc", "crun", "conmon", "netavark", "containernetworking-plugins", "iperf3"]
    versions = {p: pkg_version(p) for p in pkgs}
    try:
        distro = Path("/etc/debian_version").read_text().strip()
    except OSError:
        distro = "?"
    return {
        "host": platform.node(), "cpu": f"{_cpu_model()}, {os.cpu_count()} cores", "memory": f"{mem:.1f} GiB",
        "kernel": platform.release(), "debian": distro, "python": platform.python_version(),
        "shoal": _first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        **{f"pkg {k}": v for k, v in versions.items()},
    }


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (binary if os.access(binary, os.X_OK) else None)
    if not path:
        raise RuntimeError(f"{binary} not found: apt-get install {package}")
    return path
