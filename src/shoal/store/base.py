"""The local store protocol (sqlite, memory); the cluster store is `store.kv`."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Transaction(Protocol):
    """Writes collected here land together or not at all."""

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, kind: str, key: str) -> None: ...


class Store(Protocol):
    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> list[dict[str, Any]]: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """`async with store.transaction() as tx:` the block's writes land together (and
        durably) when it ends, or not at all if it raises."""

    def write_now(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """One write from synchronous start-up code (before the loop serves anything)."""

    def close(self) -> None: ...
