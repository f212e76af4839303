"""Pause and unpause (the freezer cgroup, through the OCI runtime) and a container's processes.

A mixin of runtime.Runtime: it uses the runtime's records, locks and `_runc`. A paused
container stays running (its record says paused until unpause or the run's end, so a new
daemon knows it too); `Runtime.kill` and `delete` thaw it after signalling, as dockerd does,
since a frozen process cannot act on a signal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shoal.errors import Conflict, ShoalError


class Freezer:
    if TYPE_CHECKING:
        def _record(self, cid: str) -> Any: ...
        def _live_of(self, cid: str) -> Any: ...
        def _save(self, cid: str) -> None: ...
        def state(self, cid: str) -> Any: ...
        async def _runc(self, cid: str, *args: str, check: bool = True) -> tuple[int, str]: ...

    async def pause(self, cid: str) -> None:
        """Freeze every process of the container (the freezer cgroup, through runc)."""
        self._record(cid)
        async with self._live_of(cid).lock:
            st = self.state(cid)
            if not st.running:
                raise Conflict(f"Container {cid} is not running")
            if st.paused:
                raise Conflict(f"Container {cid} is already paused")
            await self._runc(cid, "pause", cid)
            self._record(cid).paused = True
            self._save(cid)

    async def unpause(self, cid: str) -> None:
        self._record(cid)
        async with self._live_of(cid).lock:
            if not self.state(cid).paused:
                raise ShoalError(f"Container {cid} is not paused")  # dockerd 20.10: a 500
            await self.resume(cid)

    async def resume(self, cid: str, *, check: bool = True) -> None:
        await self._runc(cid, "resume", cid, check=check)
        rec = self._records.get(cid)
        if rec is not None and rec.paused:
            rec.paused = False
            self._save(cid)

    async def pids(self, cid: str) -> list[int]:
        """Every process of the running container (its cgroup's, through `runc ps`)."""
        if not self.state(cid).running:
            raise Conflict(f"Container {cid} is not running")
        _, out = await self._runc(cid, "ps", "--format", "json", cid)
        try:
            return [int(p) for p in json.loads(out or "[]")]
        except (ValueError, TypeError):
            raise ShoalError(f"runc ps {cid}: unexpected output {out[:200]!r}") from None
