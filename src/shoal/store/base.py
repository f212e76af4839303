"""The store protocol shared by the sqlite, memory and (later) etcd backends."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class Transaction(Protocol):
    """Writes collected here land together or not at all."""

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, kind: str, key: str) -> None: ...


class Store(Protocol):
    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> list[dict[str, Any]]: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def close(self) -> None: ...
