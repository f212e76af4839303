"""Pure pieces of the overlay data plane: vxlan settings, the dump parsers, FakeKernel."""

import asyncio
import socket
import struct

import pytest

from shoal.kernel import FakeKernel, KernelError, nldump
from shoal.kernel.vxlan import normal_ip, normal_mac, vxlan_attrs, vxlan_drift


def test_normal_mac_and_ip():
    assert normal_mac("02-42-0A-5A-00-02") == "02:42:0a:5a:00:02"
    for bad in ("02:42:0a:5a:00", "02:42:0a:5a:00:zz", "", "0242.0a5a.0002"):
        with pytest.raises(KernelError, match="invalid MAC"):
            normal_mac(bad)
    assert normal_ip("fd00:0:0::1") == "fd00::1"
    with pytest.raises(KernelError, match="invalid IP"):
        normal_ip("10.0.0.300")


def test_vxlan_attrs_are_static_and_checked():
    attrs = vxlan_attrs(vni=4242, local="192.0.2.1", port=4789)
    assert attrs == {"vxlan_id": 4242, "vxlan_port": 4789, "vxlan_learning": 0, "vxlan_proxy": 1,
                     "vxlan_l2miss": 0, "vxlan_l3miss": 0, "vxlan_local": "192.0.2.1"}
    assert vxlan_attrs(vni=1, local="2001:db8::1", port=8472)["vxlan_local6"] == "2001:db8::1"
    for kwargs, message in [({"vni": 0}, "VXLAN id"), ({"vni": 1 << 24}, "VXLAN id"), ({"port": 0}, "port"),
                            ({"local": "224.0.0.1"}, "local address"), ({"local": "0.0.0.0"}, "local address"),
                            ({"local": "127.0.0.1"}, "local address"), ({"local": "nope"}, "invalid IP")]:
        with pytest.raises(KernelError, match=message):
            vxlan_attrs(**{"vni": 4242, "local": "192.0.2.1", "port": 4789, **kwargs})


def test_vxlan_drift_names_what_differs():
    data = {"IFLA_VXLAN_ID": 4242, "IFLA_VXLAN_PORT": 4789, "IFLA_VXLAN_LEARNING": 0, "IFLA_VXLAN_PROXY": 1,
            "IFLA_VXLAN_L2MISS": 0, "IFLA_VXLAN_L3MISS": 0, "IFLA_VXLAN_LOCAL": "192.0.2.1"}
    assert vxlan_drift(data, vni=4242, local="192.0.2.1", port=4789) == []
    drift = vxlan_drift({**data, "IFLA_VXLAN_LEARNING": 1, "IFLA_VXLAN_L3MISS": 1}, vni=4242, local="192.0.2.1",
                        port=4789)
    assert drift == ["learning is 1 (want 0)", "l3miss is 1 (want 0)"]
    assert vxlan_drift(data, vni=7, local="192.0.2.9", port=4789) == [
        "id is 4242 (want 7)", "local is 192.0.2.1 (want 192.0.2.9)"]
    v6 = {**data, "IFLA_VXLAN_LOCAL": None, "IFLA_VXLAN_LOCAL6": "2001:db8:0::1"}
    assert vxlan_drift(v6, vni=4242, local="2001:db8::1", port=4789) == []


def _msg(kind: int, body: bytes) -> bytes:
    data = struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body
    return data + b"\0" * ((4 - len(data) % 4) % 4)


def _neigh(family: int, index: int, state: int, flags: int, dst: bytes, mac: bytes) -> bytes:
    body = struct.pack("=BxxxiHBB", family, index, state, flags, 0)
    body += nldump._rta(nldump.NDA_DST, dst) + nldump._rta(nldump.NDA_LLADDR, mac)
    return _msg(nldump.RTM_NEWNEIGH, body)


def test_requests_carry_the_device():
    req = nldump.neigh_request(7, seq=3)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq) == (len(req), nldump.RTM_GETNEIGH, 0x301, 3)
    assert struct.unpack_from("=HHI", req, 28) == (8, nldump.NDA_IFINDEX, 7)  # after nlmsghdr + ndmsg
    fdb = nldump.fdb_request(9)
    assert struct.unpack_from("=BxxxiHBB", fdb, 16) == (socket.AF_BRIDGE, 9, 0, 0, 0) and len(fdb) == 28
    assert struct.unpack_from("=BBBBI", nldump.addr_request(socket.AF_INET, 5), 16) == (socket.AF_INET, 0, 0, 0, 5)


