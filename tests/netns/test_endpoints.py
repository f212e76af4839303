"""Sandboxes and endpoints through the controller on a real kernel (host = a fresh netns)."""

import asyncio
import json
import shutil
import subprocess
import tempfile

import pytest

from shoal.controller import Controller
from shoal.controller.restore import restore
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.errors import ShoalError
from shoal.ipam import DefaultIpam, default_pools, ula_pool
from shoal.kernel import Kernel
from shoal.model import IPAMConfig, NetworkSpec
from shoal.store import MemoryStore


def in_ns(path, *argv):
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True)


def ip_json(path, *args):
    return json.loads(in_ns(path, "ip", "-j", *args).stdout or "[]")


async def make(netns, store=None):
    kernel = Kernel(netns)
    ipam = DefaultIpam(default_pools(), [ula_pool("t")])
    drivers = {"bridge": BridgeDriver(kernel), "host": HostDriver(), "null": NullDriver()}
    ctl = Controller(store or MemoryStore(), kernel, ipam, drivers, "a" * 64, exec_root=tempfile.mkdtemp(prefix="sht-"))
    await restore(ctl)
    return ctl


async def cleanup(ctl):
    for sb in list(ctl.sandboxes.values()):
        if sb.path:
            await ctl.kernel.delete_netns(sb.path)
    ctl.kernel.close()
    shutil.rmtree(ctl.exec_root, ignore_errors=True)


def test_two_sandboxes_on_the_default_bridge_talk(netns):
    async def go():
        ctl = await make(netns)
        try:
            a = await ctl.create_sandbox("a" * 64)
            b = await ctl.create_sandbox("b" * 64)
            ea = await ctl.connect("bridge", a.id, name="first")
            eb = await ctl.connect("bridge", b.id, name="second")
            assert (ea.ipv4, eb.ipv4) == ("172.17.0.2/16", "172.17.0.3/16")
            (eth0,) = ip_json(a.path, "addr", "show", "eth0")
            assert eth0["address"] == "02:42:ac:11:00:02" and eth0["mtu"] == 1500
            assert ("172.17.0.2", 16) in {(x["local"], x["prefixlen"]) for x in eth0["addr_info"]}
            routes = ip_json(a.path, "route")
            assert {"dst": "default", "gateway": "172.17.0.1"}.items() <= routes[0].items()
            assert in_ns(a.path, "busybox", "ping", "-c1", "-W2", "172.17.0.3").returncode == 0
            assert in_ns(b.path, "busybox", "ping", "-c1", "-W2", "172.17.0.1").returncode == 0
            host_ifs = {l["ifname"]: l for l in json.loads(subprocess.run(
                ["ip", "-n", netns, "-j", "link"], capture_output=True, text=True).stdout)}
            assert host_ifs[ea.host_ifname]["master"] == "shoal0"
            inspect = ctl.network_containers(ctl.find_network("bridge"))
            assert inspect[a.id]["IPv4Address"] == "172.17.0.2/16"
            await ctl.disconnect("bridge", a.id)
            assert ea.host_ifname not in subprocess.run(["ip", "-n", netns, "link"], capture_output=True,
                                                        text=True).stdout
            assert ip_json(a.path, "addr", "show", "eth0") == []
            again = await ctl.connect("bridge", a.id, name="first")
            assert again.ipv4 == "172.17.0.2/16"  # released, then the lowest free again
            await ctl.delete_sandbox(a.id)
            await ctl.delete_sandbox(b.id)
        finally:
            await cleanup(ctl)
    asyncio.run(go())


def test_second_network_eth1_static_ip_and_rollback(netns):
    async def go():
        ctl = await make(netns)
        try:
            await ctl.create_network(NetworkSpec(name="n1", ipam_configs=(IPAMConfig(subnet="10.9.0.0/24"),),
                                                 enable_ipv6=True))
            sb = await ctl.create_sandbox("c" * 64)
            await ctl.connect("bridge", sb.id, name="c")
            ep = await ctl.connect("n1", sb.id, name="c", ipv4="10.9.0.77")
            assert ep.ifname == "eth1" and ep.ipv4 == "10.9.0.77/24" and ep.ipv6.endswith("::2/64")
            names = {l["ifname"] for l in ip_json(sb.path, "link")}
            assert names == {"lo", "eth0", "eth1"}
            other = await ctl.create_sandbox("d" * 64)
            with pytest.raises(ShoalError, match="already in use"):
                await ctl.connect("n1", other.id, name="d", ipv4="10.9.0.77")
            before = {l["ifname"] for l in json.loads(subprocess.run(
                ["ip", "-n", netns, "-j", "link"], capture_output=True, text=True).stdout)}
            with pytest.raises(ShoalError, match="invalid MAC"):
                await ctl.connect("bridge", other.id, name="d", mac="zz:zz")
            # refused at the edge now (model.validate); the kernel's own refusal and every other
            # failure half-way are covered by tests/e2e/test_crash_points.py (fail-at)
            with pytest.raises(ShoalError, match="multicast"):
                await ctl.connect("bridge", other.id, name="d", mac="01:00:5e:00:00:01")
            after = {l["ifname"] for l in json.loads(subprocess.run(
                ["ip", "-n", netns, "-j", "link"], capture_output=True, text=True).stdout)}
            assert before == after
            assert (await ctl.connect("bridge", other.id, name="d")).ipv4 == "172.17.0.3/16"
            for s in (sb.id, other.id):
                await ctl.delete_sandbox(s)
        finally:
            await cleanup(ctl)
    asyncio.run(go())
