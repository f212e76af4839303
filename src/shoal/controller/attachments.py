"""Connecting and disconnecting containers, and settling the cut-short ones at restore.

Kept apart from the lifecycle (controller.containers) so each file stays small; the
methods act on the one Containers object (this is its mixin) and share its locks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from shoal.controller.endpoints import check_mac, check_static_address
from shoal.controller.undo import Undo
from shoal.errors import Forbidden, NotFound, ShoalError
from shoal.model import Container, EndpointRequest

if TYPE_CHECKING:
    from shoal.controller.controller import Controller
    from shoal.controller.publishing import Publisher
    from shoal.dns import DnsRecords, DnsServer

log = logging.getLogger("shoal.containers")


class ContainerNetworks:
    if TYPE_CHECKING:
        ctl: Controller
        records: dict[str, Container]
        publisher: Publisher
        dns: DnsServer | None
        dns_records: DnsRecords
        etc: Any
        etc_root: Any

        def find(self, ref: str) -> Container: ...
        def live(self, cid: str) -> Any: ...
        def state(self, cid: str) -> Any: ...
        def _check_free(self, network: Any, ep: EndpointRequest) -> None: ...
        def _dns_networks(self, eps: list) -> list: ...
        async def _dns_join(self, rec: Container, eps: list) -> bool: ...
        async def _dns_leave(self, cid: str) -> None: ...
        async def _dns_serve(self, rec: Container) -> None: ...
        @staticmethod
        def _resolv_options(rec: Container) -> dict: ...
        async def _save(self, rec: Container) -> None: ...

    async def connect(self, ref: str, network_ref: str, req: EndpointRequest) -> None:
        """Join a running container now; a created one joins at its next start (Docker)."""
        rec = self.find(ref)
        net = self.ctl.find_network(network_ref)
        if rec.network_mode in ("host", "none") or net.driver in ("host", "null"):
            raise Forbidden(f"container sharing network namespace with another container or host "
                            f"cannot be connected to any other network ({rec.network_mode} mode)")
        check_static_address(net, req.ipv4, req.ipv6)
        check_mac(req.mac)
        self._check_free(net, req)
        wanted = dataclasses.replace(req, network=net.name)
        async with self.live(rec.id).lock:
            rec = self._current(rec.id)  # as it is now: a remove or another change may have won the lock
            if any(r.network == net.name for r in rec.networks):
                raise Forbidden(f"endpoint with name {rec.name} already exists in network {net.name}")
            if not self.state(rec.id).running:
                await self._save(dataclasses.replace(rec, networks=rec.networks + (wanted,)))
                return
            undo = Undo()
            try:
                await self._join_running(rec, net, req, undo)
                rec = dataclasses.replace(rec, networks=rec.networks + (wanted,))
                if self.publisher.requests(rec) and not self._ports_on_gateway(rec):
                    old = rec
                    await self.publisher.unpublish(old)  # the new endpoint gives the default route now
                    undo.push("ports", lambda: self.publisher.republish(old))
                    rec = await self._publish_again(dataclasses.replace(rec, ports=()))
                    undo.push("new ports", lambda: self.publisher.unpublish(rec))
                await self._save(rec)
            except BaseException:
                await undo.run()
                raise

    def _current(self, cid: str) -> Container:
        rec = self.records.get(cid)
        if rec is None:
            raise NotFound(f"No such container: {cid}")
        return rec

    def _ports_on_gateway(self, rec: Container) -> bool:
        """Whether the published ports lead to the endpoint that gives the default route."""
        gw = self.ctl.gateway_of(self.ctl.endpoints_in(rec.id))
        if gw is None:
            return not rec.ports
        return bool(rec.ports) and all(b.container_ip in gw.ips for b in rec.ports)

    async def _join_running(self, rec: Container, net: Any, req: EndpointRequest, undo: Undo) -> None:
        ep = await self.ctl.connect(net.id, rec.id, name=rec.name, ipv4=req.ipv4, ipv6=req.ipv6,
                                    mac=req.mac, aliases=req.aliases)
        undo.push("endpoint", lambda: self.ctl.disconnect(net.id, rec.id, force=True))
        served = self._dns_networks(self.ctl.endpoints_in(rec.id))
        was_served = any(e.network_id != net.id for _, e in served)
        undo.push("dns name", lambda: self.dns_records.remove(net.id, rec.id))
        if not was_served:  # the resolver is started for this network only
            undo.push("resolver", lambda: self._dns_leave(rec.id))
        if await self._dns_join(rec, [ep]) and not was_served:
            self.etc.write_resolv(self.etc_root / rec.id, embedded=True, **self._resolv_options(rec))
            undo.push("resolv.conf", lambda: self.etc.write_resolv(self.etc_root / rec.id, embedded=False,
                                                                   **self._resolv_options(rec)))

    async def disconnect(self, ref: str, network_ref: str, force: bool = False) -> None:
        net = self.ctl.find_network(network_ref)
        try:
            rec = self.find(ref)
        except NotFound:
            if not force:
                raise
            await self._disconnect_gone(ref, net)
            return
        if rec.network_mode in ("host", "none"):
            raise Forbidden(f"container cannot be disconnected from the {rec.network_mode} network")
        async with self.live(rec.id).lock:
            rec = self._current(rec.id)
            if not any(r.network == net.name for r in rec.networks):
                raise Forbidden(f"container {rec.id[:12]} is not connected to network {net.name}")
            leaving = [e for e in self.ctl.endpoints_in(rec.id) if e.network_id == net.id]
            after = dataclasses.replace(rec, networks=tuple(r for r in rec.networks if r.network != net.name))
            await self._save(after)  # first: a crash from here on ends after (restore drops the endpoint)
            try:
                if leaving:
                    await self._leave(after, net, leaving[0])
            except BaseException:
                if leaving and any(e.id == leaving[0].id for e in self.ctl.endpoints_in(rec.id)):
                    await self._save(rec)  # the endpoint is still there: back to before
                raise
            if self.records[rec.id] is not after:  # its ports moved
                await self._save(self.records[rec.id])

    async def _leave(self, rec: Container, net: Any, ep: Any) -> None:
        """The endpoint goes, its DNS name first (no answer for an address being given
        back); published ports that led to it move to the endpoint left with the default
        route. A failure before the endpoint went puts the name and the ports back."""
        entry = self.dns_records.entry(net.id, rec.id)
        self.dns_records.remove(net.id, rec.id)
        moves = any(b.container_ip in ep.ips for b in rec.ports)
        try:
            if moves:
                await self.publisher.unpublish(rec)
            await self.ctl.disconnect(net.id, rec.id, force=True)
        except BaseException:
            if entry is not None:
                self.dns_records.add(net.id, net.name, entry)
            if moves:
                await self.publisher.republish(rec)
            raise
        if self.dns is not None and rec.id in self.dns.sandboxes:
            await self._dns_serve(rec)  # what is left may all be internal
        if moves:
            moved = dataclasses.replace(rec, ports=())
            self.records[rec.id] = moved
            try:
                self.records[rec.id] = await self._publish_again(moved)
            except ShoalError as exc:  # the endpoint is gone: the disconnect stands, without them
                log.warning("container %s: published ports not moved after the disconnect: %s", rec.id[:12], exc)

    async def _publish_again(self, rec: Container) -> Container:
        """Published ports go to the container's gateway endpoint; when that one left (or a
        first one came), they are published again on the endpoint that gives the default
        route now, as libnetwork moves external connectivity (sbLeave/sbJoin)."""
        undo = Undo()
        try:
            bindings = await self.publisher.publish(rec, self.ctl.endpoints_in(rec.id), undo)
        except BaseException:
            await undo.run()
            raise
        return dataclasses.replace(rec, ports=bindings)

    async def _disconnect_gone(self, ref: str, net) -> None:  # noqa: ANN001 - model Network
        """`disconnect -f` for a container that no longer exists: drop its stale endpoint."""
        for ep in self.ctl.endpoints_of(net.id):
            if ep.name == ref.lstrip("/") or ep.sandbox_id.startswith(ref):
                self.dns_records.remove(net.id, ep.sandbox_id)
                await self.ctl.disconnect(net.id, ep.sandbox_id, force=True)

    async def _settle_networks(self, rec: Container) -> Container:
        """A connect or disconnect that a crash cut short between the endpoint and the
        container record: an endpoint the record does not name was being connected (it
        goes: before the connect); a network named with no endpoint was being disconnected
        (it leaves the record: after the disconnect)."""
        named = {}
        for req in rec.networks:
            with contextlib.suppress(NotFound):
                named[self.ctl.find_network(req.network).id] = req
        attached = {ep.network_id for ep in self.ctl.endpoints_in(rec.id)}
        for nid in attached - set(named):
            log.warning("container %s: removing the endpoint of a connect cut short", rec.id[:12])
            await self.ctl.disconnect(nid, rec.id, force=True)
        gone = {named[nid].network for nid in set(named) - attached}
        if gone:
            log.warning("container %s: completing a disconnect cut short (%s)", rec.id[:12], ", ".join(sorted(gone)))
            rec = dataclasses.replace(rec, networks=tuple(r for r in rec.networks if r.network not in gone))
            await self._save(rec)
        return rec

