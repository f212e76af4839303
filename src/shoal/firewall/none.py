"""The `none` backend: tracks the state, touches nothing (no isolation, no published ports)."""

from __future__ import annotations

from shoal.firewall.base import TrackedFirewall
from shoal.firewall.config import State


class NoneFirewall(TrackedFirewall):
    """For hosts where another tool owns the firewall; conflicts are still reported."""

    name = "none"

    async def _commit(self, verb: str, old: State, new: State, *, full: bool) -> None:
        return None

    async def _remove_all(self) -> None:
        return None
