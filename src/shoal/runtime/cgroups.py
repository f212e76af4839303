"""A container's cgroup counters, for `docker stats`, in the shape dockerd's stats carry.

The OCI runtime puts the container in `/shoal/<id>` of every hierarchy (runtime.spec); where
that is on this host is read from the container's first process (/proc/PID/cgroup) and the
mount table (a hierarchy's mount may show only a part of it), so v1 (one mount per
controller, what these machines have, with an unused v2 mount beside them) and v2 (one
unified mount with every controller) are both found the same way. A counter a host does not
have is left out, as dockerd leaves it out, never invented.
"""

from __future__ import annotations

import os
from pathlib import Path

USER_HZ = os.sysconf("SC_CLK_TCK")
NS = 1_000_000_000


def _mounts(mountinfo: str) -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """controller -> (mount root, mount point) for v1; (root, point) of the v2 mount."""
    v1: dict[str, tuple[str, str]] = {}
    v2 = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        fstype, options = after[0], after[2] if len(after) > 2 else ""
        root, point = fields[3], fields[4]
        if fstype == "cgroup2":
            v2 = v2 or (root, point)
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec") and not opt.startswith("name="):
                    v1.setdefault(opt, (root, point))
    return v1, v2


def _join(mount: tuple[str, str], path: str) -> Path:
    root, point = mount
    rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return Path(point) / ("" if rel == "." else rel)


def cgroup_dirs(pid: int, proc: Path = Path("/proc")) -> dict[str, Path]:
    """controller (`cpuacct`, `memory`, `pids`, `blkio`, `cpu`, or `unified` for v2) -> the
    directory of `pid`'s cgroup in it; empty when the process is gone."""
    try:
        own = (proc / str(pid) / "cgroup").read_text()
        mountinfo = (proc / "self" / "mountinfo").read_text()
    except OSError:
        return {}
    v1, v2 = _mounts(mountinfo)
    out: dict[str, Path] = {}
    for line in own.splitlines():
        hid, controllers, path = line.split(":", 2)
        if hid == "0" and v2 is not None:
            out["unified"] = _join(v2, path)
            continue
        for name in controllers.split(","):
            if name in v1:
                out[name] = _join(v1[name], path)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None  # "max"


def _keyed(path: Path) -> dict[str, int]:
    out = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def cpu_stats(dirs: dict[str, Path]) -> dict:
    """`cpu_usage` and `throttling_data` (nanoseconds); without the host's fields."""
    usage: dict = {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}
    throttle = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    if "cpuacct" in dirs:
        acct = dirs["cpuacct"]
        usage["total_usage"] = _int(acct / "cpuacct.usage") or 0
        percpu = (_read(acct / "cpuacct.usage_percpu") or "").split()
        if percpu:
            usage["percpu_usage"] = [int(v) for v in percpu]
        ticks = _keyed(acct / "cpuacct.stat")
        usage["usage_in_kernelmode"] = ticks.get("system", 0) * NS // USER_HZ
        usage["usage_in_usermode"] = ticks.get("user", 0) * NS // USER_HZ
        cpu = _keyed(dirs.get("cpu", acct) / "cpu.stat")
        throttle = {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                    "throttled_time": cpu.get("throttled_time", 0)}
    elif "unified" in dirs:
        cpu = _keyed(dirs["unified"] / "cpu.stat")
        usage = {"total_usage": cpu.get("usage_usec", 0) * 1000,
                 "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                 "usage_in_usermode": cpu.get("user_usec", 0) * 1000}
        throttle = {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                    "throttled_time": cpu.get("throttled_usec", 0) * 1000}
    return {"cpu_usage": usage, "throttling_data": throttle}


def memory_stats(dirs: dict[str, Path], host_total: int) -> dict:
    """usage, max_usage (v1), stats (memory.stat as the kernel names it), limit: the
    cgroup's, or the host's memory when it has none (as dockerd reports it)."""
    if "memory" in dirs:
        mem = dirs["memory"]
        usage = _int(mem / "memory.usage_in_bytes")
        if usage is None:
            return {}
        limit = _int(mem / "memory.limit_in_bytes") or host_total
        return {"usage": usage, "max_usage": _int(mem / "memory.max_usage_in_bytes") or 0,
                "stats": _keyed(mem / "memory.stat"), "limit": min(limit, host_total)}
    if "unified" in dirs:
        mem = dirs["unified"]
        usage = _int(mem / "memory.current")
        if usage is None:
            return {}
        limit = _int(mem / "memory.max") or host_total
        return {"usage": usage, "stats": _keyed(mem / "memory.stat"), "limit": min(limit, host_total)}
    return {}


def pids_stats(dirs: dict[str, Path]) -> dict:
    where = dirs.get("pids") or dirs.get("unified")
    if where is None or (current := _int(where / "pids.current")) is None:
        return {}
    out = {"current": current}
    limit = _int(where / "pids.max")
    if limit:
        out["limit"] = limit
    return out


BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
              "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
              "io_time_recursive", "sectors_recursive")


def _blkio_entries(path: Path) -> list[dict]:
    out = []
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0] and parts[2].isdigit():
            major, _, minor = parts[0].partition(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return out


def blkio_stats(dirs: dict[str, Path]) -> dict:
    """v1's throttle counters (what dockerd reads with CFQ gone); the rest empty lists."""
    out: dict = {key: [] for key in BLKIO_KEYS}
    if "blkio" in dirs:
        blk = dirs["blkio"]
        out["io_service_bytes_recursive"] = _blkio_entries(blk / "blkio.throttle.io_service_bytes_recursive")
        out["io_serviced_recursive"] = _blkio_entries(blk / "blkio.throttle.io_serviced_recursive")
    return out


def system_cpu_usage(stat_text: str | None = None) -> int:
    """The host's CPU time in nanoseconds (the first line of /proc/stat, as dockerd sums it)."""
    text = stat_text if stat_text is not None else Path("/proc/stat").read_text()
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return sum(int(v) for v in fields[1:8]) * NS // USER_HZ
    return 0


def host_memory(meminfo: str | None = None) -> int:
    text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text()
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def online_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1
