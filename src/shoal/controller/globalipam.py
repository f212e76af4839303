"""Cluster-wide allocation in the cluster store: subnets, VXLAN ids, endpoint addresses.

Every allocation is a key created with a compare-and-swap (`Compare.absent`), so two
hosts asking at once can never both win; the loser re-reads and tries the next free
value. Subnets also compare a generation key that every claim bumps, because overlap is
a property of the whole set (a /16 and a /24 inside it have different keys).
Addresses are put under the claiming host's lease: when a host dies its addresses come
free once the lease expires, and never before.

Key layout (under the cluster prefix, `/shoal/v1/`, behind any path the store URL has):

    networks/<id>            the network (JSON, as the controller's Network.to_dict)
    names/<name>             network id: names are unique cluster-wide
    subnets/<a.b.c.d-len>    network id                      (+ ipam/generation)
    vni/<n>                  network id
    addresses/<nid>/<ip>     endpoint id, on the holder's lease
    endpoints/<nid>/<eid>    the endpoint as peers need it, on the holder's lease
    members/<nid>            bumped by every endpoint publish (guards network removal)
    hosts/<advertise>        the host (JSON), on its lease
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator

from shoal.errors import Conflict, Forbidden, NotFound, Unavailable
from shoal.store.kv import KV, Compare, KeyValue, Op

GLOBAL_POOL = ipaddress.ip_network("10.0.0.0/8")
GLOBAL_SIZE = 24
VNI_FIRST, VNI_LAST = 256, (1 << 24) - 1
RETRIES = 20


def subnet_key(prefix: str, subnet: str) -> str:
    net = ipaddress.ip_network(subnet)
    return f"{prefix}subnets/{net.network_address}-{net.prefixlen}"


def key_subnet(key: str) -> str:
    return key.rsplit("/", 1)[-1].replace("-", "/")


def free_subnets(claimed: Iterable[ipaddress._BaseNetwork], avoid: Iterable[ipaddress._BaseNetwork]) -> Iterator[str]:
    """Docker's global default pool, 10.0.0.0/8 cut in /24s, less what overlaps."""
    taken = sorted({*claimed, *avoid}, key=lambda n: (n.version, n.network_address))
    taken = [n for n in taken if n.version == 4]
    for candidate in GLOBAL_POOL.subnets(new_prefix=GLOBAL_SIZE):
        if not any(candidate.overlaps(t) for t in taken):
            yield str(candidate)


