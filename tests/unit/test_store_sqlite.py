"""The embedded store: writes commit on their own thread when the block ends, or not at all."""

import asyncio
import threading

import pytest

from shoal.errors import ShoalError
from shoal.store import SqliteStore


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "shoal.db")
    yield s
    s.close()


def test_writes_land_together_at_the_end_of_the_block(store):
    async def go():
        async with store.transaction() as tx:
            tx.put("network", "a", {"id": "a"})
            tx.put("network", "b", {"id": "b"})
            assert store.get("network", "a") is None  # not before the block ends
        assert [d["id"] for d in store.list("network")] == ["a", "b"]
        async with store.transaction() as tx:
            tx.delete("network", "a")
        assert store.get("network", "a") is None and store.get("network", "b") == {"id": "b"}
    asyncio.run(go())


def test_a_block_that_raises_writes_nothing(store):
    async def go():
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                tx.put("network", "a", {"id": "a"})
                raise RuntimeError("half-way")
        assert store.list("network") == []
    asyncio.run(go())


def test_commits_run_off_the_loop_thread_in_order(store, monkeypatch):
    seen = []
    original = store._write

    def spy(ops):
        seen.append((threading.current_thread().name, ops[0][2]))
        original(ops)

    monkeypatch.setattr(store, "_write", spy)

    async def go():
        async def one(i):
            async with store.transaction() as tx:
                tx.put("container", f"{i:03d}", {"i": i})
        await asyncio.gather(*(one(i) for i in range(50)))
        assert len(store.list("container")) == 50
    asyncio.run(go())
    assert all(name.startswith("shoal-store") for name, _ in seen)
    assert [key for _, key in seen] == [f"{i:03d}" for i in range(50)]


def test_failures_say_which_store(store, tmp_path):
    store.write_now("meta", "engine", {"id": "x"})
    assert store.get("meta", "engine") == {"id": "x"}

    async def go():
        store._write = lambda ops: (_ for _ in ()).throw(ShoalError(f"store: write to {store.path} failed: disk"))
        with pytest.raises(ShoalError, match="shoal.db"):
            async with store.transaction() as tx:
                tx.put("network", "a", {})
    asyncio.run(go())
