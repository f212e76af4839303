"""CPU, memory and pids limits: dockerd 20.10's checks and defaults, the OCI
`linux.resources` runc applies, and the `runc update` flags that change them in place.

The wire values are HostConfig's (Memory, MemorySwap, NanoCpus, CpuShares, CpuPeriod,
CpuQuota, PidsLimit); what runc gets is derived from them in one place (`oci_resources`),
so create, start after an update and `runc update` can never disagree. dockerd's wording
(daemon/daemon_unix.go verifyPlatformContainerResources, container/container_unix.go
UpdateContainer) is kept: clients and tests match on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shoal.errors import InvalidParameter

MIN_MEMORY = 6 * 1024 * 1024  # linuxMinMemory
CFS_PERIOD = 100_000  # µs: the period NanoCpus is expressed against
KEYS = ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota", "PidsLimit")


def _num(res: dict, key: str) -> int:
    return int(res.get(key) or 0)


def check(res: dict, *, update: bool = False, ncpu: int | None = None) -> None:
    """dockerd's refusals, in its order, for a create's HostConfig or an update's body."""
    ncpu = ncpu or os.cpu_count() or 1
    memory, swap, nano = _num(res, "Memory"), _num(res, "MemorySwap"), _num(res, "NanoCpus")
    period, quota = _num(res, "CpuPeriod"), _num(res, "CpuQuota")
    if memory != 0 and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and 0 < swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if period != 0 and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")


def adapt(host: dict) -> dict:
    """What dockerd stores at create (adaptContainerSettings): MemorySwap twice Memory
    when only Memory is given. (CpuShares stay as given for API 1.19 and later: the
    kernel takes them into its range, 2 to 262144.)"""
    out = dict(host)
    if out.get("PidsLimit") is not None and _num(out, "PidsLimit") <= 0:
        out["PidsLimit"] = None  # the CLI's 0: no limit, shown as null (measured)
    if _num(out, "Memory") > 0 and _num(out, "MemorySwap") == 0:
        out["MemorySwap"] = _num(out, "Memory") * 2
    return out


def merge_update(current: dict, body: dict) -> dict:
    """The HostConfig after `docker update`: a zero (or absent) value leaves a field as it
    was, as dockerd's UpdateContainer does; its conflicts refused with its messages."""
    new = {k: body.get(k) for k in KEYS if k in body}
    cur = {k: _num(current, k) for k in KEYS}
    if _num(new, "NanoCpus") > 0 and cur["CpuPeriod"] > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if _num(new, "NanoCpus") > 0 and cur["CpuQuota"] > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if _num(new, "CpuPeriod") > 0 and cur["NanoCpus"] > 0:
        raise InvalidParameter("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if _num(new, "CpuQuota") > 0 and cur["NanoCpus"] > 0:
        raise InvalidParameter("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    if _num(new, "Memory") and _num(new, "Memory") > cur["MemorySwap"] and not _num(new, "MemorySwap"):
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap limit, "
                               "update the memoryswap at the same time")
    out = dict(current)
    for key in KEYS:
        if key == "PidsLimit":
            if new.get(key) is not None:  # a pointer in dockerd: 0 and below mean unlimited
                out[key] = new[key]
        elif _num(new, key):
            out[key] = new[key]
    return out


def oci_resources(host: dict) -> dict[str, Any]:
    """linux.resources (without devices) for HostConfig `host`, as dockerd's oci spec has it."""
    out: dict[str, Any] = {}
    memory, swap = _num(host, "Memory"), _num(host, "MemorySwap")
    if memory or swap:
        out["memory"] = {k: v for k, v in (("limit", memory), ("swap", swap)) if v}
    cpu: dict[str, int] = {}
    if _num(host, "CpuShares") > 0:
        cpu["shares"] = _num(host, "CpuShares")
    if _num(host, "NanoCpus") > 0:
        cpu["period"], cpu["quota"] = CFS_PERIOD, _num(host, "NanoCpus") * CFS_PERIOD // 1_000_000_000
    else:
        if _num(host, "CpuPeriod"):
            cpu["period"] = _num(host, "CpuPeriod")
        if _num(host, "CpuQuota"):
            cpu["quota"] = _num(host, "CpuQuota")
    if cpu:
        out["cpu"] = cpu
    if _num(host, "PidsLimit") > 0:  # 0 and below: none (crun refuses a -1 at create)
        out["pids"] = {"limit": _num(host, "PidsLimit")}
    return out


def runc_update_args(res: dict[str, Any], lift_pids: bool = False) -> list[str]:
    """`runc update` flags for an `oci_resources` result: what a running container gets;
    `lift_pids`: an earlier pids limit goes (-1, which runc and crun take in an update)."""
    args: list[str] = []
    memory, cpu = res.get("memory") or {}, res.get("cpu") or {}
    for flag, value in (("--memory", memory.get("limit")), ("--memory-swap", memory.get("swap")),
                        ("--cpu-share", cpu.get("shares")), ("--cpu-period", cpu.get("period")),
                        ("--cpu-quota", cpu.get("quota")), ("--pids-limit", (res.get("pids") or {}).get("limit"))):
        if value is not None:
            args += [flag, str(value)]
    if lift_pids and "pids" not in res:
        args += ["--pids-limit", "-1"]
    return args


def host_config_view(host: dict) -> dict[str, Any]:
    """The resource fields of inspect's HostConfig, zero when unset, as dockerd shows them
    (PidsLimit null when never set)."""
    view: dict[str, Any] = {k: _num(host, k) for k in KEYS if k != "PidsLimit"}
    view["PidsLimit"] = host.get("PidsLimit")
    return view


def rewrite_config(path: Path, res: dict[str, Any]) -> None:
    """The bundle's config.json with new limits, the devices rule kept."""
    config = json.loads(path.read_text())
    kept = {"devices": config["linux"].get("resources", {}).get("devices", [])}
    config["linux"]["resources"] = {**kept, **res}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=1))
    tmp.replace(path)


def host_support(cgroot: Path = Path("/sys/fs/cgroup")) -> dict[str, bool]:
    """`docker info`'s limit capabilities, from the host's cgroup mounts (v1 hierarchies,
    or v2's controllers): the CLI warns about every one that is false."""
    try:
        v2 = set((cgroot / "cgroup.controllers").read_text().split())
    except OSError:
        v2 = None
    if v2 is not None:
        memory, cpu, pids = "memory" in v2, "cpu" in v2, "pids" in v2
        swap = memory
    else:
        memory = (cgroot / "memory" / "memory.limit_in_bytes").exists()
        swap = (cgroot / "memory" / "memory.memsw.limit_in_bytes").exists()
        cpu = (cgroot / "cpu" / "cpu.cfs_quota_us").exists()
        pids = (cgroot / "pids" / "pids.max").exists() or (cgroot / "pids").is_dir()
    return {"MemoryLimit": memory, "SwapLimit": swap, "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu,
            "CPUShares": cpu, "PidsLimit": pids}
