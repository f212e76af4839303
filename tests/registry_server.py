"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a loopback
port, in this namespace or inside a named one (`nsenter --net=/run/netns/NAME`), storing
under its own /tmp directory that stop() removes. Processes are stopped by their pid only.

CI installs the binary (scripts/setup: docker-registry, skopeo); tests skip without it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BINARY = "docker-registry"


def have_registry() -> bool:
    return shutil.which(BINARY) is not None and shutil.which("skopeo") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", *argv] if netns else argv


@dataclass
class TokenAuth:
    """The registry's auth.token block: the token server's realm and its signing cert."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


def _config(addr: str, root: Path, auth: TokenAuth | None) -> str:
    lines = ["version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {root}", "  delete:", "    enabled: true",
             "  cache:", "    blobdescriptor: inmemory", "http:", f"  addr: {addr}", "  secret: shoal-test"]
    if auth:
        lines += ["auth:", "  token:", f"    realm: {auth.realm}", f"    service: {auth.service}",
                  f"    issuer: {auth.issuer}", f"    rootcertbundle: {auth.rootcertbundle}"]
    return "\n".join(lines) + "\n"


@dataclass
class RegistryServer:
    host: str = "127.0.0.1"
    port: int = 0
    netns: str | None = None
    auth: TokenAuth | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shr-registry-")))
    proc: subprocess.Popen | None = None

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.domain}"

    def start(self, timeout: float = 20.0) -> RegistryServer:
        if not self.port:
            self.port = free_port() if not self.netns else 5000
        cfg = self.tmp / "config.yml"
        cfg.write_text(_config(self.domain, self.tmp / "data", self.auth))
        log = (self.tmp / "registry.log").open("wb")
        self.proc = subprocess.Popen(in_netns(self.netns, [BINARY, "serve", str(cfg)]), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.tmp / 'registry.log').read_text()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not answer /v2/")

    def _answers(self) -> bool:
        if self.netns:
            probe = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{self.url}/v2/"]
            out = subprocess.run(in_netns(self.netns, probe), capture_output=True, text=True, check=False)
            return out.stdout.strip() in ("200", "401")
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> RegistryServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