class GlobalIpam:
    def __init__(self, kv: KV, prefix: str) -> None:
        self.kv = kv
        self.prefix = prefix

    async def _generation(self) -> tuple[int, list[ipaddress._BaseNetwork]]:
        items, _ = await self.kv.list(f"{self.prefix}subnets/")
        gen = await self.kv.get(f"{self.prefix}ipam/generation")
        return (gen.mod_revision if gen else 0), [ipaddress.ip_network(key_subnet(kv.key)) for kv in items]

    async def claim_network(self, network_id: str, name: str, wanted: list[tuple[str, bool]],
                            avoid: list[ipaddress._BaseNetwork],
                            record: Callable[[int, list[str]], bytes], vni_wanted: int = 0) -> tuple[list[str], int]:
        """Claim the name, the subnets (`wanted`: (subnet or "", v6)) and a VNI (the one the
        user gave, or the lowest free), and write the network record, all in one
        transaction; returns (subnets, vni)."""
        for _ in range(RETRIES):
            gen, claimed = await self._generation()
            subnets = self._pick(wanted, claimed, avoid)
            vni = await self._free_vni(vni_wanted)
            compares = [Compare.absent(f"{self.prefix}names/{name}"), Compare.absent(f"{self.prefix}vni/{vni}"),
                        Compare.absent(f"{self.prefix}networks/{network_id}"),
                        _generation_is(f"{self.prefix}ipam/generation", gen)]
            compares += [Compare.absent(subnet_key(self.prefix, s)) for s in subnets]
            ops = [Op.put(f"{self.prefix}names/{name}", network_id.encode()),
                   Op.put(f"{self.prefix}vni/{vni}", network_id.encode()),
                   Op.put(f"{self.prefix}ipam/generation", network_id.encode())]
            ops += [Op.put(subnet_key(self.prefix, s), network_id.encode()) for s in subnets]
            ops.append(Op.put(f"{self.prefix}networks/{network_id}", record(vni, subnets)))
            result = await self.kv.txn(compares, ops, [Op.get(f"{self.prefix}names/{name}")])
            if result.succeeded:
                return subnets, vni
            holder = result.responses[0][0].value if result.responses and result.responses[0] else b""
            if holder == network_id.encode():  # our own write, answered ambiguously and retried
                return subnets, vni
            if holder:
                raise Conflict(f"network with name {name} already exists")
        raise Unavailable("could not claim a subnet in the cluster store: too many concurrent changes; try again")

    def _pick(self, wanted: list[tuple[str, bool]], claimed: list, avoid: list) -> list[str]:
        out: list[str] = []
        others = [*claimed, *avoid]
        for subnet, v6 in wanted:
            if subnet:
                net = ipaddress.ip_network(subnet)
                if any(net.overlaps(o) for o in others if o.version == net.version):
                    raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")
            elif v6:
                raise Forbidden("an IPv6 overlay network needs an explicit --subnet")
            else:
                try:
                    net = ipaddress.ip_network(next(free_subnets(claimed, [*avoid, *map(ipaddress.ip_network, out)])))
                except StopIteration:
                    raise Unavailable("all predefined address pools have been fully subnetted") from None
            out.append(str(net))
            others.append(net)
        return out

    async def _free_vni(self, wanted: int = 0) -> int:
        items, _ = await self.kv.list(f"{self.prefix}vni/")
        used = {int(kv.key.rsplit("/", 1)[-1]) for kv in items}
        if wanted:
            if wanted in used:
                raise Conflict(f"VXLAN id {wanted} is in use by another network: choose another or leave "
                               "com.docker.network.driver.overlay.vxlanid_list out")
            return wanted
        return next(v for v in range(VNI_FIRST, VNI_LAST) if v not in used)

    async def release_network(self, network_id: str, name: str, subnets: list[str], vni: int) -> bool:
        """Delete the network and its claims at once, only while no endpoint exists anywhere:
        every endpoint publish bumps `members/<nid>` (see `publish_endpoint`), so a join that
        lands between our listing and our delete makes the delete fail instead of orphaning
        the endpoint."""
        members = await self.kv.get(f"{self.prefix}members/{network_id}")
        eps, _ = await self.kv.list(f"{self.prefix}endpoints/{network_id}/")
        if eps:
            return False
        ops = [Op.delete(f"{self.prefix}networks/{network_id}"), Op.delete(f"{self.prefix}names/{name}"),
               Op.delete(f"{self.prefix}vni/{vni}"), Op.delete_prefix(f"{self.prefix}addresses/{network_id}/"),
               Op.delete(f"{self.prefix}members/{network_id}"),
               Op.put(f"{self.prefix}ipam/generation", network_id.encode())]
        ops += [Op.delete(subnet_key(self.prefix, s)) for s in subnets]
        guard = _generation_is(f"{self.prefix}members/{network_id}", members.mod_revision if members else 0)
        result = await self.kv.txn([guard], ops)
        return result.succeeded

    async def publish_endpoint(self, network_id: str, endpoint_id: str, record: bytes, lease: int) -> None:
        """The endpoint for its peers, only while the network still exists."""
        net_key = f"{self.prefix}networks/{network_id}"
        ep_key = f"{self.prefix}endpoints/{network_id}/{endpoint_id}"
        members_key = f"{self.prefix}members/{network_id}"
        members = await self.kv.get(members_key)
        members_rev, ep_rev = members.mod_revision if members else 0, 0  # a new endpoint: absent
        for _ in range(RETRIES):
            # every written key pinned: the store may retry this after a lost answer
            compares = [Compare(key=net_key, target="version", op=">", operand=0),
                        _generation_is(members_key, members_rev), _generation_is(ep_key, ep_rev)]
            result = await self.kv.txn(compares, [Op.put(ep_key, record, lease=lease),
                                                  Op.put(members_key, endpoint_id.encode())],
                                       [Op.get(net_key), Op.get(ep_key), Op.get(members_key)])
            if result.succeeded:
                return
            net_now, ep_now, members_now = result.responses if len(result.responses) == 3 else ((), (), ())
            if ep_now and ep_now[0].value == record:
                return  # ours, answered ambiguously and retried
            if not net_now:
                raise NotFound(f"network {network_id} not found: it was removed from the cluster")
            # the failure branch read what changed: no second round trip before the retry
            members_rev = members_now[0].mod_revision if members_now else 0
            ep_rev = ep_now[0].mod_revision if ep_now else 0
        raise Unavailable("could not publish the endpoint in the cluster store: too many concurrent changes")

    async def withdraw_endpoint(self, network_id: str, endpoint_id: str) -> None:
        await self.kv.delete(f"{self.prefix}endpoints/{network_id}/{endpoint_id}")

    # -- addresses ---------------------------------------------------------------------
    async def claim_address(self, network_id: str, subnet: str, reserved: set[str], wanted: str,
                            owner: str, lease: int) -> str:
        """`wanted`, or the lowest free address of `subnet`; unique across every host."""
        net = ipaddress.ip_network(subnet)
        base = f"{self.prefix}addresses/{network_id}/"
        for _ in range(RETRIES):
            items, _ = await self.kv.list(base)
            taken = {kv.key[len(base):] for kv in items} | reserved
            if wanted:
                if wanted in taken:
                    raise Forbidden("Address already in use")
                candidate = wanted
            else:
                candidate = next((str(h) for h in _hosts(net) if str(h) not in taken), "")
                if not candidate:
                    raise Unavailable(f"no available addresses on this pool ({subnet})")
            result = await self.kv.txn([Compare.absent(base + candidate)],
                                       [Op.put(base + candidate, owner.encode(), lease=lease)],
                                       [Op.get(base + candidate)])
            holder = result.responses[0][0].value if result.responses and result.responses[0] else b""
            if result.succeeded or holder == owner.encode():  # the second: ours, retried after a lost answer
                return candidate
            if wanted:
                raise Forbidden("Address already in use")
        raise Unavailable("could not claim an address in the cluster store: too many concurrent changes; try again")

    async def release_address(self, network_id: str, address: str, owner: str = "") -> None:
        """With `owner`, only while that endpoint still holds the address: a late release
        (a leftover, or a withdraw retried) must not free a claim another endpoint made
        since."""
        key = f"{self.prefix}addresses/{network_id}/{address}"
        if not owner:
            await self.kv.delete(key)
            return
        held = await self.kv.get(key)
        if held is not None and held.value == owner.encode():
            await self.kv.txn([Compare.at(key, held.mod_revision)], [Op.delete(key)])

    async def reclaim_address(self, network_id: str, address: str, owner: str, lease: int) -> bool:
        """An address this host's endpoint holds, put under the host's current lease; False
        when another endpoint holds it now (it came free while this host's lease was gone):
        a plain put would take it from that endpoint and two would share it."""
        key = f"{self.prefix}addresses/{network_id}/{address}"
        for _ in range(RETRIES):
            held = await self.kv.get(key)
            if held is not None and held.value != owner.encode():
                return False
            if held is not None and held.lease == lease:
                return True  # already (also: our write, answered ambiguously and retried)
            result = await self.kv.txn([_generation_is(key, held.mod_revision if held else 0)],
                                       [Op.put(key, owner.encode(), lease=lease)])
            if result.succeeded:
                return True
        raise Unavailable("could not claim an address in the cluster store: too many concurrent changes; try again")

    async def held_on(self, lease: int) -> list[KeyValue]:
        """Every address claim on `lease` (a host's own claims)."""
        items, _ = await self.kv.list(f"{self.prefix}addresses/")
        return [kv for kv in items if kv.lease == lease]


def _hosts(net: ipaddress._BaseNetwork) -> Iterator[ipaddress._BaseAddress]:
    """Host addresses in order without building the list (a /64 has 2**64)."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    for value in range(first, last + 1):
        yield ipaddress.ip_address(value)


def _generation_is(key: str, revision: int) -> Compare:
    return Compare.absent(key) if revision == 0 else Compare.at(key, revision)
