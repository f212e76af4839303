"""An IPAM driver that is a remote plugin: libnetwork's IpamDriver.* protocol.

Its errors come in `Error` (not the network driver's `Err`). shoal's own option keys
(`com.shoal.ipam.*`, which tell its allocators whose a claim is) never go to a plugin;
what goes is what dockerd sends: the user's `--ipam-opt`s with RequestPool, the
gateway's RequestAddressType, the endpoint's MAC when the plugin RequiresMACAddress.

A dynamic pool that overlaps a route of the host is held and asked for again, then all
the held ones are released, as libnetwork's requestPoolHelper does (a plugin must hand
out another pool while one is held).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from shoal.errors import ShoalError
from shoal.ipam import Capabilities
from shoal.ipam.api import IPNetwork
from shoal.plugins.client import Adaptor, Plugin, PluginError, string_field

IPAM_DRIVER = "IpamDriver"
PRIVATE = "com.shoal."
MAX_HELD = 64  # pools held while looking for one that does not overlap the host's routes


def _public(options: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (options or {}).items() if not k.startswith(PRIVATE)}


def _text(data: Mapping[str, Any], key: str, verb: str) -> str:
    return string_field(data, key, f"{IPAM_DRIVER}.{verb}")


def _data(data: Mapping[str, Any]) -> dict[str, str]:
    extra = data.get("Data") or {}
    return {str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {}


class RemoteIpam(Adaptor):
    """NAME's allocator; it asks the plugin nothing until first used."""

    KIND, ERROR_FIELD = IPAM_DRIVER, "Error"

    def __init__(self, name: str, get: Callable[[str, str], Awaitable[Plugin]]) -> None:
        self.name = name
        self._get = get
        self._plugin: Plugin | None = None
        self._caps = Capabilities()
        self._spaces = ("", "")

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    async def handshake(self, plugin: Plugin) -> None:
        """GetCapabilities (optional: a plugin without it has none), then the default
        address spaces, as libnetwork registers an IPAM plugin."""
        try:
            caps = await self._raw(plugin, "GetCapabilities", None)
            self._caps = Capabilities(requires_mac_address=bool(caps.get("RequiresMACAddress")),
                                      requires_request_replay=bool(caps.get("RequiresRequestReplay")))
        except PluginError:
            self._caps = Capabilities()
        try:
            spaces = await self._raw(plugin, "GetDefaultAddressSpaces", None)
        except PluginError as exc:
            raise PluginError(f'ipam driver "{self.name}" failed to return default address spaces: {exc.message}') \
                from None
        self._spaces = (_text(spaces, "LocalDefaultAddressSpace", "GetDefaultAddressSpaces"),
                        _text(spaces, "GlobalDefaultAddressSpace", "GetDefaultAddressSpaces"))
        self._plugin = plugin

    async def get_default_address_spaces(self) -> tuple[str, str]:
        await self.ready()
        return self._spaces

    async def request_pool(self, address_space: str, pool: str = "", sub_pool: str = "",
                           options: Mapping[str, str] | None = None, v6: bool = False,
                           exclude: Iterable[IPNetwork] = ()) -> tuple[str, str, dict[str, str]]:
        await self.ready()
        body = {"AddressSpace": address_space, "Pool": pool, "SubPool": sub_pool, "Options": _public(options),
                "V6": v6}
        check = not pool and address_space != self._spaces[1]
        avoid = list(exclude) if check else []
        held: list[str] = []
        try:
            for _ in range(MAX_HELD):
                pool_id, cidr, data = await self._one_pool(body)
                net = ipaddress.ip_network(cidr, strict=False)
                if not any(net.version == e.version and net.overlaps(e) for e in avoid):
                    return pool_id, cidr, data
                held.append(pool_id)  # held, so the plugin hands out another one
            raise PluginError(f"ipam driver {self.name}: {MAX_HELD} pools in a row overlap the host's routes")
        finally:
            for pool_id in held:
                await self._release_quietly(pool_id)

    async def _one_pool(self, body: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        data = await self._call("RequestPool", body)
        pool_id, cidr = _text(data, "PoolID", "RequestPool"), _text(data, "Pool", "RequestPool")
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise PluginError(f"invalid CIDR address: {cidr} (the plugin's RequestPool answer)") from None
        if not pool_id or (net.version == 6) != body["V6"]:
            raise PluginError(f"IpamDriver.RequestPool: the plugin answered no PoolID or a pool of the other "
                              f"IP version: {data}")
        return pool_id, str(ipaddress.ip_interface(cidr).network), _data(data)

    async def _release_quietly(self, pool_id: str) -> None:
        try:
            await self.release_pool(pool_id)
        except ShoalError:
            pass

    async def release_pool(self, pool_id: str, options: Mapping[str, str] | None = None) -> None:
        await self._call("ReleasePool", {"PoolID": pool_id})

    async def request_address(self, pool_id: str, address: str = "",
                              options: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        opts = _public(options)
        data = await self._call("RequestAddress", {"PoolID": pool_id, "Address": address, "Options": opts or None})
        got = _text(data, "Address", "RequestAddress")
        if not got:
            raise PluginError("no address returned")
        try:
            return str(ipaddress.ip_interface(got)), _data(data)
        except ValueError:
            raise PluginError(f"invalid CIDR address: {got} (the plugin's RequestAddress answer)") from None

    async def release_address(self, pool_id: str, address: str) -> None:
        await self._call("ReleaseAddress", {"PoolID": pool_id, "Address": address.split("/")[0]})

    async def pool_status(self, pool_id: str) -> dict[str, int] | None:
        return None

    async def allocations(self, address_space: str) -> dict[str, list[str]] | None:
        return None
