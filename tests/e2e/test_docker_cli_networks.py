"""The real docker CLI against shoald: the walkthrough's network steps and issue #2's list."""

import json

from .conftest import needs_docker

pytestmark = needs_docker


def test_version_info_and_predefined(shoald):
    v = shoald.docker("version", "--format", "{{json .}}")
    data = json.loads(v.stdout)
    assert data["Server"]["ApiVersion"] == "1.52"
    info = json.loads(shoald.docker("info", "--format", "{{json .}}").stdout)
    assert info["DefaultAddressPools"][0] == {"Base": "172.17.0.0/16", "Size": 16}
    ls = shoald.docker("network", "ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = {line.split()[1]: line.split()[2:] for line in ls[1:]}
    assert rows == {"bridge": ["bridge", "local"], "host": ["host", "local"], "none": ["null", "local"]}
    (bridge,) = json.loads(shoald.docker("network", "inspect", "bridge").stdout)
    assert bridge["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
    assert bridge["Options"] == {
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.enable_icc": "true",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
        "com.docker.network.bridge.name": "shoal0",
        "com.docker.network.driver.mtu": "1500",
    }
    link = shoald.link("shoal0")
    assert link["linkinfo"]["info_kind"] == "bridge" and "UP" in link["flags"] and link["mtu"] == 1500
    addrs = [(a["local"], a["prefixlen"]) for a in shoald.ip("addr", "show", "shoal0")[0]["addr_info"]]
    assert ("172.17.0.1", 16) in addrs


def test_walkthrough_create_inspect_rm(shoald):
    out = shoald.docker("network", "create", "--driver", "bridge", "my-bridge-network").stdout.strip()
    assert len(out) == 64
    (net,) = json.loads(shoald.docker("network", "inspect", "my-bridge-network").stdout)
    assert net["Id"] == out and net["Driver"] == "bridge" and net["Scope"] == "local"
    assert net["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
    for key in ("Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal",
                "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"):
        assert key in net
    br = f"br-{out[:12]}"
    assert shoald.link(br)["mtu"] == 1500
    for ref in (out, out[:12], "my-bridge-network"):
        assert json.loads(shoald.docker("network", "inspect", ref).stdout)[0]["Id"] == out
    assert shoald.docker("network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
                         "my-bridge-network").stdout.strip() == "my-bridge-network 172.18.0.0/16"
    shoald.docker("network", "rm", "my-bridge-network")
    assert shoald.link(br) is None


def test_create_with_every_flag(shoald):
    shoald.docker(
        "network", "create", "--subnet", "10.5.0.0/24", "--gateway", "10.5.0.254",
        "--ip-range", "10.5.0.128/25", "--aux-address", "router=10.5.0.200", "--internal", "--attachable",
        "--label", "team=net", "-o", "com.docker.network.driver.mtu=1400",
        "-o", "com.docker.network.bridge.name=shoalbr5", "--ipv6", "--subnet", "fd00:5::/64", "full",
    )
    (net,) = json.loads(shoald.docker("network", "inspect", "full").stdout)
    assert net["IPAM"]["Config"] == [
        {"Subnet": "10.5.0.0/24", "IPRange": "10.5.0.128/25", "Gateway": "10.5.0.254",
         "AuxiliaryAddresses": {"router": "10.5.0.200"}},
        {"Subnet": "fd00:5::/64", "Gateway": "fd00:5::1"},
    ]
    assert net["Internal"] and net["Attachable"] and net["EnableIPv6"]
    assert net["Labels"] == {"team": "net"}
    link = shoald.link("shoalbr5")
    assert link["mtu"] == 1400
    addrs = {(a["local"], a["prefixlen"]) for a in shoald.ip("addr", "show", "shoalbr5")[0]["addr_info"]}
    assert {("10.5.0.254", 24), ("fd00:5::1", 64)} <= addrs
    shoald.docker("network", "create", "--ipv6", "ula")
    (ula,) = json.loads(shoald.docker("network", "inspect", "ula").stdout)
    v6 = ula["IPAM"]["Config"][1]["Subnet"]
    assert v6.startswith("fd") and v6.endswith("::/64")


def test_ls_flags(shoald):
    shoald.docker("network", "create", "--label", "env=prod", "prod-net")
    shoald.docker("network", "create", "dev-net")
    q = shoald.docker("network", "ls", "-q").stdout.split()
    assert len(q) == 5 and all(len(i) == 12 for i in q)
    full = shoald.docker("network", "ls", "-q", "--no-trunc").stdout.split()
    assert all(len(i) == 64 for i in full)
    names = lambda *a: shoald.docker("network", "ls", "--format", "{{.Name}}", *a).stdout.split()  # noqa: E731
    assert names() == ["bridge", "dev-net", "host", "none", "prod-net"]
    assert names("--filter", "label=env=prod") == ["prod-net"]
    assert names("--filter", "driver=null") == ["none"]
    assert names("--filter", "name=net") == ["dev-net", "prod-net"]
    assert names("--filter", "type=builtin") == ["bridge", "host", "none"]
    assert names("--filter", "type=custom") == ["dev-net", "prod-net"]
    assert names("--filter", "dangling=true") == ["dev-net", "prod-net"]
    assert names("--filter", "scope=local", "--filter", "name=prod") == ["prod-net"]
    prod_id = shoald.docker("network", "inspect", "-f", "{{.Id}}", "prod-net").stdout.strip()
    assert names("--filter", f"id={prod_id[:8]}") == ["prod-net"]
    bad = shoald.docker("network", "ls", "--filter", "color=red", check=False)
    assert bad.returncode != 0 and "invalid filter" in bad.stderr


def test_rm_several_and_prune(shoald):
    for n in ("a1", "a2", "a3", "keep"):
        shoald.docker("network", "create", *(["--label", "keep=1"] if n == "keep" else []), n)
    out = shoald.docker("network", "rm", "a1", "a2").stdout.split()
    assert out == ["a1", "a2"]
    pruned = shoald.docker("network", "prune", "-f", "--filter", "label!=keep=1").stdout
    assert "a3" in pruned and "keep" not in pruned
    names = shoald.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert names == ["bridge", "host", "keep", "none"]


def test_errors_have_dockers_codes_and_change_nothing(shoald):
    shoald.docker("network", "create", "taken")
    before = shoald.api("GET", "/networks")[1]
    links_before = sorted(l["ifname"] for l in shoald.ip("link"))
    cases = [
        (["network", "create", "taken"], "network with name taken already exists"),
        (["network", "create", "--subnet", "10.0.0.1/24", "x"], "it should be 10.0.0.0/24"),
        (["network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.0.1.1", "x"], ""),
        (["network", "create", "--subnet", "172.18.0.0/24", "x"], "overlaps"),
        (["network", "create", "--subnet", "10.0.0.0/33", "x"], ""),
        (["network", "create", "-d", "nosuch", "x"], 'plugin "nosuch" not found'),
        (["network", "create", "  "], "invalid name"),
        (["network", "create", "-o", "com.docker.network.bridge.name=abcdefghijklmnop", "x"], "too long"),
        (["network", "create", "-o", "com.docker.network.bridge.name=shoal0", "x"], "already used"),
        (["network", "create", "-o", "com.docker.network.bridge.enable_icc=perhaps", "x"], "true or false"),
        (["network", "create", "bridge"], "predefined"),
        (["network", "rm", "bridge"], "pre-defined network and cannot be removed"),
        (["network", "rm", "none"], "pre-defined"),
        (["network", "inspect", "nosuch"], "nosuch"),
    ]
    for args, needle in cases:
        p = shoald.docker(*args, check=False)
        assert p.returncode != 0, args
        assert needle in p.stderr, (args, p.stderr)
    assert shoald.api("GET", "/networks")[1] == before
    assert sorted(l["ifname"] for l in shoald.ip("link")) == links_before
    status, body = shoald.api("POST", "/networks/create", {"Name": "x", "Labels": {"a": 1}})
    assert status == 400 and "cannot unmarshal" in body["message"]
    status, body = shoald.api("DELETE", "/networks/bridge")
    assert status == 403
    status, body = shoald.api("GET", "/networks/nosuch")
    assert (status, body) == (404, {"message": "network nosuch not found"})


def test_foreign_link_name_is_refused_and_untouched(shoald):
    import subprocess

    subprocess.run(["ip", "-n", shoald.netns, "link", "add", "sht-foreign", "type", "veth",
                    "peer", "name", "sht-foreign-p"], check=True)
    p = shoald.docker("network", "create", "-o", "com.docker.network.bridge.name=sht-foreign", "x", check=False)
    assert p.returncode != 0 and "does not own" in p.stderr
    assert shoald.link("sht-foreign")["linkinfo"]["info_kind"] == "veth"


def test_overlay_without_a_cluster_store_says_what_to_do(shoald):
    p = shoald.docker("network", "create", "-d", "overlay", "ov", check=False)
    assert p.returncode != 0 and "--cluster-store" in p.stderr, p.stderr
    assert "ov" not in shoald.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    status, info = shoald.api("GET", "/info")
    assert info["ClusterStore"] == "" and info["Warnings"] == []


def test_names_as_dockerd_takes_them_and_swarm_answers_as_on_a_node_in_no_swarm(box):
    """Measured against dockerd 20.10.24: any name but an empty or all-blank one is taken
    ("test 01", "x:y", "-lead"); swarm's endpoints answer 503 with dockerd's words, which
    clients' clean-up code reads as "no swarm here"."""
    d = box
    for name in ("test 01", "x:y", "-lead", "émoji"):
        d.docker("network", "create", "--", name)
        d.docker("run", "-d", "--name", "c1", f"--network={name}", "busybox", "sleep", "60")
        assert name in d.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", "c1").stdout
        d.docker("rm", "-f", "c1")
        assert d.docker("network", "inspect", "-f", "{{.Name}}", "--", name).stdout.strip() == name
        d.docker("network", "rm", "--", name)
    p = d.docker("network", "create", " ", check=False)
    assert p.returncode != 0 and "invalid name" in p.stderr
    p = d.docker("service", "ls", check=False)
    assert p.returncode != 0 and "This node is not a swarm manager" in p.stderr, p.stderr
    p = d.docker("node", "ls", check=False)
    assert p.returncode != 0 and "This node is not a swarm manager" in p.stderr
    p = d.docker("swarm", "leave", check=False)
    assert p.returncode != 0 and "This node is not part of a swarm" in p.stderr
    p = d.docker("swarm", "init", check=False)
    assert p.returncode != 0 and "not supported by shoal" in p.stderr
