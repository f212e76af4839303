"""Property tests: the bug classes of libnetwork's old bitmap (duplicates, escapes)."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import Forbidden, Unavailable
from shoal.ipam import AddressSet, DefaultIpam, default_pools

from .ipamsync import SyncIpam

ops = st.lists(
    st.one_of(
        st.tuples(st.just("any"), st.just(0)),
        st.tuples(st.just("static"), st.integers(0, 255)),
        st.tuples(st.just("release"), st.integers(0, 255)),
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(prefix=st.integers(22, 30), range_prefix=st.integers(0, 4), program=ops)
def test_no_duplicates_nothing_outside(prefix, range_prefix, program):
    subnet = ipaddress.ip_network(f"10.20.0.0/{prefix}")
    rng = list(subnet.subnets(prefixlen_diff=min(range_prefix, 32 - prefix)))[-1]
    s = AddressSet(subnet)
    held: set = set()
    for op, n in program:
        if op == "any":
            try:
                ip = s.take_any(rng)
            except Unavailable:
                assert all(a in held for a in rng if a not in (subnet.network_address, subnet.broadcast_address))
                continue
            assert ip in rng and ip not in held
            assert ip not in (subnet.network_address, subnet.broadcast_address)
            held.add(ip)
        elif op == "static":
            ip = subnet.network_address + (n % subnet.num_addresses)
            try:
                s.take(ip)
            except Forbidden:
                assert ip in held or ip in (subnet.network_address, subnet.broadcast_address)
                continue
            assert ip not in held
            held.add(ip)
        else:
            if held:
                ip = sorted(held)[n % len(held)]
                s.release(ip)
                held.discard(ip)
    assert set(s.taken()) == held


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=40))
def test_release_then_reallocate_returns_lowest(frees):
    s = AddressSet(ipaddress.ip_network("10.30.0.0/24"))
    ips = [s.take_any() for _ in range(60)]
    freed = sorted({ips[i] for i in frees})
    for ip in freed:
        s.release(ip)
    again = [s.take_any() for _ in freed]
    assert again == freed


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_pools_never_overlap(program):
    ipam = SyncIpam(DefaultIpam(default_pools()))
    held = []
    for take in program:
        if take or not held:
            try:
                held.append(ipam.request_pool())
            except Exception:
                continue
        else:
            ipam.release_pool(held.pop(0).id)
    nets = [p.subnet for p in held]
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b)


nets24 = st.builds(lambda a, b, p: ipaddress.ip_network((int(ipaddress.ip_address("172.16.0.0")) + (a << 16) + (b << 8), p),
                                                        strict=False), st.integers(0, 31), st.integers(0, 255),
                   st.integers(12, 28))


@settings(max_examples=150, deadline=None)
@given(st.lists(nets24, max_size=12), st.integers(0, 8))
def test_first_fit_matches_brute_force(routes, held):
    ipam = SyncIpam(DefaultIpam(default_pools()))
    for _ in range(held):
        ipam.request_pool()
    taken = [p.subnet for p in ipam.pools()] + routes
    expected = None
    for spec in default_pools():
        base = ipaddress.ip_network(spec.base)
        for cand in base.subnets(new_prefix=spec.size):
            if not any(cand.overlaps(t) for t in taken):
                expected = cand
                break
        if expected is not None:
            break
    try:
        got = ipam.request_pool(reserved=routes).subnet
    except Exception:
        got = None
    assert got == expected
