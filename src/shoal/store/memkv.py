"""`MemoryKV`: the KV protocol in memory, with etcd's semantics, for fast unit tests.

It keeps real revisions (one per write, shared by all writes of a txn), per-key
create/mod revision and version, the event history (so a watch can start in the past),
compaction, and leases whose TTL runs on an injectable clock: a test advances its clock
and calls `expire()` (every other call expires due leases first, too), so lease loss is
tested without sleeping. tests/cluster runs the same test body against etcd.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

from shoal.store.kv import (
    Compacted,
    Compare,
    KeyValue,
    LeaseExpired,
    Op,
    StoreError,
    TxnResult,
    WatchEvent,
)


@dataclass
class _Lease:
    ttl: int
    deadline: float
    keys: set[str] = field(default_factory=set)


class MemoryKV:
    """One process's etcd stand-in; nothing is shared between instances."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, url: str = "memory://"):
        self.url = url
        self._clock = clock
        self._data: dict[str, KeyValue] = {}
        self._revision = 1  # etcd starts at 1 with an empty store
        self._compacted = 0
        self._history: list[tuple[int, list[WatchEvent]]] = []
        self._watchers: list[tuple[str, asyncio.Queue[list[WatchEvent]]]] = []
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 0x1000

    @property
    def revision(self) -> int:
        return self._revision

    async def get(self, key: str) -> KeyValue | None:
        self.expire()
        return self._data.get(key)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        self.expire()
        return [self._data[k] for k in sorted(self._data) if k.startswith(prefix)], self._revision

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        return (await self.txn((), [Op.put(key, value, lease)])).revision

    async def delete(self, key: str) -> bool:
        self.expire()
        existed = key in self._data
        await self.txn((), [Op.delete(key)])
        return existed

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        """All compares hold: apply `success`, else `failure`; atomically, one revision."""
        self.expire()
        ok = all(c.holds(self._data.get(c.key)) for c in compares)
        ops = list(success if ok else failure)
        self._check_ops(ops)
        responses: list[tuple[KeyValue, ...]] = []
        events: list[WatchEvent] = []
        rev = self._revision + 1
        for op in ops:
            if op.kind == "get":
                kv = self._data.get(op.key)
                responses.append((kv,) if kv else ())
            elif op.kind == "put":
                events.append(self._apply_put(op, rev))
            else:
                keys = [k for k in self._data if k == op.key or (op.kind == "delete_prefix" and k.startswith(op.key))]
                events.extend(self._apply_delete(k, rev) for k in sorted(keys))
        self._commit(events)
        return TxnResult(ok, self._revision, tuple(responses))

    def _check_ops(self, ops: Sequence[Op]) -> None:
        """Refuse what etcd refuses: a key put twice, or put and deleted, in one txn."""
        puts = [op.key for op in ops if op.kind == "put"]
        if len(set(puts)) != len(puts):
            raise StoreError(f"{self.url}: duplicate key given in txn request")
        for op in ops:
            if op.kind in ("delete", "delete_prefix"):
                if any(k == op.key or (op.kind == "delete_prefix" and k.startswith(op.key)) for k in puts):
                    raise StoreError(f"{self.url}: duplicate key given in txn request")
            if op.kind == "put" and op.lease and op.lease not in self._leases:
                raise LeaseExpired(f"{self.url}: lease {op.lease:x} not found")

    def _apply_put(self, op: Op, rev: int) -> WatchEvent:
        old = self._data.get(op.key)
        if old and old.lease in self._leases:
            self._leases[old.lease].keys.discard(op.key)
        if old:
            kv = replace(old, value=op.value, mod_revision=rev, version=old.version + 1, lease=op.lease)
        else:
            kv = KeyValue(op.key, op.value, rev, rev, 1, op.lease)
        if op.lease:
            self._leases[op.lease].keys.add(op.key)
        self._data[op.key] = kv
        return WatchEvent("put", kv)

    def _apply_delete(self, key: str, rev: int) -> WatchEvent:
        old = self._data.pop(key)
        if old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        return WatchEvent("delete", KeyValue(key, b"", rev, 0, 0))

    def _commit(self, events: list[WatchEvent]) -> None:
        """A txn that changed nothing keeps the revision (as etcd does)."""
        if not events:
            return
        self._revision += 1
        self._history.append((self._revision, events))
        for prefix, queue in self._watchers:
            mine = [e for e in events if e.kv.key.startswith(prefix)]
            if mine:
                queue.put_nowait(mine)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Events under `prefix` with mod_revision >= start_revision (0: from now on)."""
        self.expire()
        if 0 < start_revision < self._compacted:
            raise Compacted(
                f"{self.url}: watch from revision {start_revision}: history before {self._compacted} is compacted; re-list",
                self._compacted,
            )
        queue: asyncio.Queue[list[WatchEvent]] = asyncio.Queue()
        for rev, events in self._history:
            mine = [e for e in events if e.kv.key.startswith(prefix)]
            if rev >= start_revision > 0 and mine:
                queue.put_nowait(mine)
        entry = (prefix, queue)
        self._watchers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(entry)

    async def compact(self, revision: int) -> None:
        """Forget history before `revision`; watches from older revisions raise Compacted."""
        if revision > self._revision:
            raise StoreError(f"{self.url}: compact {revision}: a future revision")
        self._compacted = max(self._compacted, revision)
        self._history = [(rev, events) for rev, events in self._history if rev >= revision]

    async def grant(self, ttl: int) -> int:
        self.expire()
        self._next_lease += 1
        self._leases[self._next_lease] = _Lease(ttl, self._clock() + ttl)
        return self._next_lease

    async def keepalive(self, lease: int) -> int:
        self.expire()
        found = self._leases.get(lease)
        if found is None:
            raise LeaseExpired(f"{self.url}: lease {lease:x} has expired or was revoked")
        found.deadline = self._clock() + found.ttl
        return found.ttl

    async def revoke(self, lease: int) -> None:
        """Delete the lease's keys in one revision; revoking a gone lease is a no-op."""
        self.expire()
        self._drop_lease(lease)

    def expire(self) -> None:
        """Revoke every lease whose TTL ran out on the clock."""
        now = self._clock()
        for lease in [i for i, found in self._leases.items() if found.deadline <= now]:
            self._drop_lease(lease)

    def _drop_lease(self, lease: int) -> None:
        found = self._leases.pop(lease, None)
        if found is None:
            return
        rev = self._revision + 1
        self._commit([self._apply_delete(k, rev) for k in sorted(found.keys) if k in self._data])

    async def close(self) -> None:
        self._watchers.clear()
