"""Make every side match the store again, live: `shoal system check --repair` and the
daemon's periodic self-heal.

Restore does this once at start; this does the parts that are safe while containers
run. What only a restart can fix (the store disagreeing with live records, IPAM) is
reported, not touched: restore rebuilds those from the store.

- repair(box): the actions taken, one line each.
- heal_kernel(ctl): networks and endpoints whose kernel objects were changed from
  outside, repaired under the controller's lock (what the periodic check runs).
- orphans(box): what removed containers left behind, dropped.
- SelfHeal: the periodic check: orphans, firewall drift (one `nft -j list` per table)
  and the kernel (one link dump), repaired when found; cheap enough for every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from shoal.controller.controller import Controller
from shoal.controller.firewalling import endpoint_config, networks_here
from shoal.controller.invariants import (
    expected_firewall,
    expected_gateways,
    expected_ports,
    remote_names,
    running,
)
from shoal.controller.restore import remove_stale
from shoal.errors import ShoalError
from shoal.kernel import KernelError
from shoal.model import Endpoint, Network
from shoal.model.ports import PortRequest

if TYPE_CHECKING:
    from shoal.controller.containers import Containers

log = logging.getLogger("shoal.repair")


async def repair(box: Containers) -> list[str]:
    """With container changes held off (a start half done must not lose its ports to a
    firewall rewritten from the records)."""
    async with box.quiet():
        done = await gone_attachments(box.ctl)
        done += await _lifecycle(box)
        done += _ports(box)
        done += await _dns(box)
        async with box.ctl.lock:
            done += [f"removed stale {name}" for name in await remove_stale(box.ctl)]
            done += await heal_kernel(box.ctl, inside=True)
        await box.ctl.firewall.apply_state(expected_firewall(box.ctl, box))
        for watcher in box.ctl.side_watchers:
            done += await watcher.repair()
    done.append("rewrote the firewall tables from the store")
    return done


async def _lifecycle(box: Containers) -> list[str]:
    """Endpoints and published ports of containers that do not run are released, as a
    stop would have (the forced removal that once left a DNAT element behind)."""
    ctl, done = box.ctl, []
    stale = {ep.sandbox_id for ep in ctl.endpoints.values() if not external(ctl, ep.sandbox_id)}
    stale |= {rec.id for rec in box.records.values() if rec.ports}
    for cid in sorted(stale):
        if cid in box.records and running(box, cid):
            continue
        if cid in box.records:
            await box.release(cid, held=True)
        else:
            for ep in ctl.endpoints_in(cid):
                await ctl.disconnect(ep.network_id, cid, force=True)
        done.append(f"released the endpoints and ports of stopped or removed container {cid[:12]}")
    return done


def _ports(box: Containers) -> list[str]:
    want = expected_ports(box)
    ports, done = box.publisher.ports, []
    for owner, held in ports.holdings().items():
        if set(held) != want.get(owner, set()):
            ports.release(owner)
            done.append(f"released the host ports held for {owner[:12]}")
    for owner, bindings in want.items():
        if set(ports.holdings().get(owner, ())) == bindings:
            continue
        ports.release(owner)
        for b in sorted(bindings, key=str):
            try:
                ports.allocate(owner, PortRequest(b.container_port, b.proto, b.host_ip, b.host_port), b.container_ip)
            except ShoalError as exc:
                done.append(f"could not hold {b.proto}/{b.host_ip}:{b.host_port} for {owner[:12]}: {exc}")
        done.append(f"held the host ports of {owner[:12]} again")
    return done


async def _dns(box: Containers) -> list[str]:
    ctl, done = box.ctl, []
    live = {(ep.network_id, ep.sandbox_id): ep for ep in ctl.endpoints.values()
            if ep.network_id in ctl.networks and not ctl.networks[ep.network_id].predefined
            and ep.sandbox_id in box.records and running(box, ep.sandbox_id)}
    for nid, sid in sorted(box.dns_records.pairs() - set(live) - remote_names(ctl)):
        box.dns_records.remove(nid, sid)
        done.append(f"removed the DNS name of {sid[:12]} on {nid[:12]}")
    for (nid, sid), ep in sorted(live.items()):
        if (nid, sid) not in box.dns_records.pairs():
            await box.register_dns(box.records[sid], [ep])
            done.append(f"registered the DNS name of {sid[:12]} on {nid[:12]}")
    return done


async def heal_kernel(ctl: Controller, *, inside: bool = False) -> list[str]:
    """Call with `ctl.lock` held. A network's own objects first (restore_network), then
    its endpoints: a veth put back on its recreated bridge, or made again with the same
    name, MAC and addresses when it is gone. `inside`: also what is inside containers (an
    interface's addresses, the default route): only on an explicit repair, because a
    container may change its own networking on purpose (a VPN's default route)."""
    done = []
    links = {link.name: link for link in await ctl.kernel.links()}
    for net in networks_here(ctl):
        try:
            done += await _heal_network(ctl, net, links, inside)
        except Exception as exc:  # noqa: BLE001 - one network must not stop the others
            log.warning("could not repair network %s: %s", net.name, exc)
            done.append(f"could not repair network {net.name}: {exc}")
    return done + (await _default_routes(ctl) if inside else [])


async def _heal_network(ctl: Controller, net: Network, links: dict, inside: bool) -> list[str]:
    driver, alias = ctl.driver(net.driver), ctl.alias("net", net.id)
    eps = [e for e in ctl.endpoints_of(net.id) if e.ifname]  # with an interface (a macvlan port has no host side)
    problems = driver.verify(net, alias, eps, links)
    done = []
    if any(not p.endpoint_id for p in problems):
        await driver.restore_network(net, alias)
        done.append(f"repaired network {net.name}: " + "; ".join(p.message for p in problems if not p.endpoint_id))
    broken = {p.endpoint_id for p in problems if p.endpoint_id}
    if inside:
        broken |= await _broken_inside(ctl, eps)
    for ep in eps:
        if ep.id in broken:
            done.append(await _repair_endpoint(ctl, net, ep))
    return done


async def _default_routes(ctl: Controller) -> list[str]:
    """A default route deleted from inside a container (or lost with its interface) is
    given back through the endpoint that should carry it."""
    done = []
    for sb in ctl.sandboxes.values():
        ep, want = expected_gateways(ctl, sb)
        if not want or sb.is_host:
            continue
        try:
            if want <= await ctl.kernel.sandbox_gateways(sb.path):
                continue
            await ctl.kernel.configure_iface(sb.path, ep.ifname, [], sorted(want), default_route=True)
            done.append(f"gave sandbox {sb.id[:12]} its default route via {', '.join(sorted(want))}")
        except (ShoalError, OSError) as exc:
            done.append(f"could not give sandbox {sb.id[:12]} its default route: {exc}")
    return done


async def _broken_inside(ctl: Controller, eps: list[Endpoint]) -> set[str]:
    """Endpoints whose container-side interface or addresses are gone."""
    out = set()
    for ep in eps:
        sb = ctl.sandboxes.get(ep.sandbox_id)
        if sb is None or sb.is_host or not ep.ifname:
            continue
        try:
            ifaces = await ctl.kernel.sandbox_addresses(sb.path)
        except (KernelError, OSError):
            continue  # the namespace itself is gone: nothing to plumb into
        if ep.ifname not in ifaces or any(a and a not in ifaces[ep.ifname] for a in (ep.ipv4, ep.ipv6)):
            out.add(ep.id)
    return out


async def _repair_endpoint(ctl: Controller, net: Network, ep: Endpoint) -> str:
    sb = ctl.sandboxes[ep.sandbox_id]
    driver = ctl.driver(net.driver)
    first = ctl.gateway_of(ctl.endpoints_in(sb.id))
    try:
        inside = await ctl.kernel.sandbox_addresses(sb.path)
        if driver.capabilities.rebuilds_endpoints and ep.ifname in inside and any(
                a and a not in inside[ep.ifname] for a in (ep.ipv4, ep.ipv6)):
            await driver.leave(net, ep, sb.path)  # half-configured: make it again from scratch
        fixed = await driver.repair_endpoint(net, ep, sb.path, ctl.alias("ep", ep.id),
                                             first is not None and first.id == ep.id)
        if endpoint_config(ctl, net, fixed) is not None and not driver.capabilities.routed:
            await ctl.kernel.set_hairpin(fixed.host_ifname)
    except (ShoalError, OSError) as exc:
        return f"could not repair endpoint {ep.name} on {net.name}: {exc}"
    if fixed != ep:
        async with ctl.store.transaction() as tx:
            tx.put("endpoint", fixed.id, fixed.to_dict())
        ctl.endpoints[fixed.id] = fixed
    return f"repaired endpoint {ep.name} on {net.name}"


def external(ctl: Controller, sandbox_id: str) -> bool:
    """Another runtime's container (a CNI attachment): no record of ours will ever name it."""
    sb = ctl.sandboxes.get(sandbox_id)
    return sb is not None and sb.external


async def gone_attachments(ctl: Controller) -> list[str]:
    """Attachments whose runtime removed the namespace without a CNI DEL: detached."""
    done = []
    for sid, sb in sorted(ctl.sandboxes.items()):
        if sb.external and sb.path and not await ctl.kernel.netns_alive(sb.path):  # (a handoff has none)
            await ctl.delete_sandbox(sid)
            done.append(f"removed the attachments of {sid[:12]}, whose namespace is gone")
    return done


async def orphans(box: Containers) -> list[str]:
    """What removed containers left behind (a release that failed past the point of no
    return): their endpoints, held host ports, DNS names and port mappings. Safe at any
    time without the containers' locks: a removed container's id never comes back, and a
    mapping is only ever added while its address belongs to an endpoint."""
    ctl = box.ctl
    done = await gone_attachments(ctl)
    for ep in [e for e in ctl.endpoints.values() if e.sandbox_id not in box.records and not external(ctl, e.sandbox_id)]:
        await ctl.disconnect(ep.network_id, ep.sandbox_id, force=True)
        done.append(f"removed endpoint {ep.name} of removed container {ep.sandbox_id[:12]}")
    for owner in [o for o in box.publisher.ports.holdings() if o not in box.records and not external(ctl, o)]:
        box.publisher.ports.release(owner)
        done.append(f"released the host ports of removed container {owner[:12]}")
    peers = remote_names(ctl)
    for nid, sid in sorted(p for p in box.dns_records.pairs() if p[1] not in box.records and p not in peers):
        box.dns_records.remove(nid, sid)
        done.append(f"removed the DNS name of removed container {sid[:12]}")
    async with box.creating:  # no create under way: runtime state or a sandbox without a record is left over
        for st in [st for st in box.runtime.list() if st.id not in box.records]:
            await box.runtime.delete(st.id)
            done.append(f"deleted the runtime state of removed container {st.id[:12]}")
        for sid in [s for s in ctl.sandboxes if s not in box.records and not external(ctl, s)]:
            await ctl.delete_sandbox(sid)
            done.append(f"removed the sandbox of removed container {sid[:12]}")
    async with ctl.lock:
        done += [f"removed stale {name}" for name in await remove_stale(ctl)]
        held = {ip for e in ctl.endpoints.values() for ip in e.ips}
        stale = [m for m in ctl.firewall.state.ports if m.container_ip not in held]
        if stale:
            await ctl.firewall.remove_ports(stale)
            done.append(f"removed {len(stale)} port mapping(s) to addresses no endpoint holds")
    return done


class SelfHeal:
    """Every `interval` seconds: rebuild the firewall if its tables drifted, repair the
    kernel objects of networks and endpoints, drop what removed containers left. Logs
    what it did; never raises."""

    def __init__(self, box: Containers, interval: float) -> None:
        self.box, self.ctl, self.interval = box, box.ctl, interval
        self._task: asyncio.Task | None = None
        self.rounds = 0

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.once()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("self-heal round failed")

    async def once(self) -> list[str]:
        """Each part on its own: one that fails is logged and the others still run."""
        self.rounds += 1
        done: list[str] = []
        for part in (self._orphans, self._firewall, self._kernel, self._others):
            try:
                done += await part()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("self-heal: %s failed", part.__name__.strip("_"))
        for line in done:
            log.warning("self-heal: %s", line)
        return done

    async def _orphans(self) -> list[str]:
        return await orphans(self.box)

    async def _others(self) -> list[str]:
        """What other firewalls need of ours (the served plugins' DOCKER-USER rules)."""
        done = []
        for watcher in self.ctl.side_watchers:
            done += await watcher.repair()
        return done

    async def _firewall(self) -> list[str]:
        drift = await self.ctl.firewall.drift()
        if not drift:
            return []
        log.warning("shoal's nftables tables were changed from outside (%s); rebuilding them",
                    "; ".join(drift[:3]) + (" ..." if len(drift) > 3 else ""))
        await self.ctl.firewall.rebuild()
        return ["rebuilt the firewall tables"]

    async def _kernel(self) -> list[str]:
        async with self.ctl.lock:
            return await heal_kernel(self.ctl)
