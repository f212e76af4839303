"""kernel.macvlan against a real namespace: ports born in a sandbox, parents, what the kernel lacks."""

import asyncio
import json
import subprocess

import pytest

from shoal.kernel import Kernel, KernelError, KernelUnsupported, Netlink


def ip_json(netns, *args):
    out = subprocess.run(["ip", "-n", netns, "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out or "[]")


@pytest.fixture
def sandbox(netns, tmp_path):
    """A second namespace as a file (as shoal's sandboxes are), removed afterwards."""
    from shoal.kernel import sandbox as sb

    path = str(tmp_path / "sbx")
    sb.create_netns(path)
    yield path
    sb.delete_netns(path)


def test_a_port_is_born_in_the_sandbox_with_its_name_mac_and_mode(netns, sandbox):
    nl = Netlink(netns)
    try:
        nl.ensure_bridge("shm-par", mtu=1500, addresses=[], alias="x")
        mac = nl.add_macvlan("eth1", sandbox, parent="shm-par", mode="private", mac="02:42:0a:00:00:07")
        assert mac == "02:42:0a:00:00:07"
        out = subprocess.run(["nsenter", f"--net={sandbox}", "ip", "-j", "-d", "link", "show", "eth1"],
                             capture_output=True, text=True, check=True).stdout
        (link,) = json.loads(out)
        assert link["address"] == mac and link["linkinfo"]["info_data"]["mode"] == "private"
        assert nl.link("eth1") is None  # nothing on the host
        with pytest.raises(KernelError, match="parent interface shm-none was not found"):
            nl.add_macvlan("eth2", sandbox, parent="shm-none", mode="bridge")
    finally:
        nl.close()


def test_what_this_kernel_lacks_is_unsupported_and_leaves_nothing(netns):
    nl = Netlink(netns)
    try:
        nl.ensure_bridge("shm-base", mtu=1500, addresses=[], alias="x")
        before = {i.name for i in nl.links()}
        assert nl.has_link_kind("macvlan") and nl.has_link_kind("bridge")
        if not nl.has_link_kind("vlan"):
            with pytest.raises(KernelUnsupported, match="this kernel has no 8021q"):
                nl.add_vlan("shm-base.10", base="shm-base", vlan_id=10, alias="x")
        assert not nl.has_link_kind("shm-no-such-kind")
        assert {i.name for i in nl.links()} == before
    finally:
        nl.close()


def test_the_stub_parent_keeps_its_carrier_and_is_repaired(netns):
    nl = Netlink(netns)
    try:
        kind = nl.ensure_stub_parent("dm-shm0123456", alias="shoal:x:net:1", mtu=1500)
        assert kind in ("dummy", "ifb")
        (link,) = ip_json(netns, "link", "show", "dm-shm0123456")
        assert "LOWER_UP" in link["flags"] and link["ifalias"] == "shoal:x:net:1"
        subprocess.run(["ip", "-n", netns, "link", "set", "dm-shm0123456", "down"], check=True)
        assert nl.ensure_stub_parent("dm-shm0123456", alias="shoal:x:net:1", mtu=1500) == kind
        assert nl.link("dm-shm0123456").up
    finally:
        nl.close()


def names(path):
    out = subprocess.run(["nsenter", f"--net={path}", "ip", "-j", "link"], capture_output=True, text=True, check=True)
    return [link["ifname"] for link in json.loads(out.stdout)]


def test_a_retired_port_is_gone_for_the_container_at_once(netns, sandbox):
    async def main():
        k = Kernel(netns)
        try:
            await k.ensure_stub_parent("dm-shmretire1", alias="x", mtu=1500)
            await k.add_macvlan("eth0", sandbox, parent="dm-shmretire1", mode="bridge", mac="02:42:0a:00:00:09")
            await k.configure_iface(sandbox, "eth0", ["10.9.0.9/24"], [], default_route=False)
            await k.retire_sandbox_iface(sandbox, "eth0")
            assert "eth0" not in names(sandbox)
            await k.settle()
            assert names(sandbox) == ["lo"]
        finally:
            k.close()

    asyncio.run(main())
