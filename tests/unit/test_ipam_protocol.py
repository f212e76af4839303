"""One IPAM protocol, two allocators: the same behaviours from the local one (memory,
LocalDefault) and the cluster one (KVIpam over MemoryKV, GlobalDefault), then what only
a shared allocator has to get right (hosts racing, owners, leases, lost answers)."""

from __future__ import annotations

import asyncio
import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.controller.kvipam import KVIpam
from shoal.errors import Forbidden, InvalidParameter, NotFound, Unavailable
from shoal.ipam import (
    GATEWAY,
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    OPT_HOST_BOUND,
    OPT_OWNER,
    REQUEST_ADDRESS_TYPE,
    AddressSpaces,
    DefaultIpam,
    NoAddressAvailable,
)
from shoal.model import PoolSpec
from shoal.store import MemoryKV
from shoal.store.kv import StoreUnavailable

from .clusterworld import HostKV
from .ipamsync import now

PREFIX = "/shoal/v2/"
HOST_BOUND = {OPT_OWNER: "ep", OPT_HOST_BOUND: "true"}


class Leases:
    """The host's lease as KVIpam asks for it; 0 is "not joined"."""

    def __init__(self, lease: int = 0) -> None:
        self.lease = lease

    def __call__(self) -> int:
        if not self.lease:
            raise Unavailable("not joined to the cluster store memory:// yet")
        return self.lease


def kv_ipam(kv=None, host="192.0.2.1:2376", joined=True):
    """A host's KVIpam, joined on a lease of its own unless told otherwise."""
    kv = kv or MemoryKV(lambda: 0.0)
    lease = now(kv.grant(15)) if joined else 0
    return KVIpam(kv, PREFIX, host=host, lease=Leases(lease)), kv


def local_ipam():
    """The local allocator with Docker's global default as its pool list, so that both
    implementations must give the same answers."""
    return DefaultIpam([PoolSpec("10.0.0.0/8", 24)])


@pytest.fixture(params=["local", "kv"])
def impl(request):
    if request.param == "local":
        return local_ipam(), LOCAL_DEFAULT
    return kv_ipam()[0], GLOBAL_DEFAULT


def run(coro):
    return asyncio.run(coro)


# -- the protocol, both implementations ------------------------------------------------------
def test_default_spaces_and_opaque_pool_ids(impl):
    ipam, space = impl

    async def go():
        assert await ipam.get_default_address_spaces() == (LOCAL_DEFAULT, GLOBAL_DEFAULT)
        pool_id, cidr, data = await ipam.request_pool(space)
        assert (cidr, data) == ("10.0.0.0/24", {}) and pool_id.startswith(space + "/")
        assert (await ipam.request_pool(space))[1] == "10.0.1.0/24"
        ranged, _, _ = await ipam.request_pool(space, "10.9.0.0/24", "10.9.0.128/25")
        assert ranged != pool_id and ranged.startswith(space + "/")
    run(go())


def test_another_space_is_refused(impl):
    ipam, space = impl
    other = GLOBAL_DEFAULT if space == LOCAL_DEFAULT else LOCAL_DEFAULT
    with pytest.raises(InvalidParameter, match="address space"):
        run(ipam.request_pool(other))


def test_explicit_overlap_is_a_403_and_dynamic_pools_skip_taken_and_excluded(impl):
    ipam, space = impl

    async def go():
        await ipam.request_pool(space, "10.0.0.0/23")
        for clash in ("10.0.1.0/24", "10.0.0.0/16"):
            with pytest.raises(Forbidden, match="Pool overlaps with other one on this address space") as exc:
                await ipam.request_pool(space, clash)
            assert exc.value.status == 403
        excluded = [ipaddress.ip_network("10.0.2.0/24"), ipaddress.ip_network("10.0.4.0/23")]
        got = [(await ipam.request_pool(space, exclude=excluded))[1] for _ in range(2)]
        assert got == ["10.0.3.0/24", "10.0.6.0/24"]
    run(go())


def test_released_pool_is_reused_first_fit_with_its_addresses_free(impl):
    ipam, space = impl

    async def go():
        await ipam.request_pool(space)
        b, _, _ = await ipam.request_pool(space)
        await ipam.request_address(b, "", {OPT_OWNER: "n"})
        await ipam.release_pool(b)
        await ipam.release_pool(b)  # twice: no error
        again, cidr, _ = await ipam.request_pool(space)
        assert cidr == "10.0.1.0/24"
        assert (await ipam.request_address(again))[0] == "10.0.1.1/24"
    run(go())


