"""`shoal-cni` run as a container runtime runs it: CNI's environment and stdin, one
namespace per "container" (made here, as podman or a kubelet would), against a real shoald.
The reference `bridge` + `host-local` plugins are run on the same kind of config, and the
two results are compared in shape."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import delete_netns, new_netns

from .conftest import needs_docker

pytestmark = needs_docker

SRC = Path(__file__).resolve().parents[2] / "src"
REFERENCE = Path("/usr/lib/cni")


def cni(command: str, conf: dict, *, cid: str = "", netns: str = "", ifname: str = "eth0",
        plugin: list[str] | None = None, host_ns: str = "", extra_env: dict | None = None):
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_PATH": str(REFERENCE),
           "PYTHONPATH": str(SRC), **(extra_env or {})}
    if cid:
        env["CNI_CONTAINERID"] = cid
    if netns:
        env["CNI_NETNS"] = netns
    if ifname:
        env["CNI_IFNAME"] = ifname
    argv = plugin or [str(SRC / "shoal" / "cni" / "main.py")]  # as installed: /opt/cni/bin/shoal-cni
    if host_ns:
        argv = ["nsenter", f"--net=/run/netns/{host_ns}", *argv]
    p = subprocess.run(argv, input=json.dumps(conf), capture_output=True, text=True, env=env, timeout=120)
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, out


def in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True)


@pytest.fixture
def pods():
    made = []

    def make() -> str:
        made.append(new_netns("cni"))
        return made[-1]

    yield make
    for ns in made:
        delete_netns(ns)


def test_add_check_del_gc_against_shoald(box, pods):
    box.docker("network", "create", "--subnet", "10.93.0.0/24", "cnet")
    box.docker("run", "-d", "--name", "native", "--network", "cnet", "busybox", "sleep", "600")
    native_ip = json.loads(box.docker("inspect", "native").stdout)[0]["NetworkSettings"]["Networks"]["cnet"]["IPAddress"]
    conf = {"cniVersion": "1.1.0", "name": "cnet", "type": "shoal-cni", "socket": box.sock}
    pod = pods()
    path = f"/run/netns/{pod}"

    rc, out = cni("VERSION", {"cniVersion": "1.1.0"})
    assert rc == 0 and "1.1.0" in out["supportedVersions"]
    assert cni("STATUS", conf)[0] == 0
    rc, out = cni("STATUS", {**conf, "name": "nosuch"})
    assert rc == 1 and out["code"] == 50 and "nosuch" in out["msg"]

    rc, result = cni("ADD", conf, cid="pod-a", netns=path)
    assert rc == 0, result
    assert result["cniVersion"] == "1.1.0"
    names = [i["name"] for i in result["interfaces"]]
    assert names[-1] == "eth0" and result["interfaces"][-1]["sandbox"] == path and len(names) == 3  # bridge, veth, eth0
    (ip,) = result["ips"]
    assert ip["address"].startswith("10.93.0.") and ip["gateway"] == "10.93.0.1" and ip["interface"] == 2
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.93.0.1"}]
    addr = ip["address"].split("/")[0]
    # the pod and shoal's own container reach each other; the pod's address is in inspect
    assert in_ns(pod, "busybox", "ping", "-c1", "-W2", native_ip).returncode == 0
    assert box.docker("exec", "native", "ping", "-c1", "-W2", addr).returncode == 0
    net = json.loads(box.docker("network", "inspect", "cnet").stdout)[0]
    assert {c["Name"] for c in net["Containers"].values()} == {"native", "pod-a"}
    assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    # twice: an error, and the first stays
    rc, out = cni("ADD", conf, cid="pod-a", netns=path)
    assert rc == 1 and "already" in out["msg"]
    assert in_ns(pod, "busybox", "ping", "-c1", "-W2", native_ip).returncode == 0

    check_conf = {**conf, "prevResult": result}
    assert cni("CHECK", check_conf, cid="pod-a", netns=path) == (0, None)
    in_ns(pod, "ip", "addr", "flush", "dev", "eth0")
    rc, out = cni("CHECK", check_conf, cid="pod-a", netns=path)
    assert rc == 1 and out["code"] == 100 and "lacks" in out["msg"]

    assert cni("DEL", conf, cid="pod-a", netns=path) == (0, None)
    assert cni("DEL", conf, cid="pod-a", netns=path) == (0, None)  # idempotent
    assert cni("DEL", conf, cid="never-added") == (0, None)
    assert "eth0" not in in_ns(pod, "ip", "-o", "link").stdout
    net = json.loads(box.docker("network", "inspect", "cnet").stdout)[0]
    assert {c["Name"] for c in net["Containers"].values()} == {"native"}

    # GC: what the runtime no longer names goes; what it names stays
    pod_b, pod_c = pods(), pods()
    assert cni("ADD", conf, cid="pod-b", netns=f"/run/netns/{pod_b}")[0] == 0
    assert cni("ADD", conf, cid="pod-c", netns=f"/run/netns/{pod_c}")[0] == 0
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "pod-b", "ifname": "eth0"}]}
    assert cni("GC", gc) == (0, None)
    net = json.loads(box.docker("network", "inspect", "cnet").stdout)[0]
    assert {c["Name"] for c in net["Containers"].values()} == {"native", "pod-b"}

    # the runtime deleted its namespace without a DEL: the self-heal detaches it
    delete_netns(pod_b)
    found = box.api("GET", "/shoal/check")[1]["Findings"]
    assert "attachment pod-b" in [f["Subject"] for f in found]  # and its veth, gone with the namespace
    box.api("POST", "/shoal/check/repair")
    assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    assert cni("DEL", conf, cid="pod-b", netns=f"/run/netns/{pod_b}") == (0, None)
    box.docker("rm", "-f", "native")
    box.docker("network", "rm", "cnet")


def test_bad_input_is_a_cni_error_and_changes_nothing(box, pods):
    box.docker("network", "create", "--subnet", "10.94.0.0/24", "cbad")
    conf = {"cniVersion": "1.0.0", "name": "cbad", "type": "shoal-cni", "socket": box.sock}
    pod = pods()
    path = f"/run/netns/{pod}"
    before = box.api("GET", "/networks/cbad")[1]["Containers"]
    cases = [
        (dict(conf, cniVersion="9.9.9"), dict(cid="p1", netns=path), 1),
        (conf, dict(cid="-bad id", netns=path), 101),
        (conf, dict(cid="p1", netns="/etc/passwd"), 101),
        (conf, dict(cid="p1", netns=path, ifname=""), 4),
        (conf, dict(netns=path), 4),
        (dict(conf, name="nosuch"), dict(cid="p1", netns=path), 101),
        (dict(conf, socket="/nonexistent.sock"), dict(cid="p1", netns=path), 11),
        (dict(conf, runtimeConfig={"ips": ["10.99.0.5/24"]}), dict(cid="p1", netns=path), 101),
    ]
    for c, kw, code in cases:
        rc, out = cni("ADD", c, **kw)
        assert rc == 1 and out["code"] == code, (c, kw, out)
        assert out["msg"]
    assert box.api("GET", "/networks/cbad")[1]["Containers"] == before
    assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    # garbage on stdin
    p = subprocess.run([str(SRC / "shoal" / "cni" / "main.py")], input="{not json", capture_output=True, text=True,
                       env={"CNI_COMMAND": "ADD", "PATH": os.environ["PATH"]})
    assert p.returncode == 1 and json.loads(p.stdout)["code"] == 6
    # a static address and a MAC from runtimeConfig, an 0.4.0 result
    rc, out = cni("ADD", dict(conf, cniVersion="0.4.0", runtimeConfig={"ips": ["10.94.0.77/24"], "mac": "02:42:0a:5e:00:4d"}),
                  cid="p1", netns=path, ifname="net1")
    assert rc == 0, out
    assert out["ips"][0]["address"] == "10.94.0.77/24" and out["ips"][0]["version"] == "4"
    assert out["interfaces"][-1] == {"name": "net1", "mac": "02:42:0a:5e:00:4d", "sandbox": path}
    assert "02:42:0a:5e:00:4d" in in_ns(pod, "ip", "link", "show", "net1").stdout
    assert cni("DEL", conf, cid="p1", netns=path, ifname="net1") == (0, None)
    box.docker("network", "rm", "cbad")


def test_chained_after_another_plugin_and_compared_with_the_reference_bridge(box, pods, tmp_path):
    """After the reference `bridge` plugin (its result as prevResult): ours is appended,
    indices moved. Then the shape of our result against bridge+host-local's own."""
    if not (REFERENCE / "bridge").exists():
        pytest.skip("containernetworking-plugins not installed")
    box.docker("network", "create", "--subnet", "10.95.0.0/24", "cchain")
    pod = pods()
    path = f"/run/netns/{pod}"
    ref_conf = {"cniVersion": "1.0.0", "name": "shtref", "type": "bridge", "bridge": "shtcni0", "isGateway": True,
                "ipam": {"type": "host-local", "subnet": "10.96.0.0/24", "dataDir": str(tmp_path / "ipam"),
                         "routes": [{"dst": "0.0.0.0/0"}]}}
    rc, ref = cni("ADD", ref_conf, cid="pod-r", netns=path, plugin=[str(REFERENCE / "bridge")], host_ns=box.netns)
    assert rc == 0, ref
    conf = {"cniVersion": "1.0.0", "name": "cchain", "type": "shoal-cni", "socket": box.sock, "prevResult": ref}
    rc, out = cni("ADD", conf, cid="pod-r", netns=path, ifname="eth1")
    assert rc == 0, out
    assert out["interfaces"][:3] == ref["interfaces"]
    assert [i["interface"] for i in out["ips"]] == [2, 5]
    assert out["ips"][0] == ref["ips"][0]
    # same shape as the reference: bridge, host veth, container interface with its sandbox
    for theirs, ours in zip(ref["interfaces"], out["interfaces"][3:]):
        assert set(theirs) == set(ours)
    assert set(ref["ips"][0]) == set(out["ips"][1])
    assert in_ns(pod, "ip", "-o", "-4", "addr", "show", "eth1").stdout.count("10.95.0.") == 1
    assert cni("DEL", {k: v for k, v in conf.items() if k != "prevResult"}, cid="pod-r", netns=path, ifname="eth1") == (0, None)
    assert cni("DEL", ref_conf, cid="pod-r", netns=path, plugin=[str(REFERENCE / "bridge")], host_ns=box.netns)[0] == 0
    subprocess.run(["ip", "-n", box.netns, "link", "del", "shtcni0"], capture_output=True)
    box.docker("network", "rm", "cchain")


