"""The invariant checker: read the truth on every side and report every difference.

shoal keeps one fact in many places: the store, the controller's live objects, the
kernel (links, addresses, namespaces), nftables, the held host ports, the runtime and
the embedded DNS. Each path that changes them is tested by hand; this module is what
finds the state no test thought of (a forced removal that left a DNAT element, a veth
deleted from outside). It runs after every step of the model-based tests, and serves
`shoal system check` (GET /shoal/check).

The store is the source of truth; the checks say how every other side differs from it.
A check changes nothing; it holds container changes off while it reads (an exit that the
container's watcher has not released yet can still show for a moment).

- Finding: one difference, with the area it belongs to and whether `repair` can fix it.
- check(box): every finding, in a stable order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shoal.controller.containers import KIND_CONTAINER
from shoal.controller.controller import KIND_NETWORK, Controller
from shoal.controller.endpoints import KIND_ENDPOINT, KIND_SANDBOX
from shoal.controller.firewalling import networks_here, state_of
from shoal.controller.publishing import mappings
from shoal.errors import NotFound
from shoal.firewall import State
from shoal.firewall.elements import diff, elements
from shoal.ipam import LOCAL_DEFAULT
from shoal.kernel import KernelError
from shoal.model import Container, Endpoint, Network, Sandbox

if TYPE_CHECKING:
    from shoal.controller.containers import Containers


@dataclass(frozen=True)
class Finding:
    """`area`: store, endpoints, ipam, ports, firewall, kernel, runtime or dns."""

    area: str
    subject: str
    problem: str
    repairable: bool = False

    def to_json(self) -> dict:
        return {"Area": self.area, "Subject": self.subject, "Problem": self.problem,
                "Repairable": self.repairable}


def running(box: Containers, cid: str) -> bool:
    """A record the runtime has lost is not running (the runtime check reports it)."""
    try:
        return box.state(cid).running
    except NotFound:
        return False


def _net(n: Network) -> str:
    return f"network {n.name} ({n.id[:12]})"


def _ctr(box: Containers, cid: str) -> str:
    rec, sb = box.records.get(cid), box.ctl.sandboxes.get(cid)
    if rec is None and sb is not None and sb.external:
        return f"CNI attachment {cid[:12]}"
    return f"container {rec.name} ({cid[:12]})" if rec else f"container {cid[:12]}"


async def check(box: Containers) -> list[Finding]:
    """With every container change held off (`Containers.quiet`) and, for the kernel
    part, the controller's lock: a consistent view, at the cost of changes waiting for
    the check (tens of milliseconds with a thousand containers)."""
    ctl = box.ctl
    async with box.quiet():
        out = _store(ctl, box) + _lifecycle(ctl, box) + await _ipam(ctl)
        out += _ports(ctl, box) + await _firewall(ctl, box)
        async with ctl.lock:  # networks and endpoints do not change under the kernel check
            out += await _kernel(ctl)
        out += await _runtime(box) + _dns(ctl, box)
        for watcher in ctl.side_watchers:  # what others' firewalls need of ours (DOCKER-USER)
            out += [Finding("firewall", subject, problem, repairable=True) for subject, problem in await watcher.findings()]
    return out


# -- store against memory ----------------------------------------------------------------
def _store(ctl: Controller, box: Containers) -> list[Finding]:
    out = []
    local = {k: v for k, v in ctl.networks.items() if v.scope != "global"}
    for kind, loader, memory in (
        (KIND_NETWORK, Network.from_dict, local), (KIND_ENDPOINT, Endpoint.from_dict, ctl.endpoints),
        (KIND_SANDBOX, Sandbox.from_dict, ctl.sandboxes), (KIND_CONTAINER, Container.from_dict, box.records),
    ):
        stored = {d.get("id", ""): loader(d) for d in ctl.store.list(kind)}
        for key in sorted(set(stored) | set(memory)):
            if key not in memory:
                out.append(Finding("store", f"{kind} {key[:12]}", "in the store but not live (restart shoald)"))
            elif key not in stored:
                out.append(Finding("store", f"{kind} {key[:12]}", "live but not in the store (restart shoald)"))
            elif stored[key] != memory[key]:
                out.append(Finding("store", f"{kind} {key[:12]}", "live record differs from the store's"))
    return out


# -- sandboxes, endpoints and containers ---------------------------------------------------
def _lifecycle(ctl: Controller, box: Containers) -> list[Finding]:
    out = []
    for ep in ctl.endpoints.values():
        net = ctl.networks.get(ep.network_id)
        who = f"endpoint {ep.name} ({ep.id[:12]})"
        if net is None:
            out.append(Finding("endpoints", who, f"its network {ep.network_id[:12]} does not exist"))
            continue
        sb = ctl.sandboxes.get(ep.sandbox_id)
        if sb is None:
            out.append(Finding("endpoints", who, "its sandbox does not exist"))
        elif sb.external:  # another runtime's container: no record of ours to run
            pass
        elif ep.sandbox_id not in box.records:
            out.append(Finding("endpoints", who, "belongs to no container", repairable=True))
        elif not running(box, ep.sandbox_id):
            out.append(Finding("endpoints", who, f"on {net.name}, but {_ctr(box, ep.sandbox_id)} is not running",
                               repairable=True))
        out += _addresses_fit(net, ep, who)
    for sid in sorted({s for s, sb in ctl.sandboxes.items() if not sb.external} - set(box.records)):
        out.append(Finding("endpoints", f"sandbox {sid[:12]}", "belongs to no container"))
    for cid in sorted(set(box.records) - set(ctl.sandboxes)):
        out.append(Finding("endpoints", _ctr(box, cid), "has no sandbox (network namespace)"))
    for rec in box.records.values():
        if running(box, rec.id):
            out += _attached(ctl, box, rec)
    return out + _duplicates(ctl)


def _addresses_fit(net: Network, ep: Endpoint, who: str) -> list[Finding]:
    out = []
    for cidr in (ep.ipv4, ep.ipv6):
        if cidr and net.scope != "global" and net.config_for(cidr) is None:
            out.append(Finding("endpoints", who, f"address {cidr} is in no subnet of {net.name}"))
    return out


def _attached(ctl: Controller, box: Containers, rec: Container) -> list[Finding]:
    """A running container has an endpoint on each network its record names, and no other."""
    want = set()
    for req in rec.networks:
        try:
            want.add(ctl.find_network(req.network).id)
        except NotFound:
            pass
    have = {e.network_id for e in ctl.endpoints_in(rec.id)}
    out = []
    for nid in sorted(want - have):
        out.append(Finding("endpoints", _ctr(box, rec.id), f"running but not attached to {_net(ctl.networks[nid])}"))
    for nid in sorted(have - want):
        name = _net(ctl.networks[nid]) if nid in ctl.networks else nid[:12]
        out.append(Finding("endpoints", _ctr(box, rec.id), f"attached to {name}, which its record does not name"))
    return out


def _duplicates(ctl: Controller) -> list[Finding]:
    seen: dict[tuple[str, str], Endpoint] = {}
    out = []
    for ep in ctl.endpoints.values():
        for cidr in (ep.ipv4, ep.ipv6):
            if not cidr:
                continue
            key = (ep.network_id, cidr.split("/")[0])
            other = seen.setdefault(key, ep)
            if other is not ep:
                out.append(Finding("endpoints", f"address {key[1]}",
                                   f"held by two endpoints: {other.name} and {ep.name}"))
    return out


# -- IPAM ----------------------------------------------------------------------------------
async def _ipam(ctl: Controller) -> list[Finding]:
    """Local pools against the networks and endpoints that own addresses in them."""
    held = await ctl.ipam.allocations(LOCAL_DEFAULT)
    if held is None:
        return []
    want: dict[str, set[str]] = {}
    for net in ctl.networks.values():
        if net.scope == "global" or ctl.ipam_of(net) is not ctl.ipam:  # another allocator's pools
            continue
        for cfg in net.ipam_configs:
            taken = want.setdefault(cfg.pool_id, set())
            taken.update(a for a in (cfg.gateway, *cfg.aux_addresses.values()) if a)
    for ep in ctl.endpoints.values():
        net = ctl.networks.get(ep.network_id)
        for cidr in (ep.ipv4, ep.ipv6) if net is not None and net.scope != "global" and ctl.ipam_of(net) is ctl.ipam else ():
            cfg = net.config_for(cidr) if cidr else None
            if cfg is not None:
                want.setdefault(cfg.pool_id, set()).add(cidr.split("/")[0])
    out = []
    for pool in sorted(set(want) | set(held)):
        if pool not in held:
            out.append(Finding("ipam", f"pool {pool}", "a network uses it but IPAM does not hold it"))
        elif pool not in want:
            out.append(Finding("ipam", f"pool {pool}", "held by IPAM for no network"))
        else:
            have = {str(ipaddress.ip_address(a)) for a in held[pool]}
            for addr in sorted(have - want[pool]):
                out.append(Finding("ipam", f"pool {pool}", f"address {addr} is taken but no endpoint has it"))
            for addr in sorted(want[pool] - have):
                out.append(Finding("ipam", f"pool {pool}", f"address {addr} is in use but free in IPAM"))
    return out


# -- published ports -------------------------------------------------------------------------
def expected_ports(box: Containers) -> dict[str, set]:
    """owner -> the bindings it should hold: a container's, those of its record while it
    runs; a CNI attachment's (an external sandbox, keyed by its id), those of its record."""
    want = {rec.id: set(rec.ports) for rec in box.records.values() if rec.ports and running(box, rec.id)}
    want.update({sid: set(sb.ports) for sid, sb in box.ctl.sandboxes.items() if sb.external and sb.ports})
    return want


