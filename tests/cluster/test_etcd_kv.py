"""EtcdKV against real etcd 3.4 members on 127.0.0.1: the shared behaviours, then what
only a real cluster shows (member loss mid-watch, the first operation after a kill, all
members down, a hung member, recovery with the same client)."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from shoal.store import EtcdKV, StoreUnavailable, open_kv
from shoal.store.kv import Compare, Op
from tests.kvcontract import BEHAVIOURS, Harness, next_events


def run(coro):
    return asyncio.run(coro)


async def _with_kv(cluster, body, **tuning):
    kv = open_kv(cluster.url, **tuning)
    try:
        return await body(kv)
    finally:
        await kv.close()


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
def test_behaviour(etcd1, behaviour):
    async def body(kv):
        await behaviour(Harness(kv, asyncio.sleep))

    run(_with_kv(etcd1, body))


def test_prefix_from_the_url_is_a_namespace(etcd1):
    async def go():
        inner = open_kv(etcd1.url + "/shoal/ns1")
        outer = open_kv(etcd1.url)
        try:
            await inner.put("/k", b"v")
            assert (await outer.get("/shoal/ns1/k")).value == b"v"
            items, _ = await inner.list("")
            assert [i.key for i in items] == ["/k"]
            it = inner.watch("", (await inner.list(""))[1] + 1)
            r = await inner.put("/k2", b"w")
            assert [(e.kv.key, e.kv.mod_revision) for e in await next_events(it, 1)] == [("/k2", r)]
            await it.aclose()
        finally:
            await inner.close()
            await outer.close()

    run(go())


def _member_index(kv: EtcdKV, cluster) -> int:
    return cluster.endpoints.index(kv.endpoints[kv._current])


def test_watch_survives_member_kill_without_loss_or_duplicates(etcd3):
    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        start = await kv.put(h.k("x"), b"0")
        it = kv.watch(h.prefix, start)
        seen = [e.kv.mod_revision for e in await next_events(it, 1)]
        written = [start]
        watched_member = etcd3.members[_member_index(kv, etcd3)]
        for i in range(1, 6):
            written.append(await kv.put(h.k("x"), str(i).encode()))
        watched_member.kill()  # the member serving the watch (and the client's requests)
        for i in range(6, 12):
            written.append(await kv.put(h.k(f"y{i}"), str(i).encode()))
        while len(seen) < len(written):
            seen.extend(e.kv.mod_revision for e in await next_events(it, 1, timeout=10))
        await it.aclose()
        assert seen == written  # in order, none lost, none twice

    run(_with_kv(etcd3, body, watch_idle=1.0))


def test_first_operations_after_the_leader_dies_succeed(etcd3):
    """The client's member is the leader and is killed: put, CAS txn and get all pass."""

    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        leader = etcd3.leader()
        kv._current = etcd3.members.index(leader)
        await kv.put(h.k("warm"), b"1")  # a pooled connection to the leader exists
        leader.kill()
        t0 = time.monotonic()
        won = await kv.txn([Compare.absent(h.k("lock"))], [Op.put(h.k("lock"), b"me")])
        assert won.succeeded
        assert await kv.put(h.k("p"), b"1") > won.revision
        assert (await kv.get(h.k("lock"))).value == b"me"
        assert time.monotonic() - t0 < 5

    run(_with_kv(etcd3, body))


def test_first_cas_after_a_follower_dies_succeeds(etcd3):
    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        leader = etcd3.leader()
        follower = next(m for m in etcd3.members if m is not leader)
        kv._current = etcd3.members.index(follower)
        seen = await kv.txn([Compare.absent(h.k("v"))], [Op.put(h.k("v"), b"1"), Op.get(h.k("v"))])
        follower.kill()
        kv_rev = seen.responses[0][0].mod_revision
        upd = await kv.txn([Compare.at(h.k("v"), kv_rev)], [Op.put(h.k("v"), b"2")])
        assert upd.succeeded

    run(_with_kv(etcd3, body))


def test_all_members_down_fails_fast_then_recovers_with_the_same_client(etcd3):
    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        await kv.put(h.k("before"), b"1")
        for m in etcd3.members:
            m.kill()
        loop = asyncio.get_running_loop()
        for call in (kv.get(h.k("before")), kv.txn([Compare.absent(h.k("l"))], [Op.put(h.k("l"), b"")])):
            t0 = loop.time()
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert loop.time() - t0 < 5.5
            message = str(caught.value)
            assert message.startswith(f"cluster store {etcd3.url}: no member answered (")
            assert "check that etcd is running" in message and caught.value.status == 503
        await asyncio.to_thread(etcd3.start)
        assert (await kv.get(h.k("before"))).value == b"1"
        assert (await kv.txn([Compare.absent(h.k("l"))], [Op.put(h.k("l"), b"")])).succeeded

    run(_with_kv(etcd3, body))


def test_hung_member_guarded_txn_moves_on_unguarded_txn_says_unknown(etcd3):
    """A stopped member accepts connections but never answers: the try times out."""

    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        leader = etcd3.leader()
        member = next(m for m in etcd3.members if m is not leader)
        kv._current = etcd3.members.index(member)
        await kv.put(h.k("warm"), b"1")
        member.proc.send_signal(signal.SIGSTOP)
        try:
            assert (await kv.txn([Compare.absent(h.k("g"))], [Op.put(h.k("g"), b"")])).succeeded
            kv._current = etcd3.members.index(member)
            with pytest.raises(StoreUnavailable, match="outcome of this transaction is unknown"):
                await kv.txn([], [Op.put(h.k("u"), b"")])
            kv._current = etcd3.members.index(member)
            assert await kv.put(h.k("p"), b"1") > 0  # a plain put is retried elsewhere
        finally:
            member.proc.send_signal(signal.SIGCONT)

    run(_with_kv(etcd3, body))


def test_watch_moves_off_a_hung_member(etcd3):
    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        leader = etcd3.leader()
        member = next(m for m in etcd3.members if m is not leader)
        kv._current = etcd3.members.index(member)
        start = await kv.put(h.k("a"), b"0")
        it = kv.watch(h.prefix, start)
        seen = [e.kv.mod_revision for e in await next_events(it, 1)]
        member.proc.send_signal(signal.SIGSTOP)
        try:
            written = [start] + [await kv.put(h.k("a"), str(i).encode()) for i in range(1, 4)]
            while len(seen) < len(written):
                seen.extend(e.kv.mod_revision for e in await next_events(it, 1, timeout=10))
            assert seen == written
        finally:
            member.proc.send_signal(signal.SIGCONT)
            await it.aclose()

    run(_with_kv(etcd3, body, watch_idle=1.0))
