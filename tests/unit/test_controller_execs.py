"""ExecTable's clean-up policy, with sessions faked: dockerd's (never-started execs go at
stop, finished ones after the retention, all at removal) plus the per-container cap."""

import asyncio
import time

from shoal.controller.execs import ExecTable
from shoal.runtime import ExecSpec


class FakeSession:
    def __init__(self, sid):
        self.id, self.ended = sid, None

    def settle(self):
        return self.ended


class FakeRuntime:
    def __init__(self):
        self.forgotten, self.n = [], 0

    async def exec(self, cid, spec, detach=False, **kw):
        self.n += 1
        return FakeSession(f"s{self.n}")

    def exec_forget(self, sid):
        self.forgotten.append(sid)


def table(keep=3, retention=100.0):
    running, exists = {"c1", "c2"}, {"c1", "c2"}
    rt = FakeRuntime()
    t = ExecTable(rt, running=lambda c: c in running, exists=lambda c: c in exists, keep=keep, retention=retention)
    return t, rt, running, exists


def run(t, cid, ended=None):
    eid = t.create(cid, ExecSpec(args=("true",)), {})
    session = asyncio.run(t.start(eid, detach=True))
    session.ended = ended
    return eid


def test_finished_execs_are_capped_per_container_newest_kept():
    t, rt, _, _ = table(keep=3)
    base = time.time()  # create and start collect too, by the clock
    ids = [run(t, "c1", ended=base + i) for i in range(6)]
    other = run(t, "c2", ended=base)
    t.collect(now=base + 10)
    assert [e for e in ids if e in t._execs] == ids[3:]
    assert other in t._execs and rt.forgotten == ["s1", "s2", "s3"]


def test_retention_running_and_never_started():
    t, rt, running, exists = table(keep=10, retention=100.0)
    base = time.time()
    old = run(t, "c1", ended=base)
    live = run(t, "c1", ended=None)
    pending = t.create("c1", ExecSpec(args=("true",)), {})
    t.collect(now=base + 50)
    assert {old, live, pending} <= set(t._execs)
    t.collect(now=base + 101)
    assert old not in t._execs and live in t._execs and pending in t._execs
    running.discard("c1")  # the container stopped: never-started execs go, as in dockerd's Cleanup
    t.collect(now=base + 102)
    assert pending not in t._execs and live in t._execs
    exists.discard("c1")  # removed: everything goes
    t.collect(now=base + 103)
    assert len(t) == 0
