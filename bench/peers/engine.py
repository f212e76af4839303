"""A daemon that speaks the Docker Engine API (shoald and dockerd alike).

Both are driven by the same HTTP calls over their unix sockets, so the only difference in
a row is the daemon behind the socket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from common import ppid, stop_pid
from peers import Ctr, Peer, Unsupported

IMAGE = "busybox:latest"
CMD = ["sleep", "1000000"]


class EnginePeer(Peer):
    sock = ""
    stop_timeout_s = 20.0

    def __init__(self, workdir: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"shb-{self.name}-", dir=workdir))
        self.ns = None
        self.proc: subprocess.Popen | None = None
        self.client: httpx.Client | None = None

    def _launch(self, cmd: list[str], sock: str, timeout_s: float) -> None:
        """Start the daemon in its own session (Ctrl-C reaches only the suite), then wait for it."""
        self._spawn(cmd, sock)
        self._wait_ping(self.proc, str(self.root / "log"), timeout_s)

    def _spawn(self, cmd: list[str], sock: str) -> None:
        self.sock = str(self.root / sock)
        with open(self.root / "log", "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf,
                                         start_new_session=True)
        self.client = self._client()

    def _version(self) -> dict:
        return self.client.get("/version").json() if self.client else {}

    def _client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.sock), base_url="http://engine", timeout=120)

    def _wait_ping(self, proc, log: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{_tail(log)}")
            if os.path.exists(self.sock):
                try:
                    if self.client.get("/_ping").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer /_ping in {timeout_s:.0f}s:\n{_tail(log)}")

    def _ok(self, r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            raise RuntimeError(f"{self.name}: {r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
        return r

    def import_image(self, tar: str) -> None:
        with open(tar, "rb") as f:
            self._ok(self.client.post("/images/create", params={"fromSrc": "-", "repo": "busybox", "tag": "latest"},
                                      content=f.read(), headers={"Content-Type": "application/x-tar"}))

    def network_create(self, name: str) -> str:
        return self._ok(self.client.post("/networks/create", json={"Name": name, "CheckDuplicate": True})).json()["Id"]

    def network_rm(self, ref: str) -> None:
        self._ok(self.client.delete(f"/networks/{ref}"))

    def ensure_network(self, name: str) -> str:
        if self.client.get(f"/networks/{name}").status_code != 200:
            self.network_create(name)
        return name

    def check_runtime(self, name: str) -> None:
        runtimes = self._ok(self.client.get("/info")).json().get("Runtimes") or {}
        if name not in runtimes:
            raise Unsupported(f"{self.name}: no {name} runtime registered (known: {', '.join(sorted(runtimes))})")

    def run(self, net: str, publish: dict[int, int] | None = None, runtime: str = "") -> Ctr:
        body: dict = {"Image": IMAGE, "Cmd": CMD, "HostConfig": {"NetworkMode": net}}
        if runtime:
            body["HostConfig"]["Runtime"] = runtime
        if publish:
            body["ExposedPorts"] = {f"{c}/tcp": {} for c in publish}
            body["HostConfig"]["PortBindings"] = {f"{c}/tcp": [{"HostIp": "", "HostPort": str(h)}]
                                                  for c, h in publish.items()}
        cid = self._ok(self.client.post("/containers/create", json=body)).json()["Id"]
        ctr = Ctr(id=cid, net=net, publish=dict(publish or {}))
        try:
            self._ok(self.client.post(f"/containers/{cid}/start"))
        except Exception:
            self.client.delete(f"/containers/{cid}", params={"force": "1"})
            raise
        return ctr

    def inspect(self, ctr: Ctr) -> Ctr:
        j = self._ok(self.client.get(f"/containers/{ctr.id}/json")).json()
        ctr.pid = j["State"]["Pid"]
        ctr.netns = f"/proc/{ctr.pid}/ns/net"
        nets = j["NetworkSettings"]["Networks"] or {}
        ctr.ip = (nets.get(ctr.net) or next(iter(nets.values()), {})).get("IPAddress", "")
        ctr.extra["ports"] = j["NetworkSettings"].get("Ports") or {}
        return ctr

    def rm(self, ctr: Ctr) -> None:
        self._ok(self.client.delete(f"/containers/{ctr.id}", params={"force": "1"}))

    def _net_verb(self, verb: str, ctr: Ctr, net: str) -> None:
        r = self.client.post(f"/networks/{net}/{verb}", json={"Container": ctr.id})
        if r.status_code == 404 and "page not found" in r.text:
            raise Unsupported(f"{self.name}: POST /networks/{{id}}/{verb} answers 404 page not found (not implemented)")
        self._ok(r)

    def connect(self, ctr: Ctr, net: str) -> None:
        self._net_verb("connect", ctr, net)

    def disconnect(self, ctr: Ctr, net: str) -> None:
        self._net_verb("disconnect", ctr, net)

    def published(self, ctr: Ctr, container_port: int) -> tuple[str, int]:
        """Dial 127.0.0.1 in the host namespace, as `curl localhost:PORT` on a host would."""
        bindings = (ctr.extra.get("ports") or {}).get(f"{container_port}/tcp") or []
        if not bindings:
            raise Unsupported(f"{self.name}: published ports: inspect shows no host binding (not implemented)")
        return "127.0.0.1", int(bindings[0]["HostPort"])

    def monitor_pid(self, ctr: Ctr) -> int:
        """The container's parent process: conmon for shoal, containerd-shim-runc-v2 for Docker."""
        parent = ppid(ctr.pid) if ctr.pid else 0
        if parent <= 1:
            raise Unsupported(f"{self.name}: no monitor process found above pid {ctr.pid}")
        return parent

    def close(self) -> None:
        try:
            if self.client is not None and self.proc is not None and self.proc.poll() is None:
                self.remove_all_containers()
                self.client.close()
        finally:
            if self.proc is not None:
                stop_pid(self.proc, timeout=self.stop_timeout_s)
            self._remove_leftovers()
            if self.ns is not None:
                self.ns.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def _remove_leftovers(self) -> None:
        """What the daemon leaves behind only when it failed (each daemon says how to find it)."""

    def remove_all_containers(self) -> None:
        try:
            for c in self.client.get("/containers/json", params={"all": "1"}).json():
                self.client.delete(f"/containers/{c['Id']}", params={"force": "1"})
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass


def _tail(path: str, n: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""
