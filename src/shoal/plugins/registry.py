"""Plugins by name: found and activated once, at first use, as dockerd does.

Activation is `Plugin.Activate`, whose `Implements` list says what the plugin is. dockerd
then runs its handler for every kind implemented, whichever kind was asked for: a
plugin that is both a network driver and an IPAM driver gets the network driver's
GetCapabilities and the IPAM driver's GetCapabilities and GetDefaultAddressSpaces at its
first use, and the call sequence a plugin sees from shoal is the same. A handshake that
fails is tried again at the next use (dockerd keeps such a driver unregistered until it
restarts).

An activated plugin stays known for the daemon's life: a plugin restarted on the same
address simply answers the next call, and its networks are still there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from shoal.errors import InvalidParameter, ShoalError
from shoal.plugins.client import (
    Client,
    Dirs,
    Plugin,
    PluginError,
    PluginNotFound,
    locate,
    with_backoff,
)
from shoal.plugins.driver import RemoteDriver
from shoal.plugins.ipam import RemoteIpam

if TYPE_CHECKING:
    from shoal.kernel import Kernel

NETWORK_DRIVER = "NetworkDriver"
IPAM_DRIVER = "IpamDriver"
log = logging.getLogger("shoal.plugins")


class _Missing(Exception):
    pass


class PluginRegistry:
    """What the controller resolves unknown driver and IPAM names through."""

    def __init__(self, kernel: Kernel, dirs: Dirs | None = None, retry: float = 15.0, timeout: float = 30.0,
                 own: frozenset[str] = frozenset()) -> None:
        """`own`: the plugin names this daemon serves (`--serve-plugins`): asking itself
        would wait on its own lock until the call timed out."""
        self.own = own
        self.dirs = dirs or Dirs()
        self.retry = retry
        self.timeout = timeout
        self._kernel = kernel
        self._plugins: dict[str, Plugin] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._drivers: dict[str, RemoteDriver] = {}
        self._ipams: dict[str, RemoteIpam] = {}

    def driver(self, name: str) -> RemoteDriver:
        """The network driver NAME stands for, not yet asked anything (its networks may
        exist in the store while the plugin is away)."""
        if name not in self._drivers:
            self._drivers[name] = RemoteDriver(name, self.get, self._kernel)
        return self._drivers[name]

    def ipam(self, name: str) -> RemoteIpam:
        if name not in self._ipams:
            self._ipams[name] = RemoteIpam(name, self.get)
        return self._ipams[name]

    async def resolve_driver(self, name: str) -> RemoteDriver:
        driver = self.driver(name)
        await driver.ready()
        return driver

    async def resolve_ipam(self, name: str) -> RemoteIpam:
        ipam = self.ipam(name)
        await ipam.ready()
        return ipam

    async def get(self, name: str, kind: str, retry: float | None = None) -> Plugin:
        """The activated plugin; PluginNotFound when nothing names it within the retry
        time, PluginError when it cannot be activated or is not a `kind`."""
        if name in self.own:
            raise InvalidParameter(f"plugin {name} is served by this shoald itself (--serve-plugins) for dockerd: "
                                   "ask shoald for its own driver instead (-d bridge, -d overlay)")
        plugin = self._plugins.get(name)
        if plugin is None:
            async with self._locks.setdefault(name, asyncio.Lock()):
                plugin = self._plugins.get(name) or await self._activate(name, self.retry if retry is None else retry)
        if kind not in plugin.implements:
            raise PluginError(f"legacy plugin: plugin {name} does not implement {kind} "
                              f"(it implements {', '.join(plugin.implements) or 'nothing'})")
        return plugin

    async def _activate(self, name: str, retry: float) -> Plugin:
        async def find() -> Client:
            address = locate(name, self.dirs)
            if address is None:
                raise _Missing(f"unable to locate plugin {name}")
            return Client(address, self.timeout, retry)

        try:
            client = await with_backoff(f"plugin {name}", find, retry, (_Missing,))
        except _Missing:
            raise PluginNotFound(name) from None
        try:
            manifest = await client.call("Plugin.Activate")
        except PluginError as exc:
            await client.close()
            raise PluginError(f"legacy plugin: {exc.message}") from None
        implements = manifest.get("Implements")
        if not isinstance(implements, list) or not all(isinstance(i, str) for i in implements):
            await client.close()
            raise PluginError(f"legacy plugin: {name}: Plugin.Activate answered no Implements list: {manifest}")
        client.retry = self.retry  # once found, calls wait for it as long as dockerd does
        plugin = Plugin(name, client, tuple(implements))
        self._plugins[name] = plugin
        log.info("plugin %s activated at %s: implements %s", name, client.address.url, ", ".join(implements))
        for kind, handler in ((NETWORK_DRIVER, self.driver), (IPAM_DRIVER, self.ipam)):
            if kind in plugin.implements:
                try:
                    await handler(name).handshake(plugin)
                except PluginError as exc:
                    log.error("plugin %s: %s handshake failed (tried again at its next use): %s",
                              name, kind, exc.message)
        return plugin

    async def warm(self, name: str, kind: str) -> bool:
        """One quick try (no waiting) to activate NAME, for restore: True when it answered."""
        try:
            await self.get(name, kind, retry=0.0)
            handler = self.driver(name) if kind == NETWORK_DRIVER else self.ipam(name)
            await handler.ready()
        except ShoalError as exc:  # not found, not reachable, not answering
            log.warning("plugin %s is not there yet (%s): its networks are looked up again at their next use",
                        name, exc.message)
            return False
        return True

    async def close(self) -> None:
        for plugin in self._plugins.values():
            await plugin.client.close()
