"""Crash points for tests: the daemon dies at a chosen step of a verb, then restarts.

The claim "a crash at any point converges to before or after an operation" is only as
good as the points tried. With `shoald --fault-dir DIR` (hidden; tests only) the
composition root wraps the kernel, firewall, store and runtime in `Steps`: while the
file DIR/armed exists, every changing call is a numbered step (from 1 again when
DIR/steps is absent), appended to DIR/steps before it runs; when DIR/crash-at holds N, step N exits the process at once
(`os._exit`, as a kill -9 would: no cleanup, no flush) instead of running; when
DIR/fail-at holds N, step N raises instead (an error half-way: the verb must roll back
every step before it).

A test arms the directory around one API call, reads the steps it took, then runs the
same call once per step with crash-at set, restarts shoald without the fault dir, and
checks that the state is the one before or after the call, with nothing leaked.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shoal.errors import ShoalError

READS = frozenset({
    "link", "links", "routes", "netns_alive", "sandbox_addresses", "device_of_address", "address_of_device",
    "in_initial_netns", "fdb_entries", "neigh_entries", "drift", "state", "wait", "audit", "list", "get",
    "logs", "attach", "exec_session", "exec_state", "restore", "resize", "exec_resize", "settle", "retiring",
})


class FaultPlan:
    """The shared counter and the files that steer it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.count = 0

    def step(self, name: str) -> None:
        if not (self.folder / "armed").exists():
            return
        if not (self.folder / "steps").exists():  # a new arming: numbered from 1 again
            self.count = 0
        self.count += 1
        with open(self.folder / "steps", "a") as f:
            f.write(f"{self.count} {name}\n")
        crash = self.folder / "crash-at"
        if crash.exists() and crash.read_text().strip() == str(self.count):
            os._exit(137)
        fail = self.folder / "fail-at"
        if fail.exists() and fail.read_text().strip() == str(self.count):
            raise ShoalError(f"injected failure at step {self.count} ({name})")


class Steps:
    """`target` with each changing coroutine method preceded by a step of `plan`."""

    def __init__(self, target: Any, layer: str, plan: FaultPlan) -> None:
        self._target, self._layer, self._plan = target, layer, plan

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name in READS or name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        async def stepped(*args: Any, **kwargs: Any) -> Any:
            self._plan.step(f"{self._layer}.{name}")
            return await value(*args, **kwargs)

        return stepped


class SteppedStore(Steps):
    """A store whose commits are steps (the crash comes before the commit)."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self._target.transaction() as tx:
            yield tx
            if tx.ops:
                self._plan.step("store.commit")
