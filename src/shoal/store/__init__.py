"""Persistence: the source of truth for what shoal made.

- Store (store.base): the protocol: get/list by kind, atomic transactions.
- SqliteStore (store.sqlite): the embedded default (one file under the data root).
- MemoryStore (store.memory): the same protocol in memory, for unit tests.

The store holds plain JSON-able dicts, never live objects: the controller owns the
only live Network/Endpoint objects and writes through here before it acknowledges.
Keys are (kind, id); an etcd backend maps them to `/<prefix>/<kind>/<id>` later.
"""

from shoal.store.base import Store, Transaction
from shoal.store.memory import MemoryStore
from shoal.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store", "Transaction"]
