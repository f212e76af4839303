"""Typed firewall inputs: validation at construction, State transitions, host IPs, sysctls."""

import pytest

from shoal.errors import InvalidParameter, NotFound
from shoal.firewall import (EndpointConfig, NetworkConfig, PortMapping, State, bridge_port_flags, network_sysctls,
                            required_sysctls)
from shoal.firewall.elements import published_host_ip

NET = NetworkConfig("br-a", ("10.1.0.7/24",), ("fd00:1::1/64",))


def test_subnets_are_normalised():
    assert NET.subnets4 == ("10.1.0.0/24",) and NET.subnets6 == ("fd00:1::/64",)


@pytest.mark.parametrize("kwargs, message", [
    ({"bridge": 'br"; drop'}, "invalid bridge name"),
    ({"bridge": "a-very-long-bridge-name"}, "invalid bridge name"),
    ({"bridge": "br", "subnets4": ("fd00::/64",)}, "is not IPv4"),
    ({"bridge": "br", "subnets6": ("nonsense",)}, "invalid subnet"),
    ({"bridge": "br", "host_binding_ipv4": "localhost"}, "invalid host_binding_ipv4"),
    ({"bridge": "br", "host_binding_ipv4": "::1"}, "cannot publish on ::1"),
])
def test_bad_network(kwargs, message):
    with pytest.raises(InvalidParameter, match=message):
        NetworkConfig(**kwargs)


@pytest.mark.parametrize("args, kwargs, message", [
    (("icmp", 80, "10.1.0.2", 80, "br-a"), {}, "invalid protocol"),
    (("tcp", 0, "10.1.0.2", 80, "br-a"), {}, "invalid port range"),
    (("tcp", 65535, "10.1.0.2", 80, "br-a"), {"count": 2}, "invalid port range 65535-65536"),
    (("tcp", 80, "10.1.0.2", 80, "br-a"), {"count": 0}, "invalid port count"),
    (("tcp", 80, "10.1.0.x", 80, "br-a"), {}, "invalid container address"),
    (("tcp", 80, "10.1.0.2", 80, "br-a"), {"host_ip": "::"}, "different families"),
    (("tcp", 80, "10.1.0.2", 80, "br a"), {}, "invalid bridge name"),
    (("tcp", 80, "fd00::2", 80, "br-a"), {"host_ip": "::1"}, "cannot publish on ::1"),
])
def test_bad_mapping(args, kwargs, message):
    with pytest.raises(InvalidParameter, match=message):
        PortMapping(*args, **kwargs)


def test_mapping_range_pairs_and_family():
    m = PortMapping("tcp", 8000, "fd00:1:0::0002", 80, "br-a", count=3)
    assert list(m.pairs()) == [(8000, 80), (8001, 81), (8002, 82)]
    assert m.version == 6 and m.container_ip == "fd00:1::2"


def test_state_rejects_unknown_bridges_and_duplicates():
    with pytest.raises(InvalidParameter, match="EndpointConfig on unknown bridge br-x"):
        State((NET,), (EndpointConfig("br-x", "veth0"),))
    with pytest.raises(InvalidParameter, match="two networks on bridge br-a"):
        State((NET, NET))
    with pytest.raises(NotFound):
        State().network("br-a")


def test_state_transitions():
    ep = EndpointConfig("br-a", "veth0")
    port = PortMapping("tcp", 8080, "10.1.0.2", 80, "br-a")
    s = State().with_network(NET).with_endpoint(ep).with_ports([port, port])
    assert s.ports == (port,) and s.endpoints == (ep,)
    assert s.with_ports([port]) == s
    icc_off = NetworkConfig("br-a", ("10.1.0.0/24",), icc=False)
    assert s.with_network(icc_off).networks == (icc_off,)
    assert s.without_endpoint("veth0").endpoints == ()
    assert s.without_ports([port]).ports == ()
    assert s.without_network("br-a") == State()
    assert s.without_network("br-unknown") == s


@pytest.mark.parametrize("binding, host_ip, container, expected", [
    ("", "", "10.1.0.2", ""),
    ("0.0.0.0", "", "fd00:1::2", ""),
    ("127.0.0.1", "", "10.1.0.2", "127.0.0.1"),
    ("127.0.0.1", "", "fd00:1::2", None),  # Docker: a specific IPv4 default publishes IPv4 only
    ("127.0.0.1", "0.0.0.0", "10.1.0.2", ""),  # an explicit host IP wins
    ("", "2001:db8::1", "fd00:1::2", "2001:db8::1"),
])
def test_published_host_ip(binding, host_ip, container, expected):
    net = NetworkConfig("br-a", host_binding_ipv4=binding)
    assert published_host_ip(PortMapping("tcp", 80, container, 80, "br-a", host_ip=host_ip), net) == expected


def test_internal_networks_publish_nothing():
    net = NetworkConfig("br-a", internal=True)
    assert published_host_ip(PortMapping("tcp", 80, "10.1.0.2", 80, "br-a"), net) is None


def test_sysctls():
    assert network_sysctls(NET) == {
        "net/ipv4/ip_forward": "1",
        "net/ipv4/conf/br-a/route_localnet": "1",
        "net/ipv6/conf/all/forwarding": "1",
    }
    assert network_sysctls(NetworkConfig("br-i", ("10.2.0.0/24",), internal=True)) == {}
    both = State((NET, NetworkConfig("br.b", ("10.3.0.0/24",))))
    assert required_sysctls(both)["net/ipv4/conf/br.b/route_localnet"] == "1"
    assert required_sysctls(State()) == {}


def test_bridge_ports_hairpin():
    assert bridge_port_flags(EndpointConfig("br-a", "veth0")) == {"hairpin": "on"}
