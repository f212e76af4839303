"""Restart policies, as dockerd 20.10 applies them (moby restartmanager, daemon/monitor.go,
daemon/kill.go, daemon.restore).

- A container's exit asks its `Backoff` whether to come back: `always` yes, `unless-stopped`
  unless the user stopped it, `on-failure[:N]` on a non-zero code while fewer than N restarts
  were made (N = 0: no bound). The wait before it starts at 100 ms and doubles (at most a
  minute); a run of 10 s or more starts it over. RestartCount counts the restarts made.
- A user's stop, or a kill with the stop signal (or with any signal when the container sets
  none), cancels the restarts until the next start by the user (dockerd's ExitOnNext), and
  marks the container stopped by the user (HasBeenManuallyStopped). A start or restart by
  the user begins afresh: RestartCount 0.
- When shoald starts, a container that is not running comes back if its policy says so
  with the user's stop taken into account as dockerd's restore does: `always` always,
  `unless-stopped` unless stopped by the user, `on-failure` on a failure within its bound.
  (Containers keep running while shoald is away, so only those that ended meanwhile or
  were stopped need it.)

What outlives shoald (the count, the user's stop) is kept in the store, only for
containers that have a policy: a `docker run` without one writes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from shoal.errors import ShoalError
from shoal.model import Container
from shoal.runtime.runtime import signal_number

log = logging.getLogger("shoal.restarts")
KIND_RESTART = "restart"
FIRST_DELAY, MAX_DELAY, RESET_AFTER = 0.1, 60.0, 10.0
DEFAULT_STOP_TIMEOUT = 10


@dataclass(frozen=True)
class Policy:
    name: str = "no"
    max_retries: int = 0

    @classmethod
    def of(cls, host_config: dict) -> Policy:
        raw = host_config.get("RestartPolicy") or {}
        return cls(raw.get("Name") or "no", int(raw.get("MaximumRetryCount") or 0))

    @property
    def none(self) -> bool:
        return self.name in ("", "no")


@dataclass
class Backoff:
    """One container's restart manager: dockerd's state machine, without the clock."""

    count: int = 0  # RestartCount
    delay: float = 0.0  # the last wait; 0: none yet
    canceled: bool = False  # a user's stop or kill: no restart until a user's start
    stopped: bool = False  # HasBeenManuallyStopped

    def decide(self, policy: Policy, exit_code: int, ran_for: float) -> float | None:
        """After an exit: the wait before the restart, or None for none."""
        if policy.none or self.canceled:
            return None
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        if not wants_restart(policy, exit_code, self.stopped, self.count):
            return None
        self.count += 1
        return self.delay

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "stopped": self.stopped, "canceled": self.canceled}


def wants_restart(policy: Policy, exit_code: int, stopped: bool, count: int) -> bool:
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not stopped
    if policy.name == "on-failure":
        return exit_code != 0 and (policy.max_retries == 0 or count < policy.max_retries)
    return False


def stop_plan(rec: Container, timeout: float | None) -> tuple[float, str]:
    """(seconds, signal) of a stop: the container's StopSignal (its image's if it set none)
    and StopTimeout, unless the request gives a timeout."""
    seconds = rec.config.get("StopTimeout")
    if timeout is None:
        timeout = DEFAULT_STOP_TIMEOUT if seconds is None else seconds
    return timeout, rec.config.get("StopSignal") or "TERM"


class Host(Protocol):
    """What the restarts need of controller.containers.Containers (which holds a Restarter)."""

    records: dict[str, Container]
    ctl: Any

    runtime: Any

    def state(self, cid: str) -> Any: ...

    def watcher(self, cid: str) -> asyncio.Task | None: ...

    async def start(self, ref: str, *, by_policy: bool = False) -> None: ...

    async def stop(self, ref: str, timeout: float | None = None) -> None: ...

    async def kill(self, ref: str, signal: str = "KILL") -> None: ...


class Restarter:
    """The restart managers of one Containers, and the restarts waiting for their turn."""

    def __init__(self, containers: Host) -> None:
        self.c = containers
        self.state: dict[str, Backoff] = {}
        self.pending: dict[str, asyncio.Task] = {}  # waiting for their turn
        self.starting: dict[str, asyncio.Task] = {}  # their turn came: being started
        self.late: dict[str, str | int | None] = {}  # a user's stop (None) or kill met them starting

    def _of(self, cid: str) -> Backoff:
        return self.state.setdefault(cid, Backoff())

    def count(self, cid: str) -> int:
        return self._of(cid).count if cid in self.state else 0

    def restarting(self, cid: str) -> bool:
        task = self.pending.get(cid)
        return (task is not None and not task.done()) or cid in self.starting

    async def restarting_after_exit(self, cid: str) -> bool:
        """For a stop or kill of a container that is not running: an exit still being
        handled (its watcher not done) is waited for first, so they see the restart it
        schedules, as dockerd's, which wait for the exit's handling under the container's lock."""
        watcher = self.c.watcher(cid)
        if watcher is not None and not watcher.done() and not self._policy(cid).none:
            await asyncio.wait([watcher])
        return self.restarting(cid)

    def _policy(self, cid: str) -> Policy:
        rec = self.c.records.get(cid)
        return Policy.of(rec.host_config) if rec is not None else Policy()

    async def _persist(self, cid: str) -> None:
        if self._policy(cid).none and self.c.ctl.store.get(KIND_RESTART, cid) is None:
            return
        async with self.c.ctl.store.transaction() as tx:
            tx.put(KIND_RESTART, cid, {"id": cid, **self._of(cid).to_json()})

    def load(self) -> None:
        for data in self.c.ctl.store.list(KIND_RESTART):
            self.state[data["id"]] = Backoff(count=int(data.get("count") or 0), stopped=bool(data.get("stopped")),
                                             canceled=bool(data.get("canceled")))

    # -- the user's acts ----------------------------------------------------------------
    async def user_start(self, cid: str, by_policy: bool = False) -> None:
        """A start or restart by the user: a new restart manager, RestartCount 0."""
        if by_policy:
            return
        self._cancel_pending(cid)
        old = self.state.pop(cid, None)
        if old is not None and (old.count or old.stopped or old.canceled):
            self.state[cid] = Backoff()
            await self._persist(cid)

    async def user_stop(self, cid: str, signal: str | int | None = None) -> bool:
        """Before a stop (signal None) or kill is sent. True if it met a restart waiting
        for its turn (dockerd's Restarting container): cancelled, nothing left to signal."""
        state = self._of(cid)
        stop_signal = (self.c.records[cid].config.get("StopSignal") or "") if cid in self.c.records else ""
        if signal is None or not stop_signal or _same_signal(signal, stop_signal) or _same_signal(signal, "KILL"):
            state.canceled = True
        state.stopped = True
        await self._persist(cid)
        if self._cancel_pending(cid):
            return True
        task = self.starting.get(cid)
        if task is None:
            return False
        self.late[cid] = signal  # done once it is started, before the user's call returns
        await asyncio.wait([task])
        return True

    def _cancel_pending(self, cid: str) -> bool:
        task = self.pending.pop(cid, None)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def forget(self, cid: str) -> None:
        self._cancel_pending(cid)
        if self.state.pop(cid, None) is not None and self.c.ctl.store.get(KIND_RESTART, cid) is not None:
            async with self.c.ctl.store.transaction() as tx:
                tx.delete(KIND_RESTART, cid)

    # -- the daemon's ---------------------------------------------------------------------
    async def exited(self, cid: str) -> bool:
        """A run ended (its endpoints released): schedule the restart its policy asks for."""
        policy = self._policy(cid)
        if policy.none or cid not in self.c.records:
            return False
        st = self.c.state(cid)
        ran_for = (st.finished_at or time.time()) - (st.started_at or 0)
        delay = self._of(cid).decide(policy, st.exit_code, ran_for)
        if delay is None:
            return False
        await self._persist(cid)
        self.pending[cid] = asyncio.get_running_loop().create_task(self._restart_after(cid, delay))
        return True

    async def _restart_after(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.pending.get(cid) is asyncio.current_task():
            del self.pending[cid]
        self.starting[cid] = asyncio.current_task()  # type: ignore[assignment]
        try:
            await self.c.start(cid, by_policy=True)
        except ShoalError as exc:  # as dockerd: logged, the container stays exited
            log.warning("container %s: restart by its policy failed: %s", cid[:12], exc)
        finally:
            self.starting.pop(cid, None)
        if cid not in self.late:
            return
        signal = self.late.pop(cid)
        try:  # a user's stop or kill came while it was being started: it goes down now
            await (self.c.stop(cid) if signal is None else self.c.kill(cid, str(signal)))
        except ShoalError as exc:
            log.warning("container %s: stop after its restart failed: %s", cid[:12], exc)

    async def boot(self) -> None:
        """At shoald's start: the containers that are down and that their policy brings back."""
        for cid, rec in list(self.c.records.items()):
            policy, st = Policy.of(rec.host_config), self.c.state(cid)
            state = self.state.get(cid, Backoff())
            if policy.none or st.running or st.started_at is None:
                continue
            if not wants_restart(policy, st.exit_code, state.stopped, state.count):
                continue
            try:
                await self.c.start(cid)  # dockerd resets the restart manager here too
            except ShoalError as exc:
                log.warning("container %s: not restarted at shoald's start: %s", cid[:12], exc)

    async def through_restarts(self, cid: str, code: int) -> int:
        """`wait` for not-running as dockerd means it: a container its policy restarts is
        still running (State.Running stays true while a restart waits), so the wait goes on
        through its restarts, to the exit that no restart follows."""
        while not self._policy(cid).none and cid in self.c.records:
            watcher = self.c.watcher(cid)  # this exit's handling decides on a restart
            if watcher is not None and not watcher.done():
                await asyncio.wait([watcher])
            task = self.pending.get(cid)
            if task is not None and not task.done():
                await asyncio.wait([task])
            if cid not in self.c.records or not self.c.state(cid).running:
                break
            code = await self.c.runtime.wait(cid, "not-running")
        return self.c.state(cid).exit_code if cid in self.c.records else code

    def summary(self, cid: str, status: str) -> dict[str, str]:
        """`docker ps`'s State and Status while a restart waits: "Restarting (CODE) ... ago"."""
        if self.restarting(cid):
            return {"State": "restarting", "Status": status.replace("Exited", "Restarting", 1)}
        return {"Status": status}

    def state_json(self, cid: str, state: dict[str, Any]) -> dict[str, Any]:
        """inspect's State while a restart waits: dockerd's Restarting (Running stays true)."""
        if self.restarting(cid):
            return {**state, "Status": "restarting", "Restarting": True, "Running": True}
        return state


def _same_signal(a: str | int, b: str | int) -> bool:
    try:
        return signal_number(a) == signal_number(b)
    except ShoalError:
        return False
