"""The kernel facade against a real, fresh network namespace."""

import asyncio
import json
import subprocess

import pytest

from shoal.kernel import Kernel, KernelError, Netlink


def ip_json(netns, *args):
    out = subprocess.run(["ip", "-n", netns, "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def test_ensure_bridge_creates_and_repairs(netns):
    nl = Netlink(netns)
    try:
        assert nl.ensure_bridge("br-t1", mtu=1400, addresses=["10.9.0.1/24", "fd00:9::1/64"], alias="shoal:x:net:1")
        (link,) = ip_json(netns, "-d", "link", "show", "br-t1")
        assert link["mtu"] == 1400 and link["ifalias"] == "shoal:x:net:1"
        assert link["linkinfo"]["info_kind"] == "bridge" and "UP" in link["flags"]
        addrs = {(a["local"], a["prefixlen"]) for a in ip_json(netns, "addr", "show", "br-t1")[0]["addr_info"]}
        assert ("10.9.0.1", 24) in addrs and ("fd00:9::1", 64) in addrs
        subprocess.run(["ip", "-n", netns, "addr", "flush", "dev", "br-t1"], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "br-t1", "down"], check=True)
        assert nl.ensure_bridge("br-t1", mtu=1400, addresses=["10.9.0.1/24"], alias="shoal:x:net:1") is False
        assert nl.link("br-t1").up
        assert "10.9.0.1/24" in next(i for i in nl.links() if i.name == "br-t1").addresses
        nl.delete_link("br-t1")
        nl.delete_link("br-t1")  # idempotent
        assert nl.link("br-t1") is None
    finally:
        nl.close()


def test_refused_setup_leaves_nothing(netns):
    nl = Netlink(netns)
    try:
        with pytest.raises(KernelError, match="br-t2"):
            nl.ensure_bridge("br-t2", mtu=70000, addresses=["10.9.0.1/24"], alias="a")
        assert nl.link("br-t2") is None
        assert [l["ifname"] for l in ip_json(netns, "link")] == ["lo"]
    finally:
        nl.close()


def test_routes_and_async_facade(netns):
    async def go():
        k = Kernel(netns)
        try:
            await k.ensure_bridge("br-t3", mtu=1500, addresses=["10.44.0.1/16"], alias="a")
            assert "10.44.0.0/16" in await k.routes()
            assert any(l.name == "br-t3" for l in await k.links())
            await k.delete_link("br-t3")
            assert await k.link("br-t3") is None
        finally:
            k.close()
    asyncio.run(go())


def test_route_dump_matches_ip_route(netns):
    """Our struct-level dump agrees with iproute2 on the main table: v4, v6, many routes."""
    batch = ["link add sht-d0 type bridge", "link set sht-d0 up", "addr add 10.60.0.1/16 dev sht-d0",
             "addr add fd00:60::1/64 dev sht-d0 nodad", "route add default via 10.60.0.254"]
    batch += [f"route add 10.{61 + i // 250}.{i % 250}.0/24 via 10.60.0.2" for i in range(600)]
    batch += ["route add 192.0.2.128/25 via 10.60.0.3 table 100"]  # another table: left out
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True)
    want = set()
    for family in ("-4", "-6"):
        for r in ip_json(netns, family, "route", "show", "table", "main"):
            if r["dst"] != "default":
                dst = r["dst"] if "/" in r["dst"] else f"{r['dst']}/{32 if family == '-4' else 128}"
                want.add(dst)
    nl = Netlink(netns)
    try:
        got = nl.routes()
    finally:
        nl.close()
    assert sorted(got) == sorted(want)
    assert "10.61.0.0/24" in want and "fd00:60::/64" in want and len(want) > 600


