"""An in-memory store for unit tests; `fail_next` injects a write failure."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shoal.errors import ShoalError


class _Tx:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str, str, dict[str, Any] | None]] = []

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.ops.append(("put", kind, key, json.loads(json.dumps(value))))

    def delete(self, kind: str, key: str) -> None:
        self.ops.append(("delete", kind, key, None))


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_next = False

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        value = self.data.get((kind, key))
        return copy.deepcopy(value) if value is not None else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(v) for (k, _), v in sorted(self.data.items()) if k == kind]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        tx = _Tx()
        yield tx
        if self.fail_next:
            self.fail_next = False
            raise ShoalError("store write failed (injected)")
        for op, kind, key, value in tx.ops:
            if op == "put":
                assert value is not None
                self.data[(kind, key)] = value
            else:
                self.data.pop((kind, key), None)

    def write_now(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.data[(kind, key)] = json.loads(json.dumps(value))

    def close(self) -> None:
        pass
