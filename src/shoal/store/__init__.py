"""Persistence: the source of truth for what shoal made.

- Store (store.base): the protocol: get/list by kind, atomic transactions.
- SqliteStore (store.sqlite): the embedded default (one file under the data root).
- MemoryStore (store.memory): the same protocol in memory, for unit tests.

The store holds plain JSON-able dicts, never live objects: the controller owns the
only live Network/Endpoint objects and writes through here before it acknowledges.
Keys are (kind, id); an etcd backend maps them to `/<prefix>/<kind>/<id>` later.

The cluster store (multi-host) is a different seam: `KV` (store.kv), an async revisioned
key-value protocol shaped like etcd v3, with `MemoryKV` (store.memkv) for unit tests and
`EtcdKV` (store.etcd) over etcd's JSON gateway; `open_kv` reads `--cluster-store`.
"""

from shoal.store.base import Store, Transaction
from shoal.store.cluster import open_kv
from shoal.store.etcd import EtcdKV
from shoal.store.kv import (
    KV,
    Compacted,
    Compare,
    KeyValue,
    LeaseExpired,
    Op,
    StoreError,
    StoreUnavailable,
    TxnResult,
    WatchEvent,
)
from shoal.store.memkv import MemoryKV
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore

__all__ = [
    "KV",
    "Compacted",
    "Compare",
    "EtcdKV",
    "KeyValue",
    "LeaseExpired",
    "MemoryKV",
    "MemoryStore",
    "Op",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Transaction",
    "TxnResult",
    "WatchEvent",
    "open_kv",
]
