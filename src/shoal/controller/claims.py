"""The cluster's claims that are not addresses: network names, VXLAN ids, the network
records, the endpoints as peers see them, and the guard that keeps a network from being
removed under a joining endpoint. (Subnets and addresses are IPAM's: controller.kvipam.)

Every claim is a key created with a compare-and-swap (`Compare.absent`), so two hosts
asking at once can never both win; the loser re-reads and tries the next free value.
Every write is pinned by its compares, so the etcd client may retry it after a lost
answer; a retried write that had applied is recognised by its value in the failure branch.

Key layout (under the cluster prefix, `/shoal/v2/`, behind any path the store URL has):

    networks/<id>            the network (JSON, as the controller's Network.to_dict)
    names/<name>             network id: names are unique cluster-wide
    vni/<n>                  network id
    endpoints/<nid>/<eid>    the endpoint as peers need it, on the holder's lease
    members/<nid>            bumped by every endpoint publish (guards network removal)
    hosts/<advertise>        the host (JSON), on its lease (written by controller.cluster)
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.errors import Conflict, NotFound, Unavailable
from shoal.store.kv import KV, Compare, Op

VNI_FIRST, VNI_LAST = 256, (1 << 24) - 1
DELETED, IN_USE, GONE = "deleted", "in use", "gone"  # release_network
RETRIES = 20


class ClusterClaims:
    def __init__(self, kv: KV, prefix: str) -> None:
        self.kv = kv
        self.prefix = prefix

    async def claim_network(self, network_id: str, name: str, record: Callable[[int], bytes],
                            vni_wanted: int = 0) -> int:
        """Claim the name and a VNI (the one the user gave, or the lowest free) and write the
        network record (`record(vni)`), in one transaction; returns the VNI."""
        p = self.prefix
        for _ in range(RETRIES):
            vni = await self._free_vni(vni_wanted)
            compares = [Compare.absent(f"{p}names/{name}"), Compare.absent(f"{p}vni/{vni}"),
                        Compare.absent(f"{p}networks/{network_id}")]
            ops = [Op.put(f"{p}names/{name}", network_id.encode()), Op.put(f"{p}vni/{vni}", network_id.encode()),
                   Op.put(f"{p}networks/{network_id}", record(vni))]
            result = await self.kv.txn(compares, ops, [Op.get(f"{p}names/{name}")])
            if result.succeeded:
                return vni
            holder = result.responses[0][0].value if result.responses and result.responses[0] else b""
            if holder == network_id.encode():  # our own write, answered ambiguously and retried
                return vni
            if holder:
                raise Conflict(f"network with name {name} already exists")
        raise Unavailable("could not claim a VXLAN id in the cluster store: too many concurrent changes; try again")

    async def _free_vni(self, wanted: int = 0) -> int:
        items, _ = await self.kv.list(f"{self.prefix}vni/")
        used = {int(kv.key.rsplit("/", 1)[-1]) for kv in items}
        if wanted:
            if wanted in used:
                raise Conflict(f"VXLAN id {wanted} is in use by another network: choose another or leave "
                               "com.docker.network.driver.overlay.vxlanid_list out")
            return wanted
        return next(v for v in range(VNI_FIRST, VNI_LAST) if v not in used)

    async def release_network(self, network_id: str, name: str, vni: int) -> str:
        """Delete the network and its claims at once, only while no endpoint exists anywhere:
        every endpoint publish bumps `members/<nid>` (see `publish_endpoint`), so a join that
        lands between our listing and our delete makes the delete fail instead of orphaning
        the endpoint. Every key deleted is pinned as read, and the name and VNI only while
        they are this network's: a second or late delete (another host removed it, and the
        name or VNI went to a new network since) must not take them. Its pools are released
        after, through IPAM, by the caller that got DELETED. -> DELETED, IN_USE or GONE."""
        p = self.prefix
        keys = [f"{p}networks/{network_id}", f"{p}members/{network_id}", f"{p}names/{name}", f"{p}vni/{vni}"]
        read = await self.kv.txn([], [Op.get(k) for k in keys])
        net, members, name_kv, vni_kv = (r[0] if r else None for r in read.responses)
        if net is None:
            return GONE
        eps, _ = await self.kv.list(f"{p}endpoints/{network_id}/")
        if eps:
            return IN_USE
        compares = [Compare.at(keys[0], net.mod_revision), Compare.at(keys[1], members.mod_revision if members else 0)]
        ops = [Op.delete(keys[0]), Op.delete(keys[1])]
        for kv in (name_kv, vni_kv):
            if kv is not None and kv.value == network_id.encode():
                compares.append(Compare.at(kv.key, kv.mod_revision))
                ops.append(Op.delete(kv.key))
        result = await self.kv.txn(compares, ops, [Op.get(keys[0])])
        if result.succeeded:
            return DELETED
        return IN_USE if result.responses and result.responses[0] else GONE

    async def network_exists(self, network_id: str) -> bool:
        return await self.kv.get(f"{self.prefix}networks/{network_id}") is not None

    async def endpoint_names(self, network_id: str) -> list[bytes]:
        eps, _ = await self.kv.list(f"{self.prefix}endpoints/{network_id}/")
        return [kv.value for kv in eps]

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
                        Compare.at(members_key, members_rev), Compare.at(ep_key, ep_rev)]
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
