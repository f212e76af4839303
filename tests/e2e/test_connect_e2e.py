"""docker network connect/disconnect on running, created and vanished containers."""

import json

from .conftest import needs_docker

pytestmark = needs_docker


def addrs(d, name):
    out = d.docker("exec", name, "ip", "-o", "-4", "addr").stdout
    return {line.split()[1]: line.split()[3] for line in out.splitlines()}


def test_connect_disconnect(box):
    d = box
    d.docker("network", "create", "--subnet", "10.81.0.0/24", "--ipv6", "--subnet", "fd00:81::/64", "n81")
    d.docker("run", "-d", "--name", "web", "busybox", "sleep", "600")
    d.docker("network", "connect", "--ip", "10.81.0.50", "--ip6", "fd00:81::50", "--alias", "db", "n81", "web")
    assert addrs(d, "web") == {"lo": "127.0.0.1/8", "eth0": "172.17.0.2/16", "eth1": "10.81.0.50/24"}
    v6 = d.docker("exec", "web", "ip", "-o", "-6", "addr", "show", "eth1").stdout
    assert "fd00:81::50/64" in v6
    routes = d.docker("exec", "web", "ip", "route").stdout
    assert routes.splitlines()[0] == "default via 172.17.0.1 dev eth0 "  # the first network keeps the gateway
    d.docker("run", "-d", "--name", "peer", "--network", "n81", "busybox", "sleep", "600")
    assert d.docker("exec", "peer", "ping", "-c1", "-W2", "db").returncode == 0
    info = json.loads(d.docker("inspect", "web").stdout)[0]["NetworkSettings"]["Networks"]
    assert set(info) == {"bridge", "n81"} and info["n81"]["Aliases"] == ["db"]
    p = d.docker("network", "connect", "n81", "web", check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    d.docker("network", "disconnect", "n81", "web")
    assert set(addrs(d, "web")) == {"lo", "eth0"}
    assert d.docker("exec", "peer", "ping", "-c1", "-W1", "10.81.0.50", check=False).returncode != 0
    p = d.docker("network", "disconnect", "n81", "web", check=False)
    assert p.returncode != 0 and "is not connected" in p.stderr
    # created but not started: joins at start, as in Docker
    d.docker("create", "--name", "later", "busybox", "sleep", "600")
    d.docker("network", "connect", "n81", "later")
    d.docker("start", "later")
    assert set(addrs(d, "later")) == {"lo", "eth0", "eth1"}
    # the network's view
    net = json.loads(d.docker("network", "inspect", "n81").stdout)[0]
    assert {c["Name"] for c in net["Containers"].values()} == {"peer", "later"}
    p = d.docker("network", "rm", "n81", check=False)
    assert p.returncode != 0 and "active endpoints" in p.stderr
    d.docker("network", "disconnect", "-f", "n81", "gone-container")  # nothing to do, no error
    d.docker("rm", "-f", "peer", "later")
    d.docker("network", "rm", "n81")


def test_links_and_ipv6(box):
    d = box
    d.docker("network", "create", "--ipv6", "--subnet", "fd00:91::/64", "--subnet", "10.91.0.0/24", "v6net")
    d.docker("run", "-d", "--name", "srv", "--network", "v6net", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "cl", "--network", "v6net", "--link", "srv:backend", "busybox", "sleep", "600")
    assert d.docker("exec", "cl", "ping", "-c1", "-W2", "backend").returncode == 0
    srv = json.loads(d.docker("inspect", "srv").stdout)[0]["NetworkSettings"]["Networks"]["v6net"]
    assert srv["GlobalIPv6Address"] == "fd00:91::2" and srv["IPv6Gateway"] == "fd00:91::1"
    assert d.docker("exec", "cl", "ping", "-c1", "-W2", "fd00:91::2").returncode == 0
    route = d.docker("exec", "cl", "ip", "-6", "route").stdout
    assert "default via fd00:91::1" in route
    d.docker("run", "-d", "--name", "legacy", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "legacy2", "--link", "legacy:old", "busybox", "sleep", "600")
    assert d.docker("exec", "legacy2", "ping", "-c1", "-W2", "old").returncode == 0


def test_the_default_route_follows_network_names_as_in_dockerd(box):
    """dockerd 20.10, measured: the gateway endpoint is the non-internal network whose name
    sorts first, recomputed at every connect and disconnect (on bridge: +zzz keeps it,
    +app moves it, -app moves it back, -bridge goes to zzz, +mid takes it, +bridge takes it)."""
    for name, subnet in (("app", "10.61.0.0/24"), ("zzz", "10.62.0.0/24"), ("mid", "10.63.0.0/24")):
        box.docker("network", "create", "--subnet", subnet, name)
    box.docker("run", "-d", "--name", "gw-c", "busybox", "sleep", "1000")

    def gateway() -> str:
        routes = box.docker("exec", "gw-c", "ip", "route").stdout.splitlines()
        return " ".join(r.split()[2] for r in routes if r.startswith("default"))

    steps = [(None, None, "172.17.0.1"), ("connect", "zzz", "172.17.0.1"), ("connect", "app", "10.61.0.1"),
             ("disconnect", "app", "172.17.0.1"), ("disconnect", "bridge", "10.62.0.1"),
             ("connect", "mid", "10.63.0.1"), ("connect", "bridge", "172.17.0.1")]
    for verb, net, want in steps:
        if verb:
            box.docker("network", verb, net, "gw-c")
        assert gateway() == want, f"after {verb} {net}"
    from tests.e2e.test_model_based import settle_check
    assert settle_check(box) == []


def test_disconnect_frees_the_interface_at_once_and_reconnect_reuses_it(box):
    """The veth pair is retired, not deleted in line: at once the container has no eth1 and
    no address or route through it (an interface on its way out is down, nameless to it),
    the same names are free for the next connect, and nothing is left once the reaper ran."""
    import time

    from tests.e2e.test_model_based import settle_check

    box.docker("network", "create", "--subnet", "10.82.0.0/24", "n82")
    box.docker("run", "-d", "--name", "rc", "busybox", "sleep", "600")
    box.docker("run", "-d", "--name", "rc-peer", "--network", "n82", "busybox", "sleep", "600")
    for _ in range(4):
        box.docker("network", "connect", "--ip", "10.82.0.50", "n82", "rc")
        assert addrs(box, "rc")["eth1"] == "10.82.0.50/24"
        assert box.docker("exec", "rc-peer", "ping", "-c1", "-W2", "10.82.0.50").returncode == 0
        box.docker("network", "disconnect", "n82", "rc")
        links = box.docker("exec", "rc", "ip", "-o", "link").stdout.splitlines()
        assert not [l for l in links if ": eth1" in l]
        assert all("state DOWN" in l or ",UP" not in l for l in links if ": shx" in l), links
        assert set(addrs(box, "rc")) == {"lo", "eth0"}
        assert "10.82.0." not in box.docker("exec", "rc", "ip", "route").stdout
    for _ in range(50):
        links = box.docker("exec", "rc", "ip", "-o", "link").stdout
        if "shx" not in links:
            break
        time.sleep(0.1)
    assert "shx" not in links
    assert settle_check(box) == []