def _ports(ctl: Controller, box: Containers) -> list[Finding]:
    want = expected_ports(box)
    held = {owner: set(bs) for owner, bs in box.publisher.ports.holdings().items()}
    out = []
    for cid in sorted(set(want) | set(held)):
        for b in sorted(held.get(cid, set()) - want.get(cid, set()), key=str):
            out.append(Finding("ports", f"host port {b.proto}/{b.host_ip}:{b.host_port}",
                               f"held for {_ctr(box, cid)}, which does not publish it now", repairable=True))
        for b in sorted(want.get(cid, set()) - held.get(cid, set()), key=str):
            out.append(Finding("ports", f"host port {b.proto}/{b.host_ip}:{b.host_port}",
                               f"published by {_ctr(box, cid)} but not held", repairable=True))
    for cid, bindings in want.items():
        held = {ip for e in ctl.endpoints_in(cid) for ip in e.ips}
        for b in sorted((b for b in bindings if b.container_ip not in held), key=str):
            out.append(Finding("ports", f"host port {b.proto}/{b.host_ip}:{b.host_port}",
                               f"published to {b.container_ip}, an address {_ctr(box, cid)} no longer has"))
    for rec in box.records.values():
        if rec.ports and rec.id not in want:
            out.append(Finding("ports", _ctr(box, rec.id), "not running, but its record still lists published ports",
                               repairable=True))
    return out


