"""Strings that reach the kernel, a file or nft are refused at the edge (400) and leave
nothing behind; good ones get through (model.validate)."""

import pytest

from .conftest import needs_docker

pytestmark = needs_docker


@pytest.mark.parametrize("extra, needle", [
    ({"Hostname": "a\nb"}, "invalid hostname"),
    ({"Hostname": "a" * 65}, "longer than 64"),
    ({"HostConfig": {"Sysctls": {"vm.swappiness": "1"}}}, 'sysctl "vm.swappiness" is not in a separate kernel namespace'),
    ({"HostConfig": {"Sysctls": {"net.ipv4/../x": "1"}}}, "invalid sysctl"),
    ({"HostConfig": {"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}},
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    ({"HostConfig": {"DnsSearch": ["example.com\nnameserver 9.9.9.9"]}}, "is not a valid domain"),
    ({"HostConfig": {"DnsOptions": ["ndots:1 rotate"]}}, "invalid DNS option"),
    ({"HostConfig": {"ExtraHosts": ["x:1.2.3.4:5"]}}, 'invalid IP address in add-host: "1.2.3.4:5"'),
    ({"MacAddress": "zz:zz"}, "address zz:zz: invalid MAC address"),
])
def test_bad_container_values_are_400_and_create_nothing(box, extra, needle):
    d = box
    body = {"Image": "busybox", "Cmd": ["true"], **extra}
    st, resp = d.api("POST", "/v1.41/containers/create", body)
    assert st == 400 and needle in resp["message"], (st, resp)
    assert d.docker("ps", "-aq").stdout == ""


def test_bad_bridge_name_is_400_and_creates_no_network_or_link(box):
    d = box
    before = {link["ifname"] for link in d.ip("link", "show")}
    for name in ("a/b", "0123456789abcdef", "br*"):
        p = d.docker("network", "create", "-o", f"com.docker.network.bridge.name={name}", "nbad", check=False)
        assert p.returncode != 0 and "invalid bridge name" in p.stderr, p.stderr
    assert "nbad" not in d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {link["ifname"] for link in d.ip("link", "show")} == before


def test_good_values_get_through(box):
    d = box
    out = d.docker("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--hostname", "web-1.example",
                   "--mac-address", "02-42-AC-11-00-99", "busybox", "sh", "-c",
                   "cat /proc/sys/net/ipv4/ip_forward; hostname; cat /sys/class/net/eth0/address").stdout
    assert out.split() == ["1", "web-1.example", "02:42:ac:11:00:99"]
