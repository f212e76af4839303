"""Where a request's time goes: exclusive time per layer, for the bench's breakdown (#12).

A median says how slow an operation is, not which step to work on next. The composition
root wraps each layer object (store, IPAM, kernel facade, firewall, runtime, DNS) in
`Timed`, and the API times each request; every timed call's *exclusive* time (its own
duration minus the timed calls made inside it, e.g. IPAM persisting through the store) is
added to its layer. So within one request the layers and "other" (controller logic, lock
waits, serialisation: the request's own exclusive time) add up to the request's total.

Totals only grow (`GET /shoal/timings` is read-only): a reader takes differences, so two
readers never disturb each other. Calls made outside any request (restore, the self-heal
loop, container exit watchers, tasks a request spawned) are kept apart under
"background", so they never inflate a request's layers.

Cost: two perf_counter calls, a context variable and a task lookup per call, a few
microseconds against the milliseconds of the cheapest verb.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any, Callable

LAYERS = ("store", "ipam", "kernel", "firewall", "runtime", "dns")
REQUEST = "api"
OTHER = "other"  # a request's own exclusive time: what no layer accounts for


def _task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop running: start-up code, plain threads
        return None


class Frame:
    """One timed call in progress; `inner` collects the time of the timed calls inside it."""

    __slots__ = ("category", "method", "start", "inner", "task", "in_request", "parent", "token")

    def __init__(self, category: str, start: float, task: asyncio.Task | None,
                 parent: Frame | None, in_request: bool, method: str = "") -> None:
        self.category, self.start, self.task, self.parent = category, start, task, parent
        self.method = method
        self.in_request, self.inner = in_request, 0.0
        self.token: contextvars.Token | None = None


class Timings:
    """Cumulative seconds and calls per category; one per daemon, handed to what needs it.

    The current frame lives in a context variable, so each asyncio task has its own
    stack. A task created inside a timed call inherits its creator's frame; the frame's
    task tells the two apart, and such a call counts as background, not as nested."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._current: contextvars.ContextVar[Frame | None] = contextvars.ContextVar("shoal_timing", default=None)
        names = (REQUEST, *LAYERS, OTHER)
        self._seconds = {n: 0.0 for n in names}
        self._calls = {n: 0 for n in names}
        self._bg_seconds = {n: 0.0 for n in LAYERS}
        self._bg_calls = {n: 0 for n in LAYERS}
        self._methods: dict[str, list[float]] = {}  # "kernel.add_veth" -> [seconds, calls], in requests

    def start(self, category: str, method: str = "") -> Frame:
        task = _task()
        parent = self._current.get()
        if parent is not None and parent.task is not task:
            parent = None  # inherited by a new task: not nested in that call
        in_request = category == REQUEST or (parent is not None and parent.in_request)
        frame = Frame(category, self._clock(), task, parent, in_request, method)
        frame.token = self._current.set(frame)
        return frame

    def stop(self, frame: Frame) -> None:
        elapsed = self._clock() - frame.start
        if frame.token is not None:
            try:
                self._current.reset(frame.token)
            except ValueError:  # stopped in another context (an async generator's close): forget it
                self._current.set(frame.parent)
        if frame.parent is not None:
            frame.parent.inner += elapsed
        own = max(0.0, elapsed - frame.inner)
        category = frame.category
        if category == REQUEST:
            self._seconds[REQUEST] += elapsed
            self._calls[REQUEST] += 1
            self._seconds[OTHER] += own
            self._calls[OTHER] += 1
        elif frame.in_request:
            self._seconds[category] += own
            self._calls[category] += 1
            if frame.method:
                entry = self._methods.setdefault(f"{category}.{frame.method}", [0.0, 0])
                entry[0] += own
                entry[1] += 1
        else:
            self._bg_seconds[category] += own
            self._bg_calls[category] += 1

    def snapshot(self) -> dict[str, Any]:
        """What GET /shoal/timings answers: "api" is the requests' total (inclusive); the
        layers and "other" are exclusive and add up to it."""
        return {
            "Requests": self._calls[REQUEST],
            "Categories": {n: {"Seconds": self._seconds[n], "Calls": self._calls[n]} for n in self._seconds},
            "Background": {n: {"Seconds": self._bg_seconds[n], "Calls": self._bg_calls[n]} for n in self._bg_seconds},
            "Methods": {n: {"Seconds": s, "Calls": c} for n, (s, c) in sorted(self._methods.items())},
        }


class Timed:
    """`target` with every public method's time added to `category` of `timings`.

    Coroutine methods are timed until their result (an executor thread's wait included:
    that is what the caller waits for); plain methods for their call. What
    is not a method (attributes, async generators) passes through untouched."""

    def __init__(self, target: Any, category: str, timings: Timings) -> None:
        self._target, self._category, self._timings = target, category, timings

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or not callable(value) or inspect.isasyncgenfunction(value) or inspect.isclass(value):
            return value
        wrapped = self._wrap(value)
        if inspect.isfunction(getattr(type(self._target), name, None)):
            self.__dict__[name] = wrapped  # a method of the class: wrap it once
        return wrapped

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        timings, category, method = self._timings, self._category, getattr(fn, "__name__", "")
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                frame = timings.start(category, method)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    timings.stop(frame)
            return timed_async

        @functools.wraps(fn)
        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            frame = timings.start(category, method)
            try:
                return fn(*args, **kwargs)
            finally:
                timings.stop(frame)
        return timed_sync


class TimedStore(Timed):
    """A store whose transactions are timed at their opening and their commit only."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        timings, category = self._timings, self._category
        frame = timings.start(category, "transaction")
        try:
            cm = self._target.transaction()
            tx = await cm.__aenter__()
        finally:
            timings.stop(frame)
        try:
            yield tx
        except BaseException as exc:
            frame = timings.start(category)
            try:
                if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
            finally:
                timings.stop(frame)
        else:
            frame = timings.start(category, "commit")
            try:
                await cm.__aexit__(None, None, None)
            finally:
                timings.stop(frame)
