"""Async facade over Netlink: one dedicated thread, so calls are serialised in order."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from shoal.kernel.netlink import LinkInfo, Netlink

T = TypeVar("T")


class Kernel:
    """What drivers and the controller await; see kernel.netlink for semantics."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-kernel")
        self._nl: Netlink | None = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._netlink(), *args, **kwargs))

    def _netlink(self) -> Netlink:
        if self._nl is None:
            self._nl = Netlink(self._netns)
        return self._nl

    async def link(self, name: str) -> LinkInfo | None:
        return await self._run(Netlink.link, name)

    async def links(self) -> list[LinkInfo]:
        return await self._run(Netlink.links)

    async def routes(self) -> list[str]:
        return await self._run(Netlink.routes)

    async def ensure_bridge(self, name: str, *, mtu: int, addresses: list[str], alias: str) -> bool:
        return await self._run(Netlink.ensure_bridge, name, mtu=mtu, addresses=addresses, alias=alias)

    async def delete_link(self, name: str) -> None:
        await self._run(Netlink.delete_link, name)

    def close(self) -> None:
        def _close() -> None:
            if self._nl is not None:
                self._nl.close()
                self._nl = None

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)
