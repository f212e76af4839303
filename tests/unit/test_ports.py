import socket

import pytest

from shoal.controller.ports import PortAllocator, parse_port_bindings
from shoal.errors import Conflict, InvalidParameter
from shoal.model.ports import PortRequest


def test_parse_port_bindings():
    reqs = parse_port_bindings({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                                 "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                                                 "443": None}})
    assert reqs == [PortRequest(80, "tcp", "", 8080), PortRequest(53, "udp", "127.0.0.1", 0),
                    PortRequest(443, "tcp", "", 0)]
    with pytest.raises(InvalidParameter):
        parse_port_bindings({"PortBindings": {"80/xyz": [{}]}})
    with pytest.raises(InvalidParameter):
        parse_port_bindings({"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}})


def test_allocate_conflict_and_release():
    ports = PortAllocator(ephemeral=(41000, 41100))
    a = ports.allocate("c1", PortRequest(80, "tcp", "127.0.0.1", 0), "172.17.0.2")
    assert a.host_ip == "127.0.0.1" and 41000 <= a.host_port < 41100
    with pytest.raises(Conflict, match="port is already allocated"):
        ports.allocate("c2", PortRequest(81, "tcp", "", a.host_port), "172.17.0.3")
    b = ports.allocate("c2", PortRequest(81, "udp", "", a.host_port), "172.17.0.3")  # other protocol
    assert b.host_port == a.host_port
    ports.release("c1")
    assert ports.bindings_of("c1") == []
    again = ports.allocate("c3", PortRequest(80, "tcp", "127.0.0.1", a.host_port), "172.17.0.4")
    assert again.host_port == a.host_port
    ports.release("c2")
    ports.release("c3")


def test_port_held_by_a_host_process():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        ports = PortAllocator()
        with pytest.raises(Conflict, match="address already in use"):
            ports.allocate("c1", PortRequest(80, "tcp", "127.0.0.1", port), "172.17.0.2")
    finally:
        holder.close()
