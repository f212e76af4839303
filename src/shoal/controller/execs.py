"""Exec instances between `POST /containers/{id}/exec` and the end of their inspectability.

dockerd 20.10 (daemon/exec.go, read): an exec is listed in its container's store from create
until it exits, and in the daemon's store until a clean-up that runs every 5 minutes drops
those no container lists any more (so a finished exec stays inspectable for 5 to 10
minutes); a container's stop unregisters what its store still lists (never-started execs).
The same here, with one more bound: a container keeps at most `keep` finished execs, the
newest, so that a burst of execs (a health check, a script) cannot pile up records or files
before the retention runs out. The clean-up runs on the way, at each exec create and
inspect and at each container stop and removal, so it needs no timer of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shoal.controller.ids import new_id
from shoal.errors import Conflict, NotFound
from shoal.runtime import ExecSession, ExecSpec, Runtime
from shoal.runtime.monitor import start_exit_code

RETENTION = 300.0  # seconds a finished exec stays inspectable (dockerd: 5 to 10 minutes)
KEEP = 64  # finished execs kept per container, the newest


@dataclass
class PendingExec:
    id: str
    container_id: str
    spec: ExecSpec
    attach: dict[str, bool]
    session: ExecSession | None = None
    started: bool = False
    failed_code: int | None = None  # Docker's 126/127 when the process could not start
    failed_at: float | None = None

    def finished_at(self) -> float | None:
        """When it ended; None while it runs or before it started."""
        if self.session is not None:
            return self.session.settle()
        return self.failed_at


class ExecTable:
    """The controller's exec instances, keyed by the id the API hands out."""

    def __init__(self, runtime: Runtime, running: Callable[[str], bool], exists: Callable[[str], bool], *,
                 keep: int = KEEP, retention: float = RETENTION) -> None:
        self.runtime = runtime
        self._running, self._exists = running, exists
        self.keep, self.retention = keep, retention
        self._execs: dict[str, PendingExec] = {}

    def __len__(self) -> int:
        return len(self._execs)

    def of(self, cid: str) -> list[PendingExec]:
        return [p for p in self._execs.values() if p.container_id == cid]

    def create(self, cid: str, spec: ExecSpec, attach: dict[str, bool]) -> str:
        self.collect()
        exec_id = new_id()
        self._execs[exec_id] = PendingExec(exec_id, cid, spec, attach)
        return exec_id

    def get(self, exec_id: str) -> PendingExec:
        self.collect()
        try:
            return self._execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def startable(self, exec_id: str) -> PendingExec:
        """The checks that answer with an HTTP error, made before an attached start hijacks."""
        pending = self.get(exec_id)
        if pending.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        if not self._running(pending.container_id):
            raise Conflict(f"Container {pending.container_id} is not running")
        return pending

    async def start(self, exec_id: str, *, detach: bool, detach_keys: bytes | None = None) -> ExecSession:
        pending = self.startable(exec_id)
        pending.started = True
        kwargs = {"detach_keys": detach_keys} if detach_keys else {}
        try:
            pending.session = await self.runtime.exec(pending.container_id, pending.spec, detach=detach, **kwargs)
        except Exception as exc:
            pending.failed_code, pending.failed_at = start_exit_code(str(exc)), time.time()
            raise
        return pending.session

    def drop(self, exec_id: str) -> None:
        pending = self._execs.pop(exec_id, None)
        if pending is not None and pending.session is not None:
            self.runtime.exec_forget(pending.session.id)

    def collect(self, now: float | None = None) -> None:
        """Drop what dockerd's clean-up would by now, and the oldest finished ones over `keep`."""
        now = time.time() if now is None else now
        finished: dict[str, list[tuple[float, str]]] = {}
        for exec_id, pending in list(self._execs.items()):
            cid = pending.container_id
            if not self._exists(cid):
                self.drop(exec_id)
                continue
            if not pending.started:
                if not self._running(cid):  # the container stopped: its store is cleared
                    self.drop(exec_id)
                continue
            ended = pending.finished_at()
            if ended is None:
                continue
            if now - ended > self.retention:
                self.drop(exec_id)
            else:
                finished.setdefault(cid, []).append((ended, exec_id))
        for items in finished.values():
            items.sort()
            for _, exec_id in items[: max(0, len(items) - self.keep)]:
                self.drop(exec_id)
