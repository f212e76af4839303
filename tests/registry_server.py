"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a loopback
port, in this namespace or inside a named one (`nsenter --net=/run/netns/NAME`), storing
under its own /tmp directory that stop() removes. Processes are stopped by their pid only.

CI installs the binary (scripts/setup: docker-registry, skopeo); tests skip without it.
"""

from __future__ import annotations

import shutil
import socket
import ssl
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


def _config(addr: str, root: Path, auth: TokenAuth | None, tls: tuple[Path, Path] | None) -> str:
    lines = ["version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {root}", "  delete:", "    enabled: true",
             "  cache:", "    blobdescriptor: inmemory", "http:", f"  addr: {addr}", "  secret: shoal-test"]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
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
    tls: tuple[Path, Path] | None = None  # (certificate, key): serve https
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shr-registry-")))
    proc: subprocess.Popen | None = None

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.domain}"

    def start(self, timeout: float = 20.0) -> RegistryServer:
        if not self.port:
            self.port = free_port() if not self.netns else 5000
        cfg = self.tmp / "config.yml"
        cfg.write_text(_config(self.domain, self.tmp / "data", self.auth, self.tls))
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
            probe = ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"{self.url}/v2/"]
            out = subprocess.run(in_netns(self.netns, probe), capture_output=True, text=True, check=False)
            return out.stdout.strip() in ("200", "401")
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=ssl._create_unverified_context()):
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


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway server certificate for `host` (an IP SAN), written as cert.pem/key.pem."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
