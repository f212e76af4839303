"""A cluster on one machine: hosts as network namespaces on an underlay bridge of their own,
a 3-member etcd inside the first three hosts, one shoald per host (`shoal cluster up`).

Everything it makes is named after the lab (`<name>-u` for the underlay namespace,
`<name>-h<i>` for hosts) and recorded in `<root>/<name>/lab.json`, so `down` removes
exactly that and nothing else: processes by the pids it recorded (checked against their
command line first), namespaces by name. Addresses are 198.18.<k>.0/24 (RFC 2544's
benchmarking range), inside the lab's own namespaces only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoal.errors import Conflict, InvalidParameter, NotFound, ShoalError

ROOT = Path("/run/shoal-lab")
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789")
LabError = ShoalError  # what callers catch: every failure here says what went wrong


@dataclass
class Host:
    name: str  # its namespace
    ip: str
    sock: str
    data_root: str
    shoald_pid: int = 0
    etcd_pid: int = 0

    @property
    def docker_host(self) -> str:
        return f"unix://{self.sock}"


@dataclass
class Lab:
    name: str
    root: str
    subnet_index: int
    hosts: list[Host] = field(default_factory=list)

    @property
    def underlay(self) -> str:
        return f"{self.name}-u"

    @property
    def store_url(self) -> str:
        return "etcd://" + ",".join(f"{h.ip}:2379" for h in self.hosts if h.etcd_pid)

    def save(self) -> None:
        Path(self.root, "lab.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, name: str, base: Path = ROOT) -> Lab:
        try:
            data = json.loads((base / name / "lab.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"no cluster named {name} (see: shoal cluster ls)") from None
        return cls(name=data["name"], root=data["root"], subnet_index=data["subnet_index"],
                   hosts=[Host(**h) for h in data["hosts"]])


def _run(*argv: str) -> None:
    p = subprocess.run(list(argv), capture_output=True, text=True)
    if p.returncode != 0:
        raise ShoalError(f"{' '.join(argv)}: {p.stderr.strip() or p.returncode}")


def _in_ns(ns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}", *argv]


def check_name(name: str) -> str:
    if not name or len(name) > 8 or not set(name) <= NAME_OK or not name[0].isalpha():
        raise InvalidParameter(f"invalid cluster name {name!r}: 1-8 lower-case letters and digits, a letter first")
    return name


def _free_index(base: Path) -> int:
    used = set()
    for f in base.glob("*/lab.json"):
        try:
            used.add(json.loads(f.read_text())["subnet_index"])
        except (OSError, ValueError, KeyError):
            continue
    return next(i for i in range(10, 250) if i not in used)


def _underlay(lab: Lab, count: int) -> None:
    _run("ip", "netns", "add", lab.underlay)
    _run("ip", "-n", lab.underlay, "link", "add", "ul0", "type", "bridge")
    _run("ip", "-n", lab.underlay, "link", "set", "ul0", "up")
    for i in range(1, count + 1):
        ns = f"{lab.name}-h{i}"
        _run("ip", "netns", "add", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", lab.underlay, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "-n", lab.underlay, "link", "set", f"h{i}", "master", "ul0", "up")
        ip = f"198.18.{lab.subnet_index}.{i}"
        _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        data = Path(lab.root, f"h{i}")
        data.mkdir(parents=True, exist_ok=True)
        lab.hosts.append(Host(name=ns, ip=ip, sock=str(data / "shoal.sock"), data_root=str(data / "data")))
        lab.save()


def _spawn(argv: list[str], log: Path) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc.pid


def _etcd_argv(lab: Lab, i: int) -> list[str]:
    members = lab.hosts[:3]
    peers = ",".join(f"m{k}=http://{h.ip}:2380" for k, h in enumerate(members, 1))
    h = lab.hosts[i - 1]
    return _in_ns(h.name, ETCD, "--name", f"m{i}", "--data-dir", str(Path(lab.root, f"etcd{i}")),
                  "--listen-client-urls", f"http://{h.ip}:2379", "--advertise-client-urls", f"http://{h.ip}:2379",
                  "--listen-peer-urls", f"http://{h.ip}:2380", "--initial-advertise-peer-urls", f"http://{h.ip}:2380",
                  "--initial-cluster", peers, "--initial-cluster-state", "new",
                  "--initial-cluster-token", f"shoal-lab-{lab.name}", "--log-level", "warn")


def _etcd(lab: Lab, members: int) -> None:
    for i in range(1, members + 1):
        start_etcd(lab, i)


def start_etcd(lab: Lab, i: int) -> None:
    """Member `i` (1-based, inside host i); a restart keeps its data directory."""
    lab.hosts[i - 1].etcd_pid = _spawn(_etcd_argv(lab, i), Path(lab.root, f"etcd{i}.log"))
    lab.save()


def kill_etcd(lab: Lab, i: int) -> None:
    """SIGKILL member `i`, as a crash (the pid is checked against its command line)."""
    h = lab.hosts[i - 1]
    try:
        if lab.root.encode() in Path(f"/proc/{h.etcd_pid}/cmdline").read_bytes():
            os.kill(h.etcd_pid, signal.SIGKILL)
            os.waitpid(h.etcd_pid, 0)
    except (OSError, ChildProcessError):
        pass


def shoald_argv(lab: Lab, h: Host, extra: list[str] | None = None) -> list[str]:
    resolv = Path(lab.root, "resolv.conf")
    if not resolv.exists():
        resolv.write_text("nameserver 127.0.0.53\n")  # never the machine's resolvers
    return _in_ns(h.name, str(Path(sys.executable).parent / "shoald"), "--data-root", h.data_root, "-H", h.docker_host,
                  "--cluster-store", lab.store_url, "--cluster-advertise", h.ip,
                  "--dns", "127.0.0.53", "--resolv-conf", str(resolv), *(extra or []))


def start_shoald(lab: Lab, h: Host, extra: list[str] | None = None) -> None:
    h.shoald_pid = _spawn(shoald_argv(lab, h, extra), Path(lab.root, f"{h.name}.log"))
    lab.save()


def wait_ready(lab: Lab, timeout: float = 60.0, progress=None) -> None:  # noqa: ANN001 - callable
    import httpx

    deadline = time.monotonic() + timeout
    pending = list(lab.hosts)
    while pending and time.monotonic() < deadline:
        for h in list(pending):
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=h.sock), timeout=2) as c:
                    info = c.get("http://shoal/info").raise_for_status().json()
                if any("cluster store" in w for w in info.get("Warnings") or ()):
                    continue  # up, but not joined yet
                pending.remove(h)
                if progress:
                    progress(f"{h.name} joined ({len(lab.hosts) - len(pending)}/{len(lab.hosts)})")
            except Exception:  # noqa: BLE001 - not up yet
                pass
        time.sleep(0.1)
    if pending:
        raise ShoalError(f"shoald did not come up on {', '.join(h.name for h in pending)}: "
                         f"see {lab.root}/<host>.log")


def up(name: str, count: int, base: Path = ROOT, progress=None, extra: list[str] | None = None) -> Lab:  # noqa: ANN001
    """Make the underlay, start etcd and every shoald; undone if anything fails."""
    check_name(name)
    if not 1 <= count <= 200:
        raise InvalidParameter(f"invalid number of hosts {count}: 1 to 200")
    if (base / name / "lab.json").exists():
        raise Conflict(f"a cluster named {name} exists: shoal cluster down --name {name} first")
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    lab = Lab(name=name, root=str(root), subnet_index=_free_index(base))
    lab.save()
    try:
        _underlay(lab, count)
        _etcd(lab, min(3, count))
        for h in lab.hosts:
            start_shoald(lab, h, extra)
        wait_ready(lab, progress=progress)
    except BaseException:
        down(name, base)
        raise
    return lab


def _kill(pid: int, needle: str) -> None:
    """SIGTERM then SIGKILL to `pid`, only if its command line still names `needle`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if needle.encode() not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def down(name: str, base: Path = ROOT) -> None:
    """Remove exactly what `up` made: its processes, its namespaces, its folder."""
    lab = Lab.load(check_name(name), base)
    for h in lab.hosts:
        if h.shoald_pid:
            _kill(h.shoald_pid, h.data_root)
    for h in lab.hosts:
        _kill_bird(h)
    for h in lab.hosts:
        _remove_containers(h)
        if h.etcd_pid:
            _kill(h.etcd_pid, lab.root)
    for ns in [h.name for h in lab.hosts] + [lab.underlay]:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
    for point in _mounts_below(lab.root):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(lab.root, ignore_errors=True)