# -- firewall ---------------------------------------------------------------------------------
def expected_firewall(ctl: Controller, box: Containers) -> State:
    """The firewall's state as the store says it should be: networks, endpoints, and the
    ports of running containers."""
    base = state_of(ctl)
    ports = []
    for cid, bindings in expected_ports(box).items():
        ports += mappings(ctl, cid, tuple(sorted(bindings, key=str)))
    return State(networks=base.networks, endpoints=base.endpoints, ports=tuple(ports))


async def _firewall(ctl: Controller, box: Containers) -> list[Finding]:
    out = []
    try:
        want = elements(expected_firewall(ctl, box))
    except Exception as exc:  # noqa: BLE001 - a conflict in the expected state is itself a finding
        return [Finding("firewall", "expected state", f"cannot be computed: {exc}")]
    for change in diff(elements(ctl.firewall.state), want):
        what = change.key if change.value is None else f"{change.key} : {change.value}"
        problem = "is missing from the firewall's state" if change.op == "add" else "is in the firewall's state only"
        out.append(Finding("firewall", f"{change.ref[0]} shoal {change.ref[1]}", f"element {what} {problem}",
                           repairable=True))
    for line in await ctl.firewall.drift():
        out.append(Finding("firewall", "kernel tables", line, repairable=True))
    return out


# -- kernel -------------------------------------------------------------------------------------

async def _kernel(ctl: Controller) -> list[Finding]:
    retiring = ctl.kernel.retiring()  # before the dump: one reaped meanwhile is then in neither
    links = {link.name: link for link in await ctl.kernel.links()}
    known = set(ctl.networks) | set(ctl.endpoints)
    out = []
    for link in links.values():
        if link.alias.startswith(ctl.alias_prefix) and link.alias.rsplit(":", 1)[-1] not in known \
                and link.name not in retiring:
            out.append(Finding("kernel", f"link {link.name}", f"marked as shoal's ({link.alias}) but owned by nothing",
                               repairable=True))
    for net in networks_here(ctl):
        eps = [e for e in ctl.endpoints_of(net.id) if e.ifname]  # with an interface (a macvlan port has no host side)
        for p in ctl.driver(net.driver).verify(net, ctl.alias("net", net.id), eps, links):
            out.append(Finding("kernel", _net(net), p.message, repairable=True))
    return out + await _namespaces(ctl)


