"""Shared bench helpers: throwaway host namespaces, a shoald per run, statistics.

Everything runs inside namespaces the bench creates (prefix `shb-`) and deletes by name.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def stats(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return {"median": statistics.median(s), "p90": p90, "n": len(s)}


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores {mem:.0f} GiB, kernel {platform.release()}"


class Netns:
    def __init__(self, tag: str) -> None:
        self.name = f"shb-{tag}-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


class Daemon:
    """shoald in its own namespace and data root."""

    def __init__(self) -> None:
        self.ns = Netns("host")
        self.root = Path(tempfile.mkdtemp(prefix="shb-"))
        self.sock = str(self.root / "s.sock")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={self.ns.path}", str(BIN / "shoald"), "--data-root", str(self.root / "d"),
             "-H", f"unix://{self.sock}", "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "log", "wb"),
        )
        self.client = httpx.Client(transport=httpx.HTTPTransport(uds=self.sock), base_url="http://shoal")
        for _ in range(200):
            if os.path.exists(self.sock):
                try:
                    self.client.get("/_ping")
                    return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise RuntimeError((self.root / "log").read_text())

    def rss_kib(self) -> int:
        for pid in self._pids():
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        return 0

    def _pids(self) -> list[int]:
        # nsenter execs shoald in place, so the Popen pid is shoald's
        return [self.proc.pid]

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.ns.close()
        shutil.rmtree(self.root, ignore_errors=True)
