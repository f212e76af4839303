import ipaddress

import pytest

from shoal.errors import Forbidden, InvalidParameter, Unavailable
from shoal.ipam import AddressSet, DefaultIpam, default_pools, ula_pool
from shoal.model import PoolSpec

from .ipamsync import SyncIpam


def local(*args):
    return SyncIpam(DefaultIpam(*args))


def test_default_pools_follow_dockers_order():
    ipam = local(default_pools())
    got = [str(ipam.request_pool().subnet) for _ in range(31)]
    assert got[:5] == ["172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/16", "172.21.0.0/16"]
    assert got[14] == "172.31.0.0/16"
    assert got[15:18] == ["192.168.0.0/20", "192.168.16.0/20", "192.168.32.0/20"]
    assert got[-1] == "192.168.240.0/20"
    with pytest.raises(InvalidParameter, match="fully subnetted"):
        ipam.request_pool()


def test_freed_pool_is_reused_first_fit():
    ipam = local(default_pools())
    a, b, c = (ipam.request_pool() for _ in range(3))
    ipam.release_pool(b.id)
    assert ipam.request_pool().id == b.id


def test_pool_overlapping_route_or_network_is_skipped():
    ipam = local(default_pools())
    ipam.request_pool("172.18.5.0/24")
    first = ipam.request_pool(reserved=[ipaddress.ip_network("172.17.3.0/24")])
    assert first.id == "LocalDefault/172.19.0.0/16"


def test_explicit_overlap_is_forbidden():
    ipam = local(default_pools())
    ipam.request_pool("10.0.0.0/16")
    with pytest.raises(Forbidden, match="overlaps"):
        ipam.request_pool("10.0.5.0/24")


def test_gateway_first_then_lowest_free_within_range():
    ipam = local(default_pools())
    pool = ipam.request_pool("10.1.0.0/24", ip_range="10.1.0.128/25")
    assert str(ipam.request_address(pool.id)) == "10.1.0.128"
    ipam.request_address(pool.id, "10.1.0.130")
    assert str(ipam.request_address(pool.id)) == "10.1.0.129"
    assert str(ipam.request_address(pool.id)) == "10.1.0.131"


def test_network_and_broadcast_never_given():
    s = AddressSet(ipaddress.ip_network("10.0.0.0/30"))
    assert str(s.take_any()) == "10.0.0.1"
    assert str(s.take_any()) == "10.0.0.2"
    with pytest.raises(Unavailable, match="no available addresses"):
        s.take_any()
    with pytest.raises(Forbidden, match="already in use"):
        s.take(ipaddress.ip_address("10.0.0.3"))


def test_static_address_taken_and_out_of_subnet():
    s = AddressSet(ipaddress.ip_network("10.0.0.0/24"))
    s.take(ipaddress.ip_address("10.0.0.9"))
    with pytest.raises(Forbidden):
        s.take(ipaddress.ip_address("10.0.0.9"))
    with pytest.raises(InvalidParameter, match="out of range"):
        s.take(ipaddress.ip_address("10.0.1.9"))


def test_stats_count_reserved_like_docker():
    ipam = local(default_pools())
    pool = ipam.request_pool("10.2.0.0/24")
    ipam.request_address(pool.id)
    assert pool.stats() == {"IPsInUse": 3, "DynamicIPsAvailable": 253}


def test_ula_pool_is_a_stable_48_in_fd00_8():
    spec = ula_pool("engine-a")
    net = ipaddress.ip_network(spec.base)
    assert spec == ula_pool("engine-a") != ula_pool("engine-b")
    assert net.prefixlen == 48 and net.subnet_of(ipaddress.ip_network("fd00::/8"))
    ipam = local([], [spec])
    pool = ipam.request_pool(v6=True)
    assert pool.subnet.prefixlen == 64
    assert str(ipam.request_address(pool.id)).endswith("::1")


def test_v6_allocation_is_cheap_in_a_64():
    s = AddressSet(ipaddress.ip_network("fd00:1::/64"))
    got = [s.take_any() for _ in range(1000)]
    assert len(set(got)) == 1000 and str(got[0]) == "fd00:1::1"


def test_custom_pools_replace_the_defaults():
    ipam = local([PoolSpec("10.10.0.0/16", 24)])
    assert [str(ipam.request_pool().subnet) for _ in range(2)] == ["10.10.0.0/24", "10.10.1.0/24"]
