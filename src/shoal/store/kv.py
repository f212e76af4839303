"""The cluster store seam: an async, revisioned key-value protocol shaped like etcd v3.

Multi-host networks, routed L3 and plugins keep their shared state here. The protocol is
etcd's model on purpose (one global revision, per-key create/mod revision and version,
compare-and-swap transactions, prefix watches from a revision, leases), so `MemoryKV`
(store.memkv) can be proven equal to `EtcdKV` (store.etcd) and callers written against
one run on the other. This module is pure: values and the protocol, no I/O.

Keys are text, values bytes. A `list` or `watch` prefix of "" means every key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from shoal.errors import ShoalError, Unavailable

TARGETS = ("version", "mod", "create", "value")
OPS = ("==", "!=", "<", ">")
OP_KINDS = ("put", "delete", "delete_prefix", "get")


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True)
class Compare:
    """One guard of a transaction, evaluated as etcd does.

    A missing key has version, mod and create revision 0; a "value" compare on a missing
    key is always false (etcd cannot tell a missing value from an empty one).
    """

    key: str
    target: str
    op: str
    operand: int | bytes

    def __post_init__(self) -> None:
        if self.target not in TARGETS or self.op not in OPS:
            raise ValueError(f"bad compare {self.target!r} {self.op!r}")
        if (self.target == "value") != isinstance(self.operand, bytes):
            raise ValueError(f"compare on {self.target} needs {'bytes' if self.target == 'value' else 'an int'}")

    @staticmethod
    def absent(key: str) -> Compare:
        """The key does not exist (version == 0): create-if-absent."""
        return Compare(key, "version", "==", 0)

    @staticmethod
    def at(key: str, mod_revision: int) -> Compare:
        """The key is unchanged since it was read at mod_revision (0: still absent)."""
        return Compare(key, "mod", "==", mod_revision)

    def holds(self, kv: KeyValue | None) -> bool:
        """Evaluate against the key's current value (None: missing)."""
        if kv is None and self.target == "value":
            return False
        actual: int | bytes
        if self.target == "value":
            actual = kv.value  # type: ignore[union-attr]
        else:
            field = {"version": "version", "mod": "mod_revision", "create": "create_revision"}[self.target]
            actual = getattr(kv, field) if kv is not None else 0
        operand = self.operand
        return {
            "==": actual == operand,
            "!=": actual != operand,
            "<": actual < operand,  # type: ignore[operator]
            ">": actual > operand,  # type: ignore[operator]
        }[self.op]


@dataclass(frozen=True)
class Op:
    """One operation of a transaction branch."""

    kind: str
    key: str
    value: bytes = b""
    lease: int = 0

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError(f"bad op kind {self.kind!r}")

    @staticmethod
    def put(key: str, value: bytes, lease: int = 0) -> Op:
        return Op("put", key, value, lease)

    @staticmethod
    def delete(key: str) -> Op:
        return Op("delete", key)

    @staticmethod
    def delete_prefix(prefix: str) -> Op:
        return Op("delete_prefix", prefix)

    @staticmethod
    def get(key: str) -> Op:
        return Op("get", key)

    @property
    def writes(self) -> bool:
        return self.kind != "get"


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: tuple[tuple[KeyValue, ...], ...] = ()  # one tuple per "get" op of the branch taken


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "put" | "delete"
    kv: KeyValue  # for a delete: key and mod_revision set, value b""


class StoreUnavailable(Unavailable):
    """No member of the cluster store answered in time (503); the message names the store."""


class StoreError(ShoalError):
    """The store refused a request (a bug on our side, e.g. a key twice in one txn)."""


class Compacted(ShoalError):
    """A watch's start revision is older than the store's history: re-list, then watch again."""

    def __init__(self, message: str, revision: int):
        super().__init__(message)
        self.revision = revision


class LeaseExpired(ShoalError):
    """The lease is gone (expired or revoked); its keys are deleted. Grant a new one."""


def guarded(compares: Sequence[Compare], ops: Sequence[Op]) -> bool:
    """True when applying `ops` makes `compares` false: the txn cannot apply twice.

    A txn that only reads is always safe. Every written key must be pinned by an "==" compare on its version, mod or create
    revision: any write changes the mod revision (and version) of a key, so a retry of an
    applied txn fails its compares instead of writing again. `delete_prefix` is never
    pinned (its keys are not named).
    """
    if not any(op.writes for op in ops):
        return True  # reads only: nothing to apply twice
    pinned = {c.key for c in compares if c.op == "==" and c.target in ("version", "mod", "create")}
    return bool(compares) and all(op.kind in ("put", "delete") and op.key in pinned for op in ops if op.writes)


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for a prefix: the prefix with its last byte below 0xff bumped.

    b"" (all keys) and all-0xff prefixes give b"\\x00", which etcd reads as "to the end".
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class KV(Protocol):
    url: str  # e.g. "etcd://127.0.0.1:2379,127.0.0.1:2380"

    async def get(self, key: str) -> KeyValue | None: ...

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]: ...  # sorted by key; revision read at

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int: ...  # revision

    async def delete(self, key: str) -> bool: ...

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult: ...

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]: ...

    async def grant(self, ttl: int) -> int: ...  # lease id

    async def keepalive(self, lease: int) -> int: ...  # remaining TTL; LeaseExpired when gone

    async def revoke(self, lease: int) -> None: ...

    async def close(self) -> None: ...
