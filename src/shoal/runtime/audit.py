"""The runtime's side of the invariant checker: its records, the OCI runtimes' state
(runc's, crun's, each under its own root), the processes, root filesystem mounts and cgroups, against the engine's container records.

A check: it reads and never changes anything.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

from shoal.runtime.spec import CGROUP_PARENT


class Runtime(Protocol):
    """What the audit reads of runtime.Runtime (a protocol: no import of it, no cycle)."""

    containers_dir: Path

    def records(self) -> set[str]: ...
    def state_roots(self) -> dict[str, Path]: ...
    def runtime_of(self, cid: str) -> str: ...
    def state(self, cid: str) -> Any: ...
    async def runc_status(self, cid: str) -> str: ...


async def audit(rt: Runtime, known: set[str]) -> list[tuple[str, str]]:
    records = rt.records()
    out = [(cid, "the runtime has a record the engine does not") for cid in sorted(records - known)]
    out += [(cid, "the engine has a container the runtime has no record of") for cid in sorted(known - records)]
    held = state_dirs(rt)  # (runtime, cid) pairs
    out += [(cid, f"{name} holds state for a container no record names") for name, cid in sorted(held)
            if cid not in records]
    out += [(cid, f"{name} holds state for it, but it was created with {rt.runtime_of(cid)}")
            for name, cid in sorted(held) if cid in records and rt.runtime_of(cid) != name]
    out += mounts(rt, records) + cgroups(rt, records)
    for cid in sorted(records & known):
        st, name = rt.state(cid), rt.runtime_of(cid)
        if st.running and not Path(f"/proc/{st.pid}").exists():
            out.append((cid, f"running, but its process {st.pid} is gone"))
        if st.running and (name, cid) not in held:
            out.append((cid, f"running, but {name} has no state for it"))
        if not st.running and (name, cid) in held and await rt.runc_status(cid) == "running":
            out.append((cid, f"not running by its record, but {name} runs it"))
    return out


def state_dirs(rt: Runtime) -> set[tuple[str, str]]:
    """runc and crun both keep a directory per container under their --root."""
    return {(name, p.name) for name, root in rt.state_roots().items() if root.is_dir()
            for p in root.iterdir() if p.is_dir()}


def mounts(rt: Runtime, records: set[str]) -> list[tuple[str, str]]:
    """A running container has its root mounted (a created one may not, after a reboot,
    until it starts); a mount under our containers folder with no record is a leak."""
    prefix = str(rt.containers_dir) + "/"
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    mounted = {p[len(prefix):].split("/")[0] for p in points if p.startswith(prefix) and p.endswith("/merged")}
    out = [(cid, "its root filesystem is mounted but no record names it") for cid in sorted(mounted - records)]
    out += [(cid, "running, but its root filesystem is not mounted") for cid in sorted(records - mounted)
            if rt.state(cid).running]
    return out


def cgroups(rt: Runtime, records: set[str], cgroup_root: Path = Path("/sys/fs/cgroup")) -> list[tuple[str, str]]:
    """A container that does not run has no cgroup left in any hierarchy (runc's delete
    removes them). The parent is shared by every daemon on the machine, so only this
    daemon's own containers are looked for."""
    parents = [cgroup_root / CGROUP_PARENT]
    with contextlib.suppress(OSError):
        parents += [h / CGROUP_PARENT for h in cgroup_root.iterdir() if h.is_dir() and not h.is_symlink()]
    parents = [p for p in parents if p.is_dir()]
    out = []
    for cid in sorted(records):
        if rt.state(cid).running:
            continue
        left = [p.parent.name for p in parents if (p / cid).is_dir()]
        if left:
            out.append((cid, f"not running, but its cgroup is left in {', '.join(sorted(left))}"))
    return out
