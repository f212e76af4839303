"""Throwaway etcd clusters on 127.0.0.1 for the `cluster` test tier.

Each member is its own subprocess (stopped through its own Popen, never by name), with
free loopback ports and its data under a `sht-` temporary directory that `close()`
removes. Elections are tuned short (50 ms heartbeat, 500 ms election) so a killed leader
is replaced in about a second. With a `Pki` (tests.certs) the members serve clients over
https only and require a client certificate from that CA (`--client-cert-auth`); peers
stay on plain http, on loopback.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.certs import Pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Member:
    def __init__(self, name: str, root: Path, pki: Pki | None = None):
        self.name = name
        self.pki = pki
        self.client_port, self.peer_port = free_port(), free_port()
        self.data_dir = root / name
        self.log = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.pki else 'http'}://127.0.0.1:{self.client_port}"

    def verify(self) -> ssl.SSLContext | bool:
        """What our own health checks use: the test CA and its client certificate."""
        if self.pki is None:
            return True
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL: the member dies mid-request, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint}/health", timeout=1, verify=self.verify()).json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False


class EtcdCluster:
    """n members on 127.0.0.1; `start()` waits until every member is healthy."""

    def __init__(self, size: int, token: str = "sht", pki: Pki | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="sht-etcd-"))
        self.members = [Member(f"m{i + 1}", self.root, pki) for i in range(size)]
        tls = [] if pki is None else ["--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key),
                                      "--trusted-ca-file", str(pki.ca), "--client-cert-auth"]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.argv = [
                shutil.which("etcd") or "etcd", "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.endpoint, "--advertise-client-urls", m.endpoint,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial, "--initial-cluster-token", f"{token}-{self.root.name}",
                "--initial-cluster-state", "new", "--heartbeat-interval", "50", "--election-timeout", "500", *tls,
            ]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def start(self, timeout: float = 20) -> None:
        for m in self.members:
            if not m.running:
                m.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m.healthy() for m in self.members):
                return
            for m in self.members:
                if not m.running:
                    raise RuntimeError(f"etcd {m.name} exited: {m.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"etcd cluster not healthy after {timeout} s (logs in {self.root})")

    def leader(self) -> Member:
        for m in self.members:
            if not m.running:
                continue
            status = httpx.post(f"{m.endpoint}/v3/maintenance/status", json={}, timeout=1, verify=m.verify()).json()
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return m
        raise RuntimeError("no leader")

    def close(self) -> None:
        for m in self.members:
            m.kill()
        shutil.rmtree(self.root, ignore_errors=True)