def test_gateway_then_lowest_free_within_the_range_static_anywhere(impl):
    ipam, space = impl

    async def go():
        pool, _, _ = await ipam.request_pool(space, "10.1.0.0/24", "10.1.0.128/25")
        gw, _ = await ipam.request_address(pool, "", {REQUEST_ADDRESS_TYPE: GATEWAY, OPT_OWNER: "net"})
        assert gw == "10.1.0.128/24"
        assert (await ipam.request_address(pool, "10.1.0.130", {OPT_OWNER: "aux"}))[0] == "10.1.0.130/24"
        assert (await ipam.request_address(pool, "10.1.0.5", {OPT_OWNER: "e0"}))[0] == "10.1.0.5/24"
        got = [(await ipam.request_address(pool, "", {OPT_OWNER: f"e{i}"}))[0] for i in range(1, 3)]
        assert got == ["10.1.0.129/24", "10.1.0.131/24"]
    run(go())


def test_address_errors_have_dockers_messages_and_codes(impl):
    ipam, space = impl

    async def go():
        pool, _, _ = await ipam.request_pool(space, "10.2.0.0/30")
        await ipam.request_address(pool, "10.2.0.1", {OPT_OWNER: "a"})
        with pytest.raises(Forbidden, match="Address already in use"):
            await ipam.request_address(pool, "10.2.0.1", {OPT_OWNER: "b"})
        for reserved in ("10.2.0.0", "10.2.0.3"):  # network and broadcast
            with pytest.raises(Forbidden, match="Address already in use"):
                await ipam.request_address(pool, reserved, {OPT_OWNER: "b"})
        with pytest.raises(InvalidParameter, match="out of range"):
            await ipam.request_address(pool, "10.2.1.1", {OPT_OWNER: "b"})
        await ipam.request_address(pool, "", {OPT_OWNER: "c"})
        with pytest.raises(NoAddressAvailable, match="no available addresses on this pool") as exc:
            await ipam.request_address(pool, "", {OPT_OWNER: "d"})
        assert exc.value.status == 503
        with pytest.raises(NotFound):
            await ipam.request_address(f"{space}/10.3.0.0/24")
    run(go())


def test_released_addresses_come_back_lowest_first(impl):
    ipam, space = impl

    async def go():
        pool, _, _ = await ipam.request_pool(space, "10.4.0.0/24")
        got = [(await ipam.request_address(pool, "", {OPT_OWNER: f"e{i}"}))[0] for i in range(5)]
        await ipam.release_address(pool, got[3])
        await ipam.release_address(pool, got[1].split("/")[0])  # "ip" or "ip/len"
        assert [(await ipam.request_address(pool, "", {OPT_OWNER: f"f{i}"}))[0] for i in range(2)] == [got[1], got[3]]
    run(go())


def test_v6_with_an_explicit_subnet(impl):
    ipam, space = impl

    async def go():
        pool, cidr, _ = await ipam.request_pool(space, "fd00:5::/64", v6=True)
        assert cidr == "fd00:5::/64"
        assert (await ipam.request_address(pool, "", {OPT_OWNER: "g"}))[0] == "fd00:5::1/64"
        assert (await ipam.request_address(pool, "", {OPT_OWNER: "e"}))[0] == "fd00:5::2/64"
    run(go())


ops = st.lists(st.one_of(st.tuples(st.just("any"), st.integers(0, 0)), st.tuples(st.just("static"), st.integers(0, 63)),
                         st.tuples(st.just("release"), st.integers(0, 63))), max_size=80)


@settings(max_examples=60, deadline=None)
@given(prefix=st.integers(26, 30), ranged=st.booleans(), program=ops)
def test_both_allocators_answer_every_program_alike(prefix, ranged, program):
    """Lowest free, ranges, reserved addresses, statics and releases: the cluster allocator
    is the local one's semantics, claim for claim (MemoryKV never suspends, so both are
    driven without a loop)."""
    subnet = ipaddress.ip_network(f"10.20.0.0/{prefix}")
    sub_pool = str(list(subnet.subnets(prefixlen_diff=1))[-1]) if ranged else ""
    both = [(local_ipam(), LOCAL_DEFAULT), (kv_ipam()[0], GLOBAL_DEFAULT)]
    pools = [now(ipam.request_pool(space, str(subnet), sub_pool))[0] for ipam, space in both]
    held: list[str] = []

    def answer(call):
        try:
            return now(call)[0]
        except (Forbidden, Unavailable, InvalidParameter) as exc:
            return type(exc).__name__

    for i, (op, n) in enumerate(program):
        if op == "release":
            if held:
                ip = held.pop(n % len(held))
                for (ipam, _), pool in zip(both, pools):
                    now(ipam.release_address(pool, ip))
            continue
        address = str(subnet.network_address + n % subnet.num_addresses) if op == "static" else ""
        answers = {answer(ipam.request_address(pool, address, {OPT_OWNER: f"o{i}"}))
                   for (ipam, _), pool in zip(both, pools)}
        assert len(answers) == 1, (op, address, answers)
        got = answers.pop()
        if "/" in got:
            held.append(got.split("/")[0])


