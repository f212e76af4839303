"""MemoryKV: the shared KV behaviours (tests/kvcontract.py) on a fake clock, a dict
model under random operations, and the pure parts of the cluster store seam."""

import asyncio
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import InvalidParameter
from shoal.store import EtcdKV, MemoryKV, open_kv
from shoal.store.cluster import parse_endpoints, parse_store_opts
from shoal.store.etcd_wire import Namespace
from shoal.store.kv import Compacted, Compare, Op, guarded, prefix_end
from tests.kvcontract import BEHAVIOURS, Harness


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def memory_harness() -> Harness:
    clock = FakeClock()
    kv = MemoryKV(clock)

    async def pass_time(seconds: float) -> None:
        clock.now += seconds
        kv.expire()

    return Harness(kv, pass_time)


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
def test_behaviour(behaviour):
    asyncio.run(behaviour(memory_harness()))


def test_lease_lives_while_kept_alive():
    async def go():
        h = memory_harness()
        lease = await h.kv.grant(2)
        await h.kv.put("k", b"v", lease=lease)
        for _ in range(5):
            await h.pass_time(1.5)
            assert await h.kv.keepalive(lease) == 2
        assert await h.kv.get("k") is not None
        await h.pass_time(2)
        assert await h.kv.get("k") is None

    asyncio.run(go())


def test_watch_from_compact_revision_itself_is_served():
    """etcd refuses a start below the compaction only (checked on 3.4.23)."""

    async def go():
        kv = MemoryKV()
        await kv.put("a", b"1")
        r = await kv.put("a", b"2")
        await kv.compact(r)
        it = kv.watch("", r)
        assert [e.kv.mod_revision for e in await it.__anext__()] == [r]
        await it.aclose()
        with pytest.raises(Compacted):
            await kv.watch("", r - 1).__anext__()

    asyncio.run(go())


keys = st.sampled_from(["/a", "/a/b", "/a/c", "/b", "/bb"])
ops = st.one_of(
    st.tuples(st.just("put"), keys, st.binary(max_size=3)),
    st.tuples(st.just("delete"), keys, st.just(b"")),
    st.tuples(st.just("create"), keys, st.binary(max_size=3)),
    st.tuples(st.just("delete_prefix"), st.sampled_from(["/a", "/a/", "/b", ""]), st.just(b"")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ops, max_size=25))
def test_random_ops_match_a_dict(program):
    """Values, versions and revisions follow a plain dict model step by step."""

    async def go():
        kv, model, versions, rev = MemoryKV(), {}, {}, 1
        for kind, key, value in program:
            if kind == "put":
                assert await kv.put(key, value) == rev + 1
                rev, model[key], versions[key] = rev + 1, value, versions.get(key, 0) + 1
            elif kind == "delete":
                assert await kv.delete(key) == (key in model)
                if model.pop(key, None) is not None or key in versions:
                    rev += key in versions
                    versions.pop(key, None)
            elif kind == "create":
                r = await kv.txn([Compare.absent(key)], [Op.put(key, value)])
                assert r.succeeded == (key not in model)
                if r.succeeded:
                    rev, model[key], versions[key] = rev + 1, value, 1
            else:
                gone = [k for k in model if k.startswith(key)]
                await kv.txn([], [Op.delete_prefix(key)])
                rev += bool(gone)
                for k in gone:
                    model.pop(k), versions.pop(k)
            items, at = await kv.list("")
            assert at == rev
            assert {i.key: i.value for i in items} == model
            assert {i.key: i.version for i in items} == versions

    asyncio.run(go())


def test_guarded_rule():
    assert guarded([Compare.absent("k")], [Op.put("k", b"")])
    assert guarded([Compare.at("k", 5)], [Op.delete("k"), Op.get("x")])
    assert not guarded([], [Op.put("k", b"")])
    assert guarded([], [Op.get("k"), Op.get("j")])  # reads only: safe to send again
    assert not guarded([Compare.absent("k")], [Op.put("k", b""), Op.put("j", b"")])
    assert not guarded([Compare("k", "version", ">", 0)], [Op.put("k", b"")])
    assert not guarded([Compare.absent("k")], [Op.delete_prefix("k")])


def test_prefix_end():
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"") == b"\x00" and prefix_end(b"\xff\xff") == b"\x00"
    ns = Namespace("shoal/")
    assert ns.unkey(ns.key("/x")) == "/x"
    assert Namespace().range("") == {"key": "AA==", "range_end": "AA=="}


def test_open_kv_parses_docker_flags(tmp_path):
    assert parse_endpoints("etcd://10.0.0.1:2379,10.0.0.2/shoal/net") == (
        ["10.0.0.1:2379", "10.0.0.2:2379"], "/shoal/net")
    kv = open_kv("etcd://127.0.0.1:1,127.0.0.1:2")
    assert isinstance(kv, EtcdKV) and kv.endpoints == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert kv.url == "etcd://127.0.0.1:1,127.0.0.1:2"
    asyncio.run(kv.close())
    assert isinstance(open_kv("memory://"), MemoryKV)
    assert parse_store_opts(["kv.cacertfile=/x", "discovery.heartbeat=5"]) == {
        "kv.cacertfile": "/x", "discovery.heartbeat": "5"}
    for url in ["consul://h:1", "etcd://h:x", "etcd://a,,b"]:
        with pytest.raises(InvalidParameter):
            open_kv(url)
    with pytest.raises(InvalidParameter, match="no such file"):
        open_kv("etcd://h:1", {k: str(tmp_path / "missing.pem") for k in ("kv.cacertfile", "kv.certfile", "kv.keyfile")})
    with pytest.raises(InvalidParameter, match="unknown cluster-store-opt kv.cafile"):
        open_kv("etcd://h:1", {"kv.cafile": "x"})
    with pytest.raises(InvalidParameter):
        parse_store_opts(["novalue"])


def test_all_members_refusing_fails_fast_with_a_clear_message():
    ports = []
    for _ in range(2):  # free loopback ports: nothing listens there
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"

    async def go():
        kv = open_kv(url)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(Exception) as caught:
            await kv.get("k")
        await kv.close()
        return caught.value, loop.time() - t0

    err, took = asyncio.run(go())
    assert type(err).__name__ == "StoreUnavailable" and err.status == 503
    assert f"cluster store {url}: no member answered" in str(err) and "connection refused" in str(err)
    assert "check that etcd is running" in str(err) and took < 2