def test_attachments_survive_a_restart(box, pods):
    box.docker("network", "create", "--subnet", "10.97.0.0/24", "crest")
    pod = pods()
    conf = {"cniVersion": "1.1.0", "name": "crest", "type": "shoal-cni", "socket": box.sock}
    rc, out = cni("ADD", conf, cid="pod-s", netns=f"/run/netns/{pod}")
    assert rc == 0, out
    box.restart()
    assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    gw = out["ips"][0]["gateway"]
    assert in_ns(pod, "busybox", "ping", "-c1", "-W2", gw).returncode == 0
    net = box.api("GET", "/networks/crest")[1]
    assert [c["Name"] for c in net["Containers"].values()] == ["pod-s"]
    assert cni("DEL", conf, cid="pod-s", netns=f"/run/netns/{pod}") == (0, None)
    box.docker("network", "rm", "crest")


def _serve(pod: str, root: Path) -> subprocess.Popen:
    """A tiny web server in the pod's namespace (nsenter execs busybox: the pid is its)."""
    (root / "hello.txt").write_text("hello from the pod\n")
    return subprocess.Popen(["nsenter", f"--net=/run/netns/{pod}", "busybox", "httpd", "-f", "-p", "80",
                             "-h", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _fetch(box, port: int, tries: int = 20) -> str:
    """From shoald's host namespace, to loopback: the DNAT (route_localnet) takes it to the
    pod (a server just started may not listen yet: a few tries; busybox wget's own -T
    crashes here, hence timeout)."""
    for _ in range(tries):
        p = in_ns(box.netns, "timeout", "5", "busybox", "wget", "-qO-", f"http://127.0.0.1:{port}/hello.txt")
        if p.returncode == 0:
            return p.stdout
        time.sleep(0.25)
    return ""


def test_port_mappings_are_published_kept_and_released(make_shoald, busybox_tar, pods, tmp_path):
    """runtimeConfig.portMappings (the reference `portmap` plugin's capability) as `docker
    run -p`: the host port held, a DNAT element; checked, kept over a restart (whose
    self-heal round must not take it for an orphan), released by DEL."""
    box = make_shoald(extra=["--self-heal-interval", "0"])
    box.docker("network", "create", "--subnet", "10.91.0.0/24", "cport")
    ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]
    conf = {"cniVersion": "1.1.0", "name": "cport", "type": "shoal-cni", "socket": box.sock,
            "runtimeConfig": {"portMappings": ports}}
    pod, other = pods(), pods()
    servers = [_serve(pod, tmp_path), _serve(other, tmp_path)]
    try:
        bad = dict(conf, runtimeConfig={"portMappings": [{"hostPort": 0, "containerPort": 80}]})
        rc, out = cni("ADD", bad, cid="pod-bad", netns=f"/run/netns/{other}")
        assert rc == 1 and out["code"] == 101 and "hostPort" in out["msg"], out
        rc, out = cni("ADD", conf, cid="pod-p", netns=f"/run/netns/{pod}")
        assert rc == 0, out
        assert "hello from the pod" in _fetch(box, 8080)
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
        # the same host port for another pod: a clear error, and nothing of it left
        rc, out = cni("ADD", conf, cid="pod-q", netns=f"/run/netns/{other}")
        assert rc == 1 and out["code"] == 101 and "8080" in out["msg"] and "allocated" in out["msg"], out
        assert "eth0" not in in_ns(other, "ip", "-o", "link").stdout
        net = box.api("GET", "/networks/cport")[1]
        assert [c["Name"] for c in net["Containers"].values()] == ["pod-p"]
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
        # a DNAT element deleted from outside is a finding, and repair puts it back
        deleted = in_ns(box.netns, "nft", "delete", "element", "inet", "shoal", "dnat4", "{ tcp . 8080 }")
        assert deleted.returncode == 0, deleted.stderr
        found = box.api("GET", "/shoal/check")[1]["Findings"]
        assert any(f["Area"] == "firewall" and "dnat4" in f["Subject"] + f["Problem"] for f in found), found
        box.api("POST", "/shoal/check/repair")
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
        assert "hello from the pod" in _fetch(box, 8080)

        box.restart()
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
        assert "hello from the pod" in _fetch(box, 8080)
        box.api("POST", "/shoal/check/repair")
        assert "hello from the pod" in _fetch(box, 8080)

        assert cni("DEL", conf, cid="pod-p", netns=f"/run/netns/{pod}") == (0, None)
        assert _fetch(box, 8080, tries=1) == ""
        assert "8080" not in in_ns(box.netns, "nft", "list", "table", "inet", "shoal").stdout
        rc, out = cni("ADD", conf, cid="pod-q", netns=f"/run/netns/{other}")
        assert rc == 0, out
        assert "hello from the pod" in _fetch(box, 8080)
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
        # the runtime removed pod-q's namespace without a DEL: repair frees its port too
        delete_netns(other)
        box.api("POST", "/shoal/check/repair")
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
        assert "8080" not in in_ns(box.netns, "nft", "list", "table", "inet", "shoal").stdout
        rc, out = cni("ADD", conf, cid="pod-p", netns=f"/run/netns/{pod}")
        assert rc == 0, out
        assert "hello from the pod" in _fetch(box, 8080)
        assert cni("DEL", conf, cid="pod-p", netns=f"/run/netns/{pod}") == (0, None)
        assert box.api("GET", "/shoal/check")[1]["Findings"] == []
    finally:
        for p in servers:
            p.kill()
            p.wait()
    box.docker("network", "rm", "cport")
