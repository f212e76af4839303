"""Typed container and exec specs, and the OCI `config.json` runc reads.

The defaults follow Docker's (moby `oci/defaults.go`): the same capability set (so `ping` works
through CAP_NET_RAW and low ports bind through CAP_NET_BIND_SERVICE), the same masked and
read-only /proc paths, /sys read-only. The network namespace is the one knob the network core
turns: a netns path joins that namespace; None leaves it out, so the container shares the
daemon's namespace (`--network host`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from shoal.errors import InvalidParameter
from shoal.runtime.users import check_user_syntax, resolve_user

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)


@dataclass(frozen=True)
class ContainerSpec:
    """What the runtime needs to know to run one container; the API layer fills it in.

    `netns` is a path such as /run/netns/NAME or /proc/PID/ns/net; None = host networking.
    `hosts`, `hostname_file` and `resolv_conf` are host files bind-mounted read-write at
    /etc/hosts, /etc/hostname and /etc/resolv.conf (the network core owns their content).
    `open_stdin` keeps a stdin pipe for attach (`-i`); `stdin_once` closes it when the first
    attached client closes its stdin, as `docker run -i` does.
    """

    id: str
    args: tuple[str, ...]
    env: tuple[str, ...] = DEFAULT_ENV
    cwd: str = "/"
    hostname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    user: str = ""  # name|uid[:group|gid], resolved in the container's root at create
    netns: str | None = None
    hosts: Path | None = None
    hostname_file: Path | None = None
    resolv_conf: Path | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    sysctls: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # model.validate.sysctl
    runtime: str = ""  # the OCI runtime's name (HostConfig.Runtime); "": the daemon's default
    mounts: tuple[dict, ...] = field(default=(), hash=False, compare=False)  # runtime.volumes.oci_mount
    resources: dict = field(default_factory=dict, hash=False, compare=False)  # runtime.resources.oci_resources

    def __post_init__(self) -> None:
        if not self.args:
            raise InvalidParameter("No command specified")
        if not self.cwd.startswith("/"):
            raise InvalidParameter(f"the working directory '{self.cwd}' is invalid, it needs to be an absolute path")
        check_user_syntax(self.user)


@dataclass(frozen=True)
class ExecSpec:
    """One `docker exec` process: runs inside a running container's namespaces."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = ""
    user: str = ""
    tty: bool = False
    open_stdin: bool = False


CGROUP_PARENT = "shoal"  # every daemon's containers share it; removed when empty (cleanup)


def remove_cgroup_parent(cgroup_root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """rmdir the shared parent in every hierarchy (v2: the one); a parent that still has a
    container's cgroup (this daemon's or another's) is busy and stays. Returns what went."""
    candidates = [cgroup_root / CGROUP_PARENT]
    with contextlib.suppress(OSError):
        candidates += [h / CGROUP_PARENT for h in cgroup_root.iterdir() if h.is_dir() and not h.is_symlink()]
    removed = []
    for path in candidates:
        try:
            path.rmdir()
        except OSError:
            continue
        removed.append(path)
    return removed


def _process(args: tuple[str, ...], env: tuple[str, ...], cwd: str, user: dict, tty: bool) -> dict:
    caps = list(DEFAULT_CAPS)
    return {
        "terminal": tty,
        "user": user,
        "args": list(args),
        "env": list(env) + ([] if any(e.startswith("TERM=") for e in env) or not tty else ["TERM=xterm"]),
        "cwd": cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": False,
    }


def _mounts(spec: ContainerSpec) -> list[dict]:
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    # the user's mounts come after the system's (and replace one at the same place, as
    # `--tmpfs /dev/shm` does) and before the network's files, which go on top of a volume at /etc
    taken = {m["destination"] for m in spec.mounts}
    mounts = [m for m in mounts if m["destination"] not in taken] + [dict(m) for m in spec.mounts]
    for dest, src in (("/etc/resolv.conf", spec.resolv_conf), ("/etc/hostname", spec.hostname_file),
                      ("/etc/hosts", spec.hosts)):
        if src is not None and dest not in taken:
            mounts.append({"destination": dest, "type": "bind", "source": str(src),
                           "options": ["rbind", "rprivate"]})
    return mounts


def oci_config(spec: ContainerSpec, rootfs: Path) -> dict:
    """The bundle's config.json for `spec`, with `rootfs` (the overlay merged dir) as root."""
    namespaces: list[dict] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if spec.netns is not None:
        namespaces.append({"type": "network", "path": spec.netns})
    config = {
        "ociVersion": "1.0.2",
        "process": _process(spec.args, spec.env, spec.cwd, resolve_user(rootfs, spec.user).oci(), spec.tty),
        "root": {"path": str(rootfs), "readonly": False},
        "mounts": _mounts(spec),
        "annotations": {f"org.shoal.label.{k}": v for k, v in spec.labels.items()},
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": f"/{CGROUP_PARENT}/{spec.id}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}], **spec.resources},
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if spec.hostname:
        config["hostname"] = spec.hostname
    if spec.sysctls:
        config["linux"]["sysctl"] = dict(spec.sysctls)
    return config


def exec_process(container_config: dict, spec: ExecSpec) -> dict:
    """The `process` object for `runc exec --process`: the container's, with the exec's overrides.

    runc exec takes the whole process (capabilities included); starting from the container's
    keeps the exec no more privileged than the container. Env adds to the container's.
    """
    base = container_config["process"]
    env = list(base.get("env", [])) + list(spec.env)
    user = resolve_user(Path(container_config["root"]["path"]), spec.user).oci() if spec.user else base["user"]
    process = _process(spec.args, tuple(env), spec.cwd or base.get("cwd", "/"), user, spec.tty)
    process["capabilities"] = base.get("capabilities", process["capabilities"])
    return process


def spec_to_json(spec: ContainerSpec) -> dict:
    data = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    for key in ("hosts", "hostname_file", "resolv_conf"):
        data[key] = str(data[key]) if data[key] is not None else None
    data["args"], data["env"], data["mounts"] = list(spec.args), list(spec.env), list(spec.mounts)
    return data


def spec_from_json(data: dict) -> ContainerSpec:
    known = {f.name for f in dataclasses.fields(ContainerSpec)}
    values = {k: v for k, v in data.items() if k in known}
    for key in ("hosts", "hostname_file", "resolv_conf"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    values["args"], values["env"] = tuple(values["args"]), tuple(values.get("env", DEFAULT_ENV))
    values["mounts"] = tuple(values.get("mounts") or ())
    values.setdefault("runtime", "runc")  # a record from before there was a choice ran runc
    return ContainerSpec(**values)