def test_spaces_route_by_space_and_by_pool_id():
    async def go():
        local, (kvi, _) = local_ipam(), kv_ipam()
        spaces = AddressSpaces(local)
        with pytest.raises(Forbidden, match="global networks need a cluster store"):
            await spaces.request_pool(GLOBAL_DEFAULT)
        assert spaces.capabilities.requires_request_replay
        spaces.serve(GLOBAL_DEFAULT, kvi)
        lp, _, _ = await spaces.request_pool(LOCAL_DEFAULT)
        gp, _, _ = await spaces.request_pool(GLOBAL_DEFAULT)  # the same subnet: another space
        assert (await spaces.request_address(lp))[0] == (await spaces.request_address(gp))[0] == "10.0.0.1/24"
        assert [p.id for p in local.pools()] == [lp]
        assert await spaces.pool_status(lp) == {"IPsInUse": 3, "DynamicIPsAvailable": 253}
        assert await spaces.pool_status(gp) is None
        await spaces.release_pool(gp)
        assert [p.id for p in local.pools()] == [lp]
    run(go())


# -- what only the shared allocator has to get right ------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_hosts_racing_never_get_overlapping_pools_or_the_same_address(seed):
    async def go():
        shared, rng = MemoryKV(lambda: 0.0), random.Random(seed)
        hosts = [kv_ipam(HostKV(shared, f"h{i}", rng), host=f"h{i}", joined=False)[0] for i in range(3)]
        asks = [("10.0.0.0/16" if i == 4 else "") for i in range(9)]
        got = await asyncio.gather(*(hosts[i % 3].request_pool(GLOBAL_DEFAULT, s, options={OPT_OWNER: f"n{i}"})
                                     for i, s in enumerate(asks)), return_exceptions=True)
        nets = [ipaddress.ip_network(g[1]) for g in got if not isinstance(g, BaseException)]
        assert all(isinstance(g, Forbidden) for g in got if isinstance(g, BaseException))
        assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
        pool = next(g[0] for g in got if not isinstance(g, BaseException))
        addrs = await asyncio.gather(*(hosts[i % 3].request_address(pool, "", {OPT_OWNER: f"e{i}"})
                                       for i in range(20)))
        assert len({a for a, _ in addrs}) == 20
    run(go())


def test_host_bound_addresses_live_on_the_lease_and_need_a_joined_host():
    async def go():
        ipam, kv = kv_ipam(joined=False)
        pool, _, _ = await ipam.request_pool(GLOBAL_DEFAULT, options={OPT_OWNER: "n"})
        with pytest.raises(Unavailable, match="not joined"):
            await ipam.request_address(pool, "", HOST_BOUND)
        lease = await kv.grant(15)
        ipam._lease.lease = lease
        gw, _ = await ipam.request_address(pool, "", {OPT_OWNER: "n", REQUEST_ADDRESS_TYPE: GATEWAY})
        ep, _ = await ipam.request_address(pool, "", HOST_BOUND)
        await kv.revoke(lease)  # the host is gone for good: its endpoint's address comes free
        ipam._lease.lease = await kv.grant(15)
        assert (await ipam.request_address(pool, "", {OPT_OWNER: "other", OPT_HOST_BOUND: "true"}))[0] == ep
        with pytest.raises(Forbidden):
            await ipam.request_address(pool, gw.split("/")[0], {OPT_OWNER: "x"})  # the network's stays
    run(go())


def test_a_replay_moves_the_owners_claim_to_the_new_lease_and_never_takes_anothers():
    async def go():
        ipam, kv = kv_ipam()
        pool, _, _ = await ipam.request_pool(GLOBAL_DEFAULT, "10.7.0.0/24", options={OPT_OWNER: "n"})
        addr, _ = await ipam.request_address(pool, "", HOST_BOUND)
        ipam._lease.lease = new = await kv.grant(15)  # the host joined again, on a new lease
        assert (await ipam.request_address(pool, addr.split("/")[0], HOST_BOUND))[0] == addr
        held = await kv.get(f"{PREFIX}ipam/GlobalDefault/addresses/10.7.0.0-24/10.7.0.1")
        assert (held.value, held.lease) == (b"ep", new)
        with pytest.raises(Forbidden, match="Address already in use"):
            await ipam.request_address(pool, "10.7.0.1", {OPT_OWNER: "another", OPT_HOST_BOUND: "true"})
    run(go())


