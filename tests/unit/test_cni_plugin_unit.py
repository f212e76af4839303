"""shoal-cni without a daemon: VERSION, result shapes, prevResult merging, CNI's error codes."""

from __future__ import annotations

import pytest

from shoal.cni import main as cni

OURS = {"interfaces": [{"name": "br-x", "mac": "aa"}, {"name": "vethx", "mac": "bb"},
                       {"name": "eth1", "mac": "cc", "sandbox": "/run/netns/p"}],
        "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}], "dns": {}}


def test_version_is_answered_without_a_daemon():
    out = cni.run("VERSION", {"cniVersion": "1.0.0"})
    assert out == {"cniVersion": "1.0.0", "supportedVersions": cni.SUPPORTED}


def test_merge_appends_after_the_previous_plugins_and_moves_interface_indices():
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "cni0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/p"}],
            "ips": [{"address": "10.9.0.2/24", "interface": 2}], "dns": {"nameservers": ["10.9.0.1"]}}
    out = cni.merge(prev, OURS)
    assert [i["name"] for i in out["interfaces"]] == ["cni0", "veth0", "eth0", "br-x", "vethx", "eth1"]
    assert [i["interface"] for i in out["ips"]] == [2, 5]
    assert out["routes"] == OURS["routes"] and out["dns"] == {"nameservers": ["10.9.0.1"]}
    assert "cniVersion" not in out
    assert cni.merge(None, OURS) is OURS


def test_old_versions_carry_the_address_family():
    assert cni.shape(OURS, "0.4.0")["ips"][0]["version"] == "4"
    assert "version" not in cni.shape(OURS, "1.1.0")["ips"][0]
    assert cni.shape(OURS, "1.1.0")["cniVersion"] == "1.1.0"


@pytest.mark.parametrize("cmd,conf,env,code", [
    ("ADD", {"cniVersion": "0.2.0", "name": "n"}, {}, cni.INCOMPATIBLE),
    ("ADD", {"cniVersion": "1.1.0"}, {}, cni.INVALID_CONFIG),
    ("ADD", {"cniVersion": "1.1.0", "name": "n"}, {"CNI_NETNS": "/p", "CNI_IFNAME": "eth0"}, cni.BAD_ENV),
    ("DEL", {"cniVersion": "1.1.0", "name": "n"}, {"CNI_CONTAINERID": "c"}, cni.BAD_ENV),
    ("CHECK", {"cniVersion": "1.1.0", "name": "n"}, {"CNI_CONTAINERID": "c", "CNI_NETNS": "/p", "CNI_IFNAME": "eth0"},
     cni.INVALID_CONFIG),
    ("CHECK", {"cniVersion": "1.1.0", "name": "n", "prevResult": {"interfaces": []}},
     {"CNI_CONTAINERID": "c", "CNI_NETNS": "/p", "CNI_IFNAME": "eth0"}, cni.CHECK_FAILED),
    ("BOGUS", {"cniVersion": "1.1.0", "name": "n"}, {}, cni.BAD_ENV),
    ("ADD", {"cniVersion": "1.1.0", "name": "n", "socket": "/nonexistent/shc.sock"},
     {"CNI_CONTAINERID": "c", "CNI_NETNS": "/p", "CNI_IFNAME": "eth0"}, cni.TRY_AGAIN),
    ("STATUS", {"cniVersion": "1.1.0", "name": "n", "socket": "/nonexistent/shc.sock"}, {}, cni.UNAVAILABLE),
])
def test_errors_are_cni_codes(monkeypatch, cmd, conf, env, code):
    for name in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(cni.CniError) as exc:
        cni.run(cmd, conf)
    assert exc.value.code == code and exc.value.msg


def test_port_mappings_are_forwarded_in_the_add_body(monkeypatch):
    sent = {}

    def fake_call(sock, method, path, body=None, **_kw):
        sent.update(body)
        return OURS

    monkeypatch.setattr(cni, "call", fake_call)
    for k, v in {"CNI_CONTAINERID": "c", "CNI_NETNS": "/p", "CNI_IFNAME": "eth0"}.items():
        monkeypatch.setenv(k, v)
    pm = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]
    cni.run("ADD", {"cniVersion": "1.1.0", "name": "n", "runtimeConfig": {"portMappings": pm}})
    assert sent["PortMappings"] == pm
    sent.clear()
    cni.run("ADD", {"cniVersion": "1.1.0", "name": "n"})
    assert "PortMappings" not in sent


def test_port_mappings_are_checked_at_the_api_edge():
    from shoal.api.cni import port_mappings
    from shoal.errors import InvalidParameter
    from shoal.model.ports import PortRequest

    assert port_mappings(None) == ()
    got = port_mappings([{"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": ""},
                         {"hostPort": 53, "containerPort": 5353, "protocol": "udp", "hostIP": "127.0.0.1"},
                         {"hostPort": 9000, "containerPort": 90}])
    assert got == (PortRequest(80, "tcp", "", 8080), PortRequest(5353, "udp", "127.0.0.1", 53), PortRequest(90, "tcp", "", 9000))
    for bad, words in [
        ({"hostPort": 0, "containerPort": 80}, "hostPort"),
        ({"hostPort": 65536, "containerPort": 80}, "hostPort"),
        ({"hostPort": "8080", "containerPort": 80}, "hostPort"),
        ({"hostPort": True, "containerPort": 80}, "hostPort"),
        ({"hostPort": 8080}, "containerPort"),
        ({"hostPort": 8080, "containerPort": 80, "protocol": "sctp"}, "sctp"),
        ({"hostPort": 8080, "containerPort": 80, "hostIP": "nope"}, "hostIP"),
        ({"hostPort": 8080, "containerPort": 80, "extra": 1}, "extra"),
        ("8080:80", "object"),
    ]:
        with pytest.raises(InvalidParameter, match=words):
            port_mappings([bad])
    with pytest.raises(InvalidParameter, match="list"):
        port_mappings({"hostPort": 1})