def test_bridge_mac_is_set_and_pinned(netns):
    """A bridge whose MAC is not set follows its lowest port's (issue #14.1): ours never do."""
    nl = Netlink(netns)
    try:
        nl.ensure_bridge("br-mac", mtu=1500, addresses=[], alias="a", mac="02:aa:bb:cc:dd:ee")
        subprocess.run(["ip", "-n", netns, "link", "add", "br-old", "type", "bridge"], check=True)
        old_mac = nl.link("br-old").mac
        nl.ensure_bridge("br-old", mtu=1500, addresses=[], alias="b", mac="02:11:11:11:11:11")
        assert nl.link("br-old").mac == old_mac  # an existing bridge keeps what its neighbours know
        for i, bridge in enumerate(("br-mac", "br-old")):
            subprocess.run(["ip", "-n", netns, "link", "add", f"vlow{i}", "address", f"00:00:00:00:00:0{i + 1}",
                            "type", "veth", "peer", "name", f"vlowp{i}"], check=True)
            subprocess.run(["ip", "-n", netns, "link", "set", f"vlow{i}", "master", bridge, "up"], check=True)
        assert nl.link("br-mac").mac == "02:aa:bb:cc:dd:ee"
        assert nl.link("br-old").mac == old_mac
    finally:
        nl.close()


def test_retired_links_free_their_names_at_once_and_go_in_the_background(netns):
    """A bridge's and a veth pair's deletion waits for RCU (tens of ms): retired, the names,
    addresses and routes are free before the reaper has deleted anything."""
    from tests.conftest import delete_netns, new_netns

    sandbox = new_netns("rt")
    path = f"/run/netns/{sandbox}"

    async def go():
        k = Kernel(netns)
        try:
            await k.ensure_bridge("br-rt", mtu=1500, addresses=["10.46.0.1/16"], alias="shoal:t:net:N1")
            await k.add_veth("vethrt", "eth1", path, mac="", mtu=1500, bridge="br-rt", alias="shoal:t:ep:E1")
            await k.configure_iface(path, "eth1", ["10.46.0.2/16"], ["10.46.0.1"], default_route=True)
            await k.retire_veth("vethrt", path, "eth1", "E1")
            inside = {l["ifname"]: l for l in ip_json(sandbox, "addr")}
            assert "eth1" not in inside
            assert all(not l["addr_info"] for name, l in inside.items() if name != "lo")
            assert ip_json(sandbox, "route") == []
            assert await k.link("vethrt") is None
            # the same names again, at once: a reconnect
            await k.add_veth("vethrt", "eth1", path, mac="", mtu=1500, bridge="br-rt", alias="shoal:t:ep:E2")
            await k.configure_iface(path, "eth1", ["10.46.0.2/16"], ["10.46.0.1"], default_route=True)
            await k.retire_veth("vethrt", "", "eth1", "nobody")  # not its alias: left alone
            assert (await k.link("vethrt")).alias == "shoal:t:ep:E2"
            await k.retire_link("br-rt", "N1", ["10.46.0.1/16"])
            assert await k.link("br-rt") is None and "10.46.0.0/16" not in await k.routes()
            assert "10.46.0.1" not in json.dumps(ip_json(netns, "route", "show", "table", "local"))
            await k.ensure_bridge("br-rt", mtu=1500, addresses=["10.46.0.1/16"], alias="shoal:t:net:N2")
            await k.settle()
            assert k.retiring() == set()
            names = {l.name: l for l in await k.links()}
            assert not [n for n in names if n.startswith("shx")]
            assert not names["vethrt"].master  # its bridge went; the port stays
            await k.retire_veth("vethrt", path, "eth1", "E2")
            reaping = k.retiring()  # first: one reaped after it is in neither
            links = await k.links()
            retired = [l for l in links if l.name.startswith("shx")]  # unless reaped meanwhile
            assert all(l.alias == "shoal:t:retired:gone-E2" for l in retired)  # ours, owned by nothing
            assert {l.name for l in retired} <= reaping
            await k.settle()
            assert [l["ifname"] for l in ip_json(sandbox, "link")] == ["lo"]
        finally:
            k.close()

    try:
        asyncio.run(go())
    finally:
        delete_netns(sandbox)
