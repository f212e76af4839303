"""The nftables backend: shoal's tables in the host namespace, changed by atomic batches.

- NftFirewall: `apply_state` sends the full ruleset, every other verb only the element
  adds/deletes of its step (nothing at all when there are none).

`nft` runs on a worker thread so the event loop never waits on it (~15 ms per batch).
If someone flushed the ruleset behind shoal's back, an incremental batch fails with
NftError and `apply_state(firewall.state)` rebuilds everything.
"""

from __future__ import annotations

import asyncio

from shoal.firewall.base import TrackedFirewall
from shoal.firewall.config import State
from shoal.firewall.nft import Nft
from shoal.firewall.ruleset import changes_batch, cleanup_batch, full_batch


class NftFirewall(TrackedFirewall):
    """`nft` defaults to the `nft` binary in the current namespace."""

    name = "nftables"

    def __init__(self, nft: Nft | None = None) -> None:
        super().__init__()
        self.nft = nft or Nft()

    async def _commit(self, verb: str, old: State, new: State, *, full: bool) -> None:
        batch = full_batch(new) if full else changes_batch(self._changes)
        if batch:
            await asyncio.to_thread(self.nft.run, batch)

    async def _remove_all(self) -> None:
        await asyncio.to_thread(self.nft.run, cleanup_batch())