def test_parse_neighbours_filters_by_device_and_decodes():
    mac = bytes.fromhex("02420a5a0003")
    data = (_neigh(socket.AF_INET, 4, nldump.NUD_PERMANENT, 0, socket.inet_aton("10.90.0.3"), mac)
            + _neigh(socket.AF_INET6, 4, 0x40, 0, socket.inet_pton(socket.AF_INET6, "fd00::3"), b"\2" * 6)
            + _neigh(socket.AF_INET, 5, nldump.NUD_PERMANENT, 0, socket.inet_aton("10.0.0.9"), b"\1" * 6)
            + _msg(nldump.NLMSG_DONE, b"\0\0\0\0"))
    found = [nldump.parse_neighbour(data, off, length, 4) for kind, off, length in nldump.messages(data)
             if kind == nldump.RTM_NEWNEIGH]
    assert found[2] is None  # another device's
    a, b = found[:2]
    assert (a.dst, a.lladdr, a.permanent) == ("10.90.0.3", "02:42:0a:5a:00:03", True)
    assert (b.dst, b.lladdr, b.permanent) == ("fd00::3", "02:02:02:02:02:02", False)


def test_parse_address_prefers_ifa_local_and_errors_raise():
    body = struct.pack("=BBBBI", socket.AF_INET, 32, 0, 0, 3)
    body += nldump._rta(nldump.IFA_ADDRESS, socket.inet_aton("10.0.0.2")) + nldump._rta(
        nldump.IFA_LOCAL, socket.inet_aton("10.0.0.1"))
    data = _msg(nldump.RTM_NEWADDR, body)
    ((_, off, length),) = nldump.messages(data)
    assert nldump.parse_address(data, off, length, 0) == nldump.Address(socket.AF_INET, 3, 32, 0, "10.0.0.1")
    error = _msg(nldump.NLMSG_ERROR, struct.pack("=i", -22) + b"\0" * 16)
    with pytest.raises(OSError, match="Invalid argument"):
        list(nldump.messages(error))


def test_fake_kernel_records_the_data_plane():
    async def go():
        k = FakeKernel()
        await k.ensure_bridge("ov-test", mtu=1450, addresses=[], alias="a")
        with pytest.raises(KernelError, match="bridge nope"):
            await k.ensure_vxlan("vx-1", vni=4242, local="192.0.2.1", mtu=1450, bridge="nope", alias="a")
        assert await k.ensure_vxlan("vx-1", vni=4242, local="192.0.2.1", mtu=1450, bridge="ov-test", alias="a")
        await k.fdb_replace("vx-1", "02:42:0A:5A:00:03", "192.0.2.2")
        await k.fdb_replace("vx-1", "02:42:0a:5a:00:03", "192.0.2.3")  # moved: replaced
        await k.neigh_replace("vx-1", "10.90.0.3", "02:42:0a:5a:00:03")
        assert k.fdb == {"vx-1": {"02:42:0a:5a:00:03": "192.0.2.3"}}
        assert await k.neigh_entries("vx-1") == [("10.90.0.3", "02:42:0a:5a:00:03")]
        assert not await k.ensure_vxlan("vx-1", vni=4242, local="192.0.2.1", mtu=1450, bridge="ov-test", alias="a")
        await k.fdb_delete("vx-1", "02:42:0a:5a:00:03", "192.0.2.2")  # points elsewhere now: stays
        assert await k.fdb_entries("vx-1") == [("02:42:0a:5a:00:03", "192.0.2.3")]
        assert await k.ensure_vxlan("vx-1", vni=4243, local="192.0.2.1", mtu=1450, bridge="ov-test", alias="a")
        assert k.fdb["vx-1"] == {} and k.neighbours["vx-1"] == {}  # remade: empty tables
        with pytest.raises(KernelError, match="not found"):
            await k.neigh_replace("vx-2", "10.90.0.3", "02:42:0a:5a:00:03")
        k.local_addresses["192.0.2.1"] = "eth0"
        with pytest.raises(KernelError, match="not on any link"):
            await k.ensure_vxlan("vx-2", vni=1, local="192.0.2.7", mtu=1450, bridge="ov-test", alias="a")
        assert (await k.device_of_address("192.0.2.1")).name == "eth0"
        assert await k.device_of_address("192.0.2.7") is None
        await k.delete_link("vx-1")
        assert "vx-1" not in k.fdb and "vx-1" not in k.vxlans
        assert ("fdb_replace", "vx-1 02:42:0a:5a:00:03 192.0.2.3") in k.calls
    asyncio.run(go())
