"""daemon.timings: exclusive time per layer, nested and concurrent calls, background apart."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shoal.api.app import App, Route
from shoal.api.http import json_response
from shoal.daemon.timings import Timed, TimedStore, Timings


class Clock:
    """Time moves only when a fake layer says it spent some."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def spend(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # let the other task run in between


class FakeStore:
    def __init__(self, clock: Clock) -> None:
        self.clock, self.commits = clock, 0

    def get(self, kind: str, key: str) -> dict:
        self.clock.now += 0.5
        return {"kind": kind, "key": key}

    @contextlib.asynccontextmanager
    async def transaction(self):
        await self.clock.spend(1)
        yield []
        await self.clock.spend(2)
        self.commits += 1


class FakeIpam:
    """Persists through the store, as a cluster's IPAM does: its store time is not its own."""

    def __init__(self, clock: Clock, store) -> None:
        self.clock, self.store = clock, store

    async def request_pool(self) -> str:
        await self.clock.spend(3)
        async with self.store.transaction():
            await self.clock.spend(10)  # the caller's block: IPAM's own time
        return "pool"


def cat(snap: dict, name: str) -> tuple[float, int]:
    c = snap["Categories"][name]
    return c["Seconds"], c["Calls"]


def layers(clock: Clock, timings: Timings):
    store = TimedStore(FakeStore(clock), "store", timings)
    ipam = Timed(FakeIpam(clock, store), "ipam", timings)
    return store, ipam


def test_nested_call_time_is_subtracted_from_the_outer():
    clock = Clock()
    timings = Timings(clock)
    store, ipam = layers(clock, timings)

    async def request():
        frame = timings.start("api")
        await clock.spend(4)  # controller logic
        assert await ipam.request_pool() == "pool"
        store.get("network", "n1")
        timings.stop(frame)

    asyncio.run(request())
    snap = timings.snapshot()
    assert snap["Requests"] == 1
    assert cat(snap, "api") == (20.5, 1)
    assert cat(snap, "ipam") == (13, 1)
    assert cat(snap, "store") == (3.5, 3)  # opening, commit, get
    assert cat(snap, "other") == (4, 1)
    parts = sum(cat(snap, n)[0] for n in ("store", "ipam", "kernel", "firewall", "runtime", "dns", "other"))
    assert parts == pytest.approx(cat(snap, "api")[0])
    # per method too, exclusive alike: the next slowest call is visible, not only its layer
    assert snap["Methods"] == {
        "ipam.request_pool": {"Seconds": 13, "Calls": 1},
        "store.transaction": {"Seconds": 1, "Calls": 1},
        "store.commit": {"Seconds": 2, "Calls": 1},
        "store.get": {"Seconds": 0.5, "Calls": 1},
    }


def test_two_concurrent_requests_keep_their_own_stacks():
    """B runs while A waits inside IPAM: B's store call is B's, not nested in A's IPAM
    call (wall time, so A's IPAM call does include the time it waited)."""
    clock = Clock()
    timings = Timings(clock)
    store = TimedStore(FakeStore(clock), "store", timings)
    a_inside, b_done = asyncio.Event(), asyncio.Event()

    class WaitingIpam:
        async def request_pool(self) -> None:
            clock.now += 1
            a_inside.set()
            await b_done.wait()
            clock.now += 1

    ipam = Timed(WaitingIpam(), "ipam", timings)

    async def a():
        frame = timings.start("api")
        await ipam.request_pool()
        timings.stop(frame)

    async def b():
        await a_inside.wait()
        frame = timings.start("api")
        store.get("n", "1")
        clock.now += 2
        timings.stop(frame)
        b_done.set()

    async def both():
        await asyncio.gather(a(), b())

    asyncio.run(both())
    snap = timings.snapshot()
    assert snap["Requests"] == 2
    assert cat(snap, "ipam") == (4.5, 1)  # t=0 to t=4.5, nothing nested in it
    assert cat(snap, "store") == (0.5, 1)
    assert cat(snap, "other") == (2, 2)  # all of it B's
    assert cat(snap, "api") == (7, 2)  # A 4.5 + B 2.5


def test_calls_outside_requests_and_in_spawned_tasks_are_background():
    clock = Clock()
    timings = Timings(clock)
    store, _ = layers(clock, timings)

    async def main():
        store.get("a", "b")  # restore, self-heal: no request
        frame = timings.start("api")
        task = asyncio.get_running_loop().create_task(_later(store))  # inherits the request's context
        await asyncio.sleep(0)
        timings.stop(frame)
        await task

    asyncio.run(main())
    snap = timings.snapshot()
    assert cat(snap, "store") == (0, 0)
    assert snap["Background"]["store"] == {"Seconds": 1.0, "Calls": 2}


async def _later(store) -> None:
    await asyncio.sleep(0)
    store.get("c", "d")


def test_a_failing_call_is_timed_and_its_error_passes():
    clock = Clock()
    timings = Timings(clock)

    class Boom:
        async def create(self) -> None:
            await clock.spend(2)
            raise ValueError("no")

    boom = Timed(Boom(), "kernel", timings)

    async def main():
        frame = timings.start("api")
        with pytest.raises(ValueError):
            await boom.create()
        timings.stop(frame)

    asyncio.run(main())
    assert cat(timings.snapshot(), "kernel") == (2, 1)


def test_attributes_and_private_names_pass_through():
    class Target:
        limit = 5

        def __init__(self) -> None:
            self.items = [1]

        def _inner(self) -> str:
            return "x"

    t = Timed(Target(), "runtime", Timings())
    assert t.limit == 5 and t.items == [1] and t._inner() == "x"


def test_app_times_requests_but_not_the_timings_route():
    timings = Timings()

    async def ok(req):
        return json_response({})

    app = App([Route("GET", "/a", ok), Route("GET", "/shoal/timings", ok, timed=False)], clock=timings)

    class Req:
        method, query, version, params = "GET", [], "", {}

        def __init__(self, path: str) -> None:
            self.path = path

        async def read_body(self, limit: int) -> bytes:
            return b""

    async def main():
        await app(Req("/a"))
        await app(Req("/shoal/timings"))
        await app(Req("/v1.41/a"))

    asyncio.run(main())
    assert timings.snapshot()["Requests"] == 2