def _kill_bird(h: Host) -> None:
    """A BIRD outlives a shoald that was killed (the next one adopts it): stop it by the
    pid its file names, if that process reads this host's configuration."""
    try:
        pid = int(Path(h.data_root, "run", "bird", "bird.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    _kill(pid, h.data_root)


def _remove_containers(h: Host) -> None:
    """Containers outlive shoald by design: delete what runc runs under this host's root."""
    state = Path(h.data_root, "runtime", "runc")
    if not state.is_dir():
        return
    ids = subprocess.run(["runc", "--root", str(state), "list", "-q"], capture_output=True, text=True).stdout
    for cid in ids.split():
        subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], capture_output=True)


def _mounts_below(root: str) -> list[str]:
    prefix = root.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    return sorted(points, reverse=True)


def labs(base: Path = ROOT) -> list[Lab]:
    out = []
    for f in sorted(base.glob("*/lab.json")):
        try:
            out.append(Lab.load(f.parent.name, base))
        except (ShoalError, ValueError, KeyError):
            continue
    return out


def import_image(lab: Lab, tarball: str, ref: str = "busybox:latest") -> None:
    """`docker import TAR REF` on every host (each daemon has its own image store)."""
    import httpx

    repo, _, tag = ref.partition(":")
    data = Path(tarball).read_bytes()
    for h in lab.hosts:
        with httpx.Client(transport=httpx.HTTPTransport(uds=h.sock), base_url="http://shoal", timeout=120) as c:
            r = c.post("/images/create", params={"fromSrc": "-", "repo": repo, "tag": tag or "latest",
                                                 "changes": 'CMD ["sh"]'},
                       content=data, headers={"Content-Type": "application/x-tar"})
        if r.status_code != 200:
            raise ShoalError(f"import of {tarball} on {h.name} failed: {r.text[:200]}")
