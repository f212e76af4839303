"""The nftables backend: shoal's tables in the host namespace, changed by atomic batches.

- NftFirewall: `apply_state` sends the full ruleset, every other verb only the element
  adds/deletes of its step (nothing at all when there are none).

Batches run on a worker thread so the event loop never waits on them: 0.1-0.3 ms through
libnftables in-process (firewall.libnft), 3-13 ms through the `nft` binary.
If someone flushed or edited the ruleset behind shoal's back, an incremental batch may
fail: the same step is then sent as one full batch of the new state, so one outside
change does not make every later change fail. `drift` reads the tables back to notice
changes that no batch has tripped over yet.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.firewall.base import TrackedFirewall
from shoal.firewall.config import State
from shoal.firewall.libnft import LibNft, default_nft
from shoal.firewall.nft import Nft, NftError
from shoal.firewall.readback import differences, parse
from shoal.firewall.ruleset import TABLES, changes_batch, cleanup_batch, full_batch

log = logging.getLogger("shoal.firewall")


class NftFirewall(TrackedFirewall):
    """`nft` defaults to libnftables in-process (firewall.libnft), else the `nft` binary,
    in the current namespace."""

    name = "nftables"

    def __init__(self, nft: Nft | LibNft | None = None) -> None:
        super().__init__()
        self.nft = nft or default_nft()

    async def _commit(self, verb: str, old: State, new: State, *, full: bool) -> None:
        batch = full_batch(new) if full else changes_batch(self._changes)
        if not batch:
            return
        try:
            await asyncio.to_thread(self.nft.run, batch)
        except NftError as exc:
            if full:
                raise
            # the tables are not what the state says (changed from outside): rebuild them
            # whole; if even that fails, the error is real and the state stays as it was
            log.warning("nft refused the %s batch (%s); rebuilding shoal's tables", verb, exc)
            await asyncio.to_thread(self.nft.run, full_batch(new))

    async def _drift(self) -> list[str]:
        views = {}
        for family in TABLES:
            listing = await asyncio.to_thread(self.nft.list_table, family, as_json=True)
            views[family] = parse(family, listing)
        return differences(self._contents.values, views)

    async def _remove_all(self) -> None:
        await asyncio.to_thread(self.nft.run, cleanup_batch())
