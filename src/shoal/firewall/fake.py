"""An in-memory firewall for unit tests of higher layers (controller, daemon).

- FakeFirewall: records each verb and the batch nftables would have received; `fail_on`
  names a verb to refuse once, as nft would (NftError, state unchanged), to test rollback.
"""

from __future__ import annotations

from shoal.firewall.base import TrackedFirewall
from shoal.firewall.config import State
from shoal.firewall.nft import NftError
from shoal.firewall.ruleset import changes_batch, cleanup_batch, full_batch


class FakeFirewall(TrackedFirewall):
    """`calls` lists verbs in order; `batches` the nft text for each that changed anything."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.batches: list[str] = []
        self.fail_on: str | None = None

    def _maybe_fail(self, verb: str) -> None:
        self.calls.append(verb)
        if self.fail_on == verb:
            self.fail_on = None
            raise NftError(f"{verb}: refused (injected)")

    async def _commit(self, verb: str, old: State, new: State, *, full: bool) -> None:
        self._maybe_fail(verb)
        batch = full_batch(new) if full else changes_batch(self._changes)  # what nft would get
        if batch:
            self.batches.append(batch)

    async def _remove_all(self) -> None:
        self._maybe_fail("cleanup")
        self.batches.append(cleanup_batch())
