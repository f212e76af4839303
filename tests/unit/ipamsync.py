"""Drive the in-memory allocator's async verbs from plain (and hypothesis) tests.

DefaultIpam never suspends, so a verb's coroutine finishes at its first send; running a
loop per call would make the property tests slow for nothing.
"""

from __future__ import annotations

from typing import Any

from shoal.ipam import LOCAL_DEFAULT, DefaultIpam


def now(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine suspended: not an in-memory allocator")


class SyncIpam:
    """DefaultIpam with each verb run to completion, answering the pool itself."""

    def __init__(self, ipam: DefaultIpam) -> None:
        self.ipam = ipam

    def request_pool(self, subnet: str = "", *, v6: bool = False, ip_range: str = "", reserved=()):
        pool_id, _, _ = now(self.ipam.request_pool(LOCAL_DEFAULT, subnet, ip_range, None, v6, reserved))
        return self.ipam.pool(pool_id)

    def release_pool(self, pool_id: str) -> None:
        now(self.ipam.release_pool(pool_id))

    def request_address(self, pool_id: str, address: str = "") -> str:
        cidr, _ = now(self.ipam.request_address(pool_id, address))
        return cidr.split("/")[0]

    def release_address(self, pool_id: str, address: str) -> None:
        now(self.ipam.release_address(pool_id, address))

    def pools(self):
        return self.ipam.pools()