def test_a_late_release_leaves_the_next_owners_claim_alone():
    async def go():
        a, kv = kv_ipam(host="a")
        b, _ = kv_ipam(kv, host="b")
        pool, _, _ = await a.request_pool(GLOBAL_DEFAULT, "10.8.0.0/24", options={OPT_OWNER: "n"})
        addr, _ = await a.request_address(pool, "", {OPT_OWNER: "ea", OPT_HOST_BOUND: "true"})
        await kv.delete(f"{PREFIX}ipam/GlobalDefault/addresses/10.8.0.0-24/10.8.0.1")  # a's lease went
        assert (await b.request_address(pool, "", {OPT_OWNER: "eb", OPT_HOST_BOUND: "true"}))[0] == addr
        await a.release_address(pool, addr)  # a's withdraw, late
        held = await kv.get(f"{PREFIX}ipam/GlobalDefault/addresses/10.8.0.0-24/10.8.0.1")
        assert held is not None and held.value == b"eb"
        await b.release_address(pool, addr)
        assert await kv.get(held.key) is None
    run(go())


class Replaying:
    """A store whose first answer to each transaction is lost after it applied, so the
    client sends it again (what EtcdKV does for a guarded txn)."""

    def __init__(self, inner: MemoryKV) -> None:
        self.inner = inner
        self.url = inner.url

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def txn(self, compares, success, failure=()):
        await self.inner.txn(compares, success, failure)
        return await self.inner.txn(compares, success, failure)


def test_a_claim_retried_after_a_lost_answer_is_recognised_as_ours():
    async def go():
        ipam, _ = kv_ipam(Replaying(MemoryKV(lambda: 0.0)))
        pool, cidr, _ = await ipam.request_pool(GLOBAL_DEFAULT, options={OPT_OWNER: "n"})
        assert cidr == "10.0.0.0/24"
        assert (await ipam.request_address(pool, "", HOST_BOUND))[0] == "10.0.0.1/24"
        assert (await ipam.request_address(pool, "10.0.0.9", {OPT_OWNER: "e9"}))[0] == "10.0.0.9/24"
    run(go())


def test_a_released_pool_takes_no_more_claims_and_the_creator_finds_its_pools():
    async def go():
        a, kv = kv_ipam(host="a")
        b, _ = kv_ipam(kv, host="b")
        pa, _, _ = await a.request_pool(GLOBAL_DEFAULT, options={OPT_OWNER: "na"})
        pb, _, _ = await b.request_pool(GLOBAL_DEFAULT, options={OPT_OWNER: "nb"})
        assert await a.pools_made_here() == [(pa, "na")] and await b.pools_made_here() == [(pb, "nb")]
        await b.release_pool(pa)
        with pytest.raises(NotFound, match="its network was removed"):
            await a.request_address(pa, "", HOST_BOUND)
        listing, _ = await kv.list(f"{PREFIX}ipam/GlobalDefault/addresses/")
        assert listing == []
    run(go())


def test_claims_left_on_the_lease_without_an_owner_are_freed():
    async def go():
        ipam, kv = kv_ipam()
        pool, _, _ = await ipam.request_pool(GLOBAL_DEFAULT, options={OPT_OWNER: "n"})
        await ipam.request_address(pool, "", {OPT_OWNER: "n", REQUEST_ADDRESS_TYPE: GATEWAY})
        for ep in ("keep", "gone"):
            await ipam.request_address(pool, "", {OPT_OWNER: ep, OPT_HOST_BOUND: "true"})
        await ipam.release_unowned(ipam._lease.lease, {"keep"})
        listing, _ = await kv.list(f"{PREFIX}ipam/GlobalDefault/addresses/")
        assert sorted(kv.value for kv in listing) == [b"keep", b"n"]
    run(go())


def test_an_unreachable_store_is_not_a_full_pool():
    async def go():
        shared = MemoryKV(lambda: 0.0)
        host = HostKV(shared, "h", random.Random(0))
        ipam, _ = kv_ipam(host, joined=False)
        pool, _, _ = await ipam.request_pool(GLOBAL_DEFAULT, options={OPT_OWNER: "n"})
        host.down = True
        with pytest.raises(StoreUnavailable) as exc:
            await ipam.request_address(pool, "", {OPT_OWNER: "e"})
        assert not isinstance(exc.value, NoAddressAvailable)
    run(go())
