"""/containers/{id}/stats and /top: what `docker stats` and `docker top` read.

Stats are dockerd 20.10's JSON: the cgroup counters (runtime.cgroups), the host's CPU time
and memory, the network counters read inside the container's namespace. `stream` (the
default) sends one sample a second, the first without a previous one (`preread` zero, as
dockerd's); `stream=0` waits one second for a second sample so that `precpu_stats` is
filled (what `docker stats --no-stream` computes CPU % from); with `one-shot` as well it
answers at once. A container that is not running has a zeroed sample, and a stream of it
waits, sending nothing, until it runs; once it stopped, the stream goes on with zeroed
samples (dockerd 20.10 does both, measured).

Top runs the host's `ps` with the client's arguments and keeps the rows of the container's
processes (`runc ps`), found by the PID column, as dockerd does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from shoal.api.app import Route
from shoal.api.http import Request, Response, StreamResponse, json_response
from shoal.controller.containers import Containers
from shoal.errors import ShoalError
from shoal.model import Container
from shoal.runtime import cgroups
from shoal.runtime.cparchive import go_time

ZERO_TIME = "0001-01-01T00:00:00Z"
INTERVAL = 1.0  # dockerd's collector period
_ZERO_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
             "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def empty_stats(rec: Container, *, lists: bool = False) -> dict[str, Any]:
    """The sample of a container with nothing to count (dockerd's, with null blkio lists)."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
            "blkio_stats": {k: [] if lists else None for k in cgroups.BLKIO_KEYS}, "num_procs": 0,
            "storage_stats": {}, "cpu_stats": json.loads(json.dumps(_ZERO_CPU)),
            "precpu_stats": json.loads(json.dumps(_ZERO_CPU)), "memory_stats": {},
            "name": "/" + rec.name, "id": rec.id}


def _counters(pid: int) -> tuple[dict, dict, dict, dict]:
    dirs = cgroups.cgroup_dirs(pid)
    cpu = cgroups.cpu_stats(dirs)
    cpu["system_cpu_usage"] = cgroups.system_cpu_usage()
    cpu["online_cpus"] = cgroups.online_cpus()
    return (cpu, cgroups.memory_stats(dirs, cgroups.host_memory()), cgroups.pids_stats(dirs),
            cgroups.blkio_stats(dirs))


class StatsRoutes:
    def __init__(self, containers: Containers) -> None:
        self.c = containers

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/containers/{ref}/stats", self.stats),
            Route("GET", "/containers/{ref}/top", self.top),
        ]

    async def sample(self, rec: Container) -> dict[str, Any] | None:
        """One running sample, without `precpu_stats`; None when it does not run."""
        st = self.c.state(rec.id)
        if not st.running or not st.pid:
            return None
        cpu, memory, pids, blkio = await asyncio.to_thread(_counters, st.pid)
        out = empty_stats(rec, lists=True)
        out.update({"read": go_time(time.time_ns()), "cpu_stats": cpu, "memory_stats": memory,
                    "pids_stats": pids, "blkio_stats": blkio})
        sb = self.c.ctl.sandboxes.get(rec.id)
        if sb is not None and sb.path and rec.network_mode != "host":
            try:
                nets = await self.c.ctl.kernel.sandbox_counters(sb.path)
            except (ShoalError, OSError):
                nets = {}
            if nets:
                out["networks"] = nets
        return out

    async def stats(self, req: Request) -> Response | StreamResponse:
        rec = self.c.find(req.params["ref"])
        if not req.flag("stream", True):
            first = await self.sample(rec)
            if first is None:
                return json_response(empty_stats(rec))
            if req.flag("one-shot"):
                return json_response(first)
            await asyncio.sleep(INTERVAL)
            second = await self.sample(rec)
            return json_response(_with_previous(second, first) if second is not None else empty_stats(rec))
        return StreamResponse(self._stream(rec))

    async def _stream(self, rec: Container) -> AsyncIterator[bytes]:
        previous, ran = None, False
        while rec.id in self.c.records:
            now = await self.sample(rec)
            if now is not None:
                yield json.dumps(_with_previous(now, previous)).encode() + b"\n"
            elif ran:  # stopped since: zeroed samples go on, as dockerd's (measured)
                yield json.dumps(empty_stats(rec)).encode() + b"\n"
            previous, ran = now, ran or now is not None
            await asyncio.sleep(INTERVAL)

    async def top(self, req: Request) -> Response:
        rec = self.c.find(req.params["ref"])
        pids = set(await self.c.runtime.pids(rec.id))
        args = (req.arg("ps_args") or "-ef").split(" ")
        proc = await asyncio.create_subprocess_exec("ps", *args, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            first = next((line for line in err.decode(errors="replace").splitlines() if line.strip()), "")
            raise ShoalError(f"ps: {first.strip()}")
        return json_response(parse_ps(out.decode(errors="replace"), pids))


def _with_previous(now: dict, previous: dict | None) -> dict:
    if previous is not None:
        now["preread"], now["precpu_stats"] = previous["read"], previous["cpu_stats"]
    return now


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """`ps` output -> Titles and the rows whose PID is one of `pids` (the last column may
    hold spaces: the command line)."""
    lines = [line for line in output.splitlines() if line.strip()]
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise ShoalError("Couldn't find PID field in ps output")
    at = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[at])
        except (IndexError, ValueError):
            raise ShoalError(f"Unexpected pid '{fields[at] if len(fields) > at else ''}'") from None
        if pid in pids:
            rows.append(fields)
    return {"Processes": rows, "Titles": titles}
