"""One set of KV behaviours, run against MemoryKV (tests/unit) and EtcdKV (tests/cluster).

Each behaviour is `async def (h: Harness)`; the harness gives the store, a key prefix of
the test's own (the etcd cluster is shared by the session) and a way to let time pass
(a fake clock for MemoryKV, a real sleep for etcd). Passing both proves the fake equal to
the real thing for what the controller relies on.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from shoal.store.kv import KV, Compacted, Compare, LeaseExpired, Op, StoreError, WatchEvent


@dataclass
class Harness:
    kv: KV
    pass_time: Callable[[float], Awaitable[None]]
    prefix: str = ""

    def __post_init__(self) -> None:
        self.prefix = self.prefix or f"/t-{secrets.token_hex(4)}/"

    def k(self, name: str) -> str:
        return self.prefix + name


async def next_events(it, n: int, timeout: float = 5.0) -> list[WatchEvent]:
    """At least n events from a watch iterator (whole batches), within timeout."""
    out: list[WatchEvent] = []
    while len(out) < n:
        out.extend(await asyncio.wait_for(it.__anext__(), timeout))
    return out


async def crud_revisions(h: Harness) -> None:
    kv = h.kv
    r1 = await kv.put(h.k("b"), b"1")
    got = await kv.get(h.k("b"))
    assert (got.value, got.mod_revision, got.create_revision, got.version) == (b"1", r1, r1, 1)
    r2 = await kv.put(h.k("b"), b"2")
    assert r2 > r1
    got = await kv.get(h.k("b"))
    assert (got.value, got.mod_revision, got.create_revision, got.version) == (b"2", r2, r1, 2)
    r3 = await kv.put(h.k("a"), b"")
    items, rev = await kv.list(h.prefix)
    assert [i.key for i in items] == [h.k("a"), h.k("b")] and rev >= r3
    assert items[0].value == b"" and items[0].version == 1
    assert await kv.get(h.k("nope")) is None
    assert await kv.delete(h.k("b")) is True
    assert await kv.delete(h.k("b")) is False
    assert await kv.get(h.k("b")) is None
    items, rev2 = await kv.list(h.prefix)
    assert [i.key for i in items] == [h.k("a")] and rev2 > rev
    assert (await kv.list(h.prefix + "zz/"))[0] == []


async def txn_cas(h: Harness) -> None:
    kv, key = h.kv, h.k("lock")
    won = await kv.txn([Compare.absent(key)], [Op.put(key, b"me"), Op.get(key)], [Op.get(key)])
    assert won.succeeded and won.responses[0][0].value == b"me"
    assert won.responses[0][0].mod_revision == won.revision
    lost = await kv.txn([Compare.absent(key)], [Op.put(key, b"you")], [Op.get(key), Op.get(h.k("none"))])
    assert not lost.succeeded and lost.responses[0][0].value == b"me" and lost.responses[1] == ()
    assert lost.revision == won.revision  # nothing written
    seen = lost.responses[0][0]
    upd = await kv.txn([Compare.at(key, seen.mod_revision)], [Op.put(key, b"me2")])
    assert upd.succeeded and upd.responses == ()
    stale = await kv.txn([Compare.at(key, seen.mod_revision)], [Op.put(key, b"me3")])
    assert not stale.succeeded
    assert (await kv.get(key)).value == b"me2"
    assert (await kv.txn([Compare(key, "value", "==", b"me2")], [])).succeeded
    assert not (await kv.txn([Compare(h.k("none"), "value", "==", b"")], [])).succeeded
    assert (await kv.txn([Compare(key, "version", ">", 1), Compare(key, "create", "<", upd.revision)], [])).succeeded
    await kv.put(h.k("dir/x"), b"1")
    await kv.put(h.k("dir/y"), b"1")
    cleared = await kv.txn([], [Op.delete_prefix(h.k("dir/")), Op.delete(key)])
    assert cleared.succeeded and (await kv.list(h.prefix))[0] == []
    with pytest.raises(StoreError):
        await kv.txn([], [Op.put(key, b"1"), Op.put(key, b"2")])


async def concurrent_creates(h: Harness) -> None:
    key = h.k("owner")
    results = await asyncio.gather(
        *(h.kv.txn([Compare.absent(key)], [Op.put(key, f"n{i}".encode())]) for i in range(20))
    )
    winners = [i for i, r in enumerate(results) if r.succeeded]
    assert len(winners) == 1
    assert (await h.kv.get(key)).value == f"n{winners[0]}".encode()


async def watch_from_revision(h: Harness) -> None:
    kv = h.kv
    revs = [await kv.put(h.k(f"w{i}"), str(i).encode()) for i in range(5)]
    await kv.put("/elsewhere-" + h.prefix, b"not mine")
    it = kv.watch(h.prefix, revs[2])
    try:
        past = await next_events(it, 3)
        assert [(e.kind, e.kv.key, e.kv.mod_revision) for e in past] == [
            ("put", h.k(f"w{i}"), revs[i]) for i in (2, 3, 4)
        ]
        await kv.delete(h.k("w0"))
        rd = (await kv.list(h.prefix))[1]
        rp = await kv.put(h.k("w1"), b"again")
        live = await next_events(it, 2)
        assert [(e.kind, e.kv.key, e.kv.mod_revision, e.kv.value) for e in live] == [
            ("delete", h.k("w0"), rd, b""), ("put", h.k("w1"), rp, b"again")
        ]
        assert live[1].kv.version == 2
    finally:
        await it.aclose()


async def compaction(h: Harness) -> None:
    kv = h.kv
    first = await kv.put(h.k("c"), b"1")
    last = await kv.put(h.k("c"), b"2")
    await kv.compact(last)
    it = kv.watch(h.prefix, first)
    with pytest.raises(Compacted) as caught:
        await asyncio.wait_for(it.__anext__(), 5)
    assert caught.value.revision == last
    items, rev = await kv.list(h.prefix)  # the caller re-lists, then watches from there
    assert [i.value for i in items] == [b"2"]
    it = kv.watch(h.prefix, rev + 1)
    try:
        r = await kv.put(h.k("c"), b"3")
        assert [e.kv.mod_revision for e in await next_events(it, 1)] == [r]
    finally:
        await it.aclose()


async def lease_expiry(h: Harness) -> None:
    kv = h.kv
    lease = await kv.grant(2)
    await kv.put(h.k("hb"), b"alive", lease=lease)
    await kv.put(h.k("keep"), b"no lease")
    assert (await kv.get(h.k("hb"))).lease == lease
    assert await kv.keepalive(lease) >= 1
    start = (await kv.list(h.prefix))[1] + 1
    it = kv.watch(h.prefix, start)
    try:
        await h.pass_time(2.5)
        gone = await next_events(it, 1, timeout=8)
        assert [(e.kind, e.kv.key) for e in gone] == [("delete", h.k("hb"))]
    finally:
        await it.aclose()
    assert await kv.get(h.k("hb")) is None and await kv.get(h.k("keep")) is not None
    with pytest.raises(LeaseExpired):
        await kv.keepalive(lease)
    with pytest.raises(LeaseExpired):
        await kv.put(h.k("hb"), b"late", lease=lease)


async def lease_revoke(h: Harness) -> None:
    kv = h.kv
    lease = await kv.grant(30)
    await kv.put(h.k("a"), b"1", lease=lease)
    await kv.put(h.k("b"), b"1", lease=lease)
    await kv.put(h.k("c"), b"1", lease=lease)
    await kv.put(h.k("c"), b"detached")  # a put without a lease detaches the key
    await kv.revoke(lease)
    items, _ = await kv.list(h.prefix)
    assert [(i.key, i.lease) for i in items] == [(h.k("c"), 0)]
    await kv.revoke(lease)  # already gone: fine


BEHAVIOURS = [crud_revisions, txn_cas, concurrent_creates, watch_from_revision, compaction, lease_expiry, lease_revoke]
