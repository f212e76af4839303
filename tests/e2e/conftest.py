"""End-to-end: shoald runs inside a throwaway "host" namespace made per test.

It is started as `nsenter --net=/run/netns/NAME shoald ...` (not `ip netns exec`, which
remounts /sys), with its own data root and socket in a temp dir, so nothing reaches the
machine's root namespace and several daemons never share anything.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import delete_netns, is_root, new_netns

BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


class Shoald:
    """One daemon in its own host namespace; restartable; cleaned up by exact names."""

    def __init__(self, netns: str, root: Path, extra: list[str] | None = None) -> None:
        self.netns = netns
        self.root = root
        self.sock = str(root / "shoal.sock")
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.log = root / "shoald.log"

    def resolv_conf(self) -> Path:
        path = self.root / "host-resolv.conf"
        if not path.exists():
            path.write_text("nameserver 127.0.0.53\n")
        return path

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def argv(self) -> list[str]:
        return [
            "nsenter", f"--net=/run/netns/{self.netns}", str(BIN / "shoald"),
            "--data-root", str(self.root / "data"), "-H", self.host, "--log-level", "debug",
            # never the machine's resolvers: a loopback address in the throwaway host namespace,
            # where a test may run a stub upstream
            "--dns", "127.0.0.53", "--resolv-conf", str(self.resolv_conf()),
            # Docker plugins only from this daemon's own directories, never the machine's
            "--plugin-sockets", str(self.plugin_sockets), "--plugin-specs", str(self.root / "plugin-specs"),
            "--plugin-retry", "1", *self.extra,
        ]

    @property
    def plugin_sockets(self) -> Path:
        return self.root / "plugins"

    def start(self, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"shoald exited {self.proc.returncode}:\n{self.log.read_text()}")
            if os.path.exists(self.sock):
                try:
                    self.api("GET", "/_ping")
                    return
                except Exception:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"shoald not ready:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def remove_containers(self) -> None:
        """Containers outlive shoald by design: remove them while it is still up."""
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            status, listing = self.api("GET", "/containers/json?all=1")
            for c in listing if status == 200 else []:
                self.api("DELETE", f"/containers/{c['Id']}?force=1")
        except Exception:  # noqa: BLE001 - teardown goes on
            pass

    def kill_leftover_containers(self) -> None:
        """If shoald died first: delete what runc (or crun, or a runc wrapper) still runs under
        this daemon's own roots: runtime/runc and runtime/runtimes/NAME."""
        base = self.root / "data" / "runtime"
        roots = [base / "runc", *sorted((base / "runtimes").glob("*"))]
        for state in (r for r in roots if r.is_dir()):
            binary = "crun" if state.name == "crun" else "runc"
            ids = subprocess.run([binary, "--root", str(state), "list", "-q"], capture_output=True, text=True).stdout
            for cid in ids.split():
                subprocess.run([binary, "--root", str(state), "delete", "-f", cid], capture_output=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- clients -----------------------------------------------------------------------
    def api(self, method: str, path: str, body=None):
        import httpx

        with httpx.Client(transport=httpx.HTTPTransport(uds=self.sock), base_url="http://shoal") as c:
            r = c.request(method, path, json=body, timeout=30)
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
        return r.status_code, data

    def docker(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.root / "docker-config")}
        p = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, input=input, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def shoal(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "SHOAL_HOST": self.host}
        p = subprocess.run([str(BIN / "shoal"), *args], env=env, capture_output=True, text=True,
                           input=input, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def ip(self, *args: str):
        out = subprocess.run(["ip", "-n", self.netns, "-j", *args], capture_output=True, text=True).stdout
        return json.loads(out or "[]")

    def link(self, name: str) -> dict | None:
        found = self.ip("-d", "link", "show", name)
        return found[0] if found else None


def unmount_below(root: Path) -> None:
    """Overlay and netns mounts a crashed test left under its own temp dir, deepest first."""
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture
def make_shoald():
    if not is_root():
        pytest.skip("needs root (network namespaces)")
    made: list[tuple[Shoald, str, Path]] = []

    def factory(extra: list[str] | None = None, start: bool = True) -> Shoald:
        netns = new_netns("e2e")
        root = Path(tempfile.mkdtemp(prefix="sht-e2e-"))
        d = Shoald(netns, root, extra)
        made.append((d, netns, root))
        if start:
            d.start()
        return d

    yield factory
    for d, netns, root in made:
        d.remove_containers()
        d.stop()
        d.kill_leftover_containers()
        delete_netns(netns)
        unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def shoald(make_shoald):
    return make_shoald()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    """The busybox rootfs tarball, built once per session by the repo's script."""
    if not is_root():
        pytest.skip("needs root")
    out = tmp_path_factory.mktemp("img") / "busybox.tar"
    script = Path(__file__).resolve().parents[2] / "scripts" / "build-busybox-rootfs"
    subprocess.run([str(script), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def box(make_shoald, busybox_tar):
    """A shoald with busybox:latest imported (CMD sh), like the README's setup leaves it."""
    d = make_shoald()
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return d


needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
