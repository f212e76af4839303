"""Async facade over Netlink: one dedicated thread, so calls are serialised in order.

Slow deletes (a bridge's netdev unregistration waits for RCU, ~30-40 ms) can be handed to
a second thread with its own netlink socket once the link is retired (renamed, down, no
addresses): `retire_link` answers in about a millisecond, `settle` waits for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

from shoal.kernel import adopt, sandbox
from shoal.kernel.base import KernelError
from shoal.kernel.netlink import LinkInfo, Netlink

T = TypeVar("T")
log = logging.getLogger("shoal.kernel")


class Kernel:
    """What drivers and the controller await; see kernel.netlink for semantics."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-kernel")
        self._nl: Netlink | None = None
        self._reaper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-reaper")
        self._reaper_nl: Netlink | None = None
        self._retiring: dict[str, asyncio.Future] = {}  # retired name -> its delete

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

    async def ensure_bridge(self, name: str, *, mtu: int, addresses: list[str], alias: str, mac: str = "") -> bool:
        return await self._run(Netlink.ensure_bridge, name, mtu=mtu, addresses=addresses, alias=alias, mac=mac)

    async def delete_link(self, name: str) -> None:
        await self._run(Netlink.delete_link, name)

    async def retire_link(self, name: str, object_id: str, addresses: Sequence[str] = ()) -> None:
        """Free `name` and `addresses` now and delete the link in the background (see
        Netlink.retire_link); nothing happens to a link whose alias does not name `object_id`."""
        retired = f"shx{secrets.token_hex(6)}"
        if await self._run(Netlink.retire_link, name, retired, object_id, addresses):
            self._reap_later(retired)

    async def retire_veth(self, host: str, netns_path: str, peer: str, object_id: str) -> None:
        """A veth pair out of use at once: the sandbox's end down, without addresses and
        renamed (so the container sees its interface go and the name is free for the next
        connect), the host's end retired; deleting the host's end in the background takes
        both.  A failure half-way falls back to deleting in line, which is whole."""
        retired = f"shx{secrets.token_hex(6)}"
        try:
            if netns_path:  # a sandbox already gone took its end with it
                await self._plain(sandbox.retire_iface, netns_path, peer, retired)
            if await self._run(Netlink.retire_link, host, retired, object_id):
                self._reap_later(retired)
        except (KernelError, OSError):
            await self.delete_link(host)

    async def retire_sandbox_iface(self, netns_path: str, ifname: str) -> None:
        """A link that lives in a sandbox (a macvlan port) out of use at once: down, no
        addresses, renamed; deleted in the background in its namespace (~16 ms a macvlan,
        RCU). A sandbox that is gone took its links with it."""
        retired = f"shx{secrets.token_hex(6)}"
        try:
            if not await self._plain(sandbox.retire_iface, netns_path, ifname, retired):
                return
        except (KernelError, OSError):
            await self.delete_sandbox_iface(netns_path, ifname)
            return
        self._reap_later(f"{netns_path}:{retired}", lambda: self._reap_in(netns_path, retired))

    async def delete_sandbox_iface(self, netns_path: str, ifname: str) -> None:
        await self._plain(sandbox.delete_iface, netns_path, ifname)

    @staticmethod
    def _reap_in(netns_path: str, name: str) -> None:
        try:
            sandbox.delete_iface(netns_path, name)
        except Exception:  # noqa: BLE001 - it goes with its sandbox at the latest
            if sandbox.netns_alive(netns_path):
                log.exception("retired link %s in %s not deleted", name, netns_path)

    async def add_macvlan(self, ifname: str, netns_path: str, *, parent: str, mode: str, mac: str = "") -> str:
        return await self._run(Netlink.add_macvlan, ifname, netns_path, parent=parent, mode=mode, mac=mac)

    async def add_vlan(self, name: str, *, base: str, vlan_id: int, alias: str) -> None:
        await self._run(Netlink.add_vlan, name, base=base, vlan_id=vlan_id, alias=alias)

    async def ensure_stub_parent(self, name: str, *, alias: str, mtu: int) -> str:
        return await self._run(Netlink.ensure_stub_parent, name, alias=alias, mtu=mtu)

    async def has_link_kind(self, kind: str) -> bool:
        return await self._run(Netlink.has_link_kind, kind)

    def _reap_later(self, retired: str, job: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._reaper, job or (lambda: self._reap(retired)))
        self._retiring[retired] = fut
        fut.add_done_callback(lambda _: self._retiring.pop(retired, None))

    def _reap(self, name: str) -> None:
        if self._reaper_nl is None:
            self._reaper_nl = Netlink(self._netns)
        try:
            self._reaper_nl.delete_link(name)
        except Exception:  # noqa: BLE001 - left for restore's stale-link sweep
            log.exception("retired link %s not deleted", name)

    def retiring(self) -> set[str]:
        """Links being deleted in the background: neither stale nor anybody's."""
        return set(self._retiring)

    async def settle(self) -> None:
        """Wait for every background delete (`shoald --cleanup`, shutdown, tests)."""
        pending = list(self._retiring.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def attach_port(self, ifname: str, bridge: str) -> None:
        await self._run(Netlink.attach_port, ifname, bridge)

    async def set_hairpin(self, ifname: str) -> None:
        await self._run(Netlink.set_hairpin, ifname)

    async def set_sysctls(self, values: dict[str, str], missing_ok: bool = False) -> list[str]:
        return await self._run(Netlink.set_sysctls, values, missing_ok)

    async def in_initial_netns(self) -> bool:
        return await self._run(Netlink.in_initial_netns)

    async def add_veth(
        self, host_name: str, peer_name: str, netns_path: str, *, mac: str, mtu: int, bridge: str, alias: str
    ) -> None:
        await self._run(
            Netlink.add_veth, host_name, peer_name, netns_path, mac=mac, mtu=mtu, bridge=bridge, alias=alias
        )

    # -- routed data plane (kernel.routed) ----------------------------------------------
    async def add_routed_veth(self, host: str, peer: str, netns_path: str, *, mac: str, mtu: int, alias: str,
                              addresses: list[str], default_route: bool, routes: list[str]) -> None:
        await self._run(Netlink.add_routed_veth, host, peer, netns_path, mac=mac, mtu=mtu, alias=alias,
                        addresses=addresses, default_route=default_route, routes=routes)

    async def routed_host_routes(self, host: str, addresses: list[str]) -> None:
        await self._run(Netlink.routed_host_routes, host, addresses)

    async def routes_of_proto(self, proto: int) -> list[tuple[str, str, str]]:
        return await self._run(Netlink.routes_of_proto, proto)

    async def delete_routes_inside(self, proto: int, prefixes: list[str]) -> int:
        return await self._run(Netlink.delete_routes_inside, proto, prefixes)

    # -- interfaces made by others (kernel.adopt) ---------------------------------------
    def _host_ns(self) -> str:
        if not self._netns:
            return "/proc/self/ns/net"
        return self._netns if self._netns.startswith("/") else f"/run/netns/{self._netns}"

    async def adopt_iface(self, src: str, netns_path: str, dst: str, *, mac: str, addresses: list[str],
                          gateways: list[str], default_route: bool, routes: list[tuple[str, str]]) -> None:
        """The host's link `src` becomes the sandbox's `dst`, with MAC, addresses, the
        default route (when `default_route`) and `routes`; all or nothing (the link is
        back in the host namespace, named `src`, if any step fails)."""
        await self._run(lambda nl: adopt.move_in(nl._ipr, nl._index(src), src, netns_path))
        await self._plain(adopt.rename_inside, netns_path, src, dst, mac, self._host_ns())
        try:
            await self.configure_iface(netns_path, dst, addresses, gateways, default_route=default_route)
            if routes:
                await self._plain(adopt.add_routes, netns_path, dst, routes)
        except BaseException:
            await self.release_iface(netns_path, dst, src)
            raise

    async def release_iface(self, netns_path: str, ifname: str, src: str) -> None:
        """The sandbox's `ifname` back to the host namespace as `src`; idempotent."""
        await self._plain(adopt.move_out, netns_path, ifname, src, self._host_ns())

    # -- overlay data plane (kernel.vxlan) ---------------------------------------------
    async def ensure_vxlan(self, name: str, *, vni: int, local: str, port: int = 4789, mtu: int, bridge: str,
                           alias: str, mac: str = "") -> bool:
        return await self._run(Netlink.ensure_vxlan, name, vni=vni, local=local, port=port, mtu=mtu,
                               bridge=bridge, alias=alias, mac=mac)

    async def fdb_replace(self, dev: str, mac: str, dst: str) -> None:
        await self._run(Netlink.fdb_replace, dev, mac, dst)

    async def fdb_delete(self, dev: str, mac: str, dst: str = "") -> None:
        await self._run(Netlink.fdb_delete, dev, mac, dst)

    async def fdb_entries(self, dev: str) -> list[tuple[str, str]]:
        return await self._run(Netlink.fdb_entries, dev)

    async def neigh_replace(self, dev: str, ip: str, mac: str) -> None:
        await self._run(Netlink.neigh_replace, dev, ip, mac)

    async def neigh_delete(self, dev: str, ip: str) -> None:
        await self._run(Netlink.neigh_delete, dev, ip)

    async def neigh_entries(self, dev: str) -> list[tuple[str, str]]:
        return await self._run(Netlink.neigh_entries, dev)

    async def device_of_address(self, ip: str) -> LinkInfo | None:
        return await self._run(Netlink.device_of_address, ip)

    async def address_of_device(self, name: str) -> str:
        return await self._run(Netlink.address_of_device, name)

    async def _plain(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def create_netns(self, path: str) -> None:
        await self._plain(sandbox.create_netns, path)

    async def delete_netns(self, path: str) -> None:
        await self._plain(sandbox.delete_netns, path)

    async def netns_alive(self, path: str) -> bool:
        return await self._plain(sandbox.netns_alive, path)

    async def is_netns(self, path: str) -> bool:
        return await self._plain(sandbox.is_netns, path)

    async def sandbox_addresses(self, path: str) -> dict[str, tuple[str, ...]]:
        return await self._plain(sandbox.iface_addresses, path)

    async def sandbox_gateways(self, path: str) -> set[str]:
        return await self._plain(sandbox.default_gateways, path)

    async def sandbox_counters(self, path: str) -> dict[str, dict[str, int]]:
        return await self._plain(sandbox.iface_counters, path)

    async def configure_iface(
        self, netns_path: str, ifname: str, addresses: list[str], gateways: list[str], *, default_route: bool
    ) -> None:
        await self._plain(
            sandbox.configure_iface, netns_path, ifname, addresses, gateways, default_route=default_route
        )

    def close(self) -> None:
        def _close() -> None:
            if self._nl is not None:
                self._nl.close()
                self._nl = None

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)
        self._reaper.shutdown(wait=True)  # the deletes under way finish first
        if self._reaper_nl is not None:
            self._reaper_nl.close()
            self._reaper_nl = None