async def _namespaces(ctl: Controller) -> list[Finding]:
    out = []
    folder = Path(ctl.exec_root) / "netns"
    files = {str(p) for p in folder.iterdir()} if folder.is_dir() else set()
    owned = {sb.path: sb for sb in ctl.sandboxes.values() if sb.path}
    for path in sorted(files - set(owned)):
        out.append(Finding("kernel", f"netns {path}", "no sandbox owns it", repairable=True))
    for path, sb in sorted(owned.items()):
        if sb.external and not await ctl.kernel.netns_alive(path):
            out.append(Finding("kernel", f"attachment {sb.id[:12]}", f"its runtime's namespace {path} is gone "
                               "(no CNI DEL came)", repairable=True))
            continue
        if (path not in files and not sb.external) or not await ctl.kernel.netns_alive(path):
            out.append(Finding("kernel", f"sandbox {sb.id[:12]}", f"its namespace {path} is gone"))
            continue
        out += await _inside(ctl, sb)
    return out


async def _inside(ctl: Controller, sb: Sandbox) -> list[Finding]:
    """Each endpoint's interface in the container's namespace, with its addresses."""
    eps = [e for e in ctl.endpoints_in(sb.id) if e.ifname]
    if not eps:
        return []
    try:
        ifaces = await ctl.kernel.sandbox_addresses(sb.path)
    except (KernelError, OSError) as exc:
        return [Finding("kernel", f"sandbox {sb.id[:12]}", f"cannot read its interfaces: {exc}")]
    out = []
    for ep in eps:
        who = f"endpoint {ep.name} ({ep.id[:12]})"
        if ep.ifname not in ifaces:
            out.append(Finding("kernel", who, f"interface {ep.ifname} is missing in the container", repairable=True))
            continue
        missing = [a for a in (ep.ipv4, ep.ipv6) if a and a not in ifaces[ep.ifname]]
        if missing:
            out.append(Finding("kernel", who, f"{ep.ifname} lacks {', '.join(missing)}", repairable=True))
    return out + await _default_route(ctl, sb)


def expected_gateways(ctl: Controller, sb: Sandbox) -> tuple[Endpoint | None, set[str]]:
    """The endpoint that gives the sandbox its default route, and that route's gateways."""
    ep = ctl.gateway_of(ctl.endpoints_in(sb.id))
    if ep is None or not ep.ifname:
        return None, set()
    net = ctl.networks[ep.network_id]
    if ep.gateways is not None:  # its driver chose them (a plugin's Join)
        return ep, set(ep.gateways)
    return ep, {gw for a in (ep.ipv4, ep.ipv6) if a and (gw := net.gateway_for(a))}


async def _default_route(ctl: Controller, sb: Sandbox) -> list[Finding]:
    ep, want = expected_gateways(ctl, sb)
    if not want:
        return []
    try:
        have = await ctl.kernel.sandbox_gateways(sb.path)
    except (KernelError, OSError):
        return []  # reported above as unreadable
    missing = sorted(want - have)
    if missing:
        return [Finding("kernel", f"sandbox {sb.id[:12]}", f"no default route via {', '.join(missing)} "
                        f"({ep.ifname}, endpoint {ep.name})", repairable=True)]
    return []


# -- runtime and DNS ------------------------------------------------------------------------------
async def _runtime(box: Containers) -> list[Finding]:
    return [Finding("runtime", _ctr(box, cid), problem) for cid, problem in await box.runtime.audit(set(box.records))]


def remote_names(ctl: Controller) -> set[tuple[str, str]]:
    """The names of other hosts' endpoints on global networks (the cluster's peers)."""
    return ctl.cluster.dns_pairs() if ctl.cluster is not None else set()


def _dns(ctl: Controller, box: Containers) -> list[Finding]:
    """Names are served for running containers' endpoints on user networks and for the
    cluster's peers, and only them."""
    want = set()
    for ep in ctl.endpoints.values():
        net = ctl.networks.get(ep.network_id)
        if net is not None and not net.predefined and ep.sandbox_id in box.records \
                and running(box, ep.sandbox_id):
            want.add((net.id, ep.sandbox_id))
    have = box.dns_records.pairs()
    out = []
    for nid, sid in sorted(have - want - remote_names(ctl)):
        out.append(Finding("dns", _ctr(box, sid), f"has a name on {nid[:12]} without an endpoint there",
                           repairable=True))
    for nid, sid in sorted(want - have):
        out.append(Finding("dns", _ctr(box, sid), f"has no name on {nid[:12]}", repairable=True))
    return out


def areas(findings: Iterable[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.area] = counts.get(f.area, 0) + 1
    return counts
