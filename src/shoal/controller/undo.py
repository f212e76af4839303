"""A stack of compensating actions: run in reverse when an operation fails half-way."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("shoal.undo")


class Undo:
    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []

    def push(self, what: str, fn: Callable[[], Any]) -> None:
        self._steps.append((what, fn))

    async def run(self) -> None:
        """Undo everything, newest first; keep going past failures and log them."""
        while self._steps:
            what, fn = self._steps.pop()
            try:
                result = fn()
                if isinstance(result, Awaitable):
                    await result
            except Exception:  # noqa: BLE001 - rollback must continue
                log.exception("rollback step failed: %s", what)

    def clear(self) -> None:
        self._steps.clear()
