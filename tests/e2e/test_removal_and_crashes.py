"""Issue #14, items 1-3: what removals and crashes must leave behind (nothing), and the
gateway MAC that must not move when a container leaves.

Each test compares the truth on the kernel's side (nft set and map elements, links,
conmon processes, held host ports) before and after, not only the API's answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import needs_docker

pytestmark = needs_docker

PORT = "47913"


def inspect(d, name):
    return json.loads(d.docker("inspect", name).stdout)[0]


def in_ns(netns, *cmd):
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *cmd], capture_output=True, text=True, timeout=30)


def nft_elements(d) -> set[str]:
    """Every element of every set and map in shoal's tables, as canonical JSON."""
    data = json.loads(in_ns(d.netns, "nft", "-j", "list", "ruleset").stdout or '{"nftables": []}')
    out = set()
    for item in data["nftables"]:
        for kind in ("set", "map"):
            obj = item.get(kind)
            if obj and obj.get("table") == "shoal":
                out |= {f"{obj['family']} {obj['name']} {json.dumps(e, sort_keys=True)}" for e in obj.get("elem", ())}
    return out


def veths(d) -> list[str]:
    return [link["ifname"] for link in d.ip("link") if link["ifname"].startswith("veth")]


def conmons(cid: str) -> list[int]:
    """conmon processes monitoring `cid` (by exact id in their argv)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and cid.encode() in argv:
            out.append(int(entry.name))
    return out


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def assert_port_free_again(d, name):
    """The host port can be published at once by a new container (no 'already allocated')."""
    d.docker("run", "-d", "--name", name, "-p", f"{PORT}:80", "busybox", "sleep", "600")
    assert any(PORT in e for e in nft_elements(d))
    d.docker("rm", "-f", name)


# -- item 2: every removal path releases the published ports -------------------------------

REMOVALS = ["rm-f", "stop-then-rm", "kill-then-rm", "auto-remove", "exit-then-prune", "exit-while-daemon-down",
            "daemon-killed-then-rm-f"]


@pytest.mark.parametrize("path", REMOVALS)
def test_every_removal_path_releases_published_ports(box, path):
    d = box
    before, links_before = nft_elements(d), veths(d)
    run = ["run", "-d", "--name", "web", "-p", f"{PORT}:80", "-p", "47914/udp"]
    if path == "auto-remove":
        run.append("--rm")
    cid = d.docker(*run, "busybox", "httpd", "-f", "-p", "80").stdout.strip()
    published = nft_elements(d) - before
    assert any(PORT in e for e in published), published
    if path == "rm-f":
        d.docker("rm", "-f", "web")
    elif path == "stop-then-rm":
        d.docker("stop", "-t", "1", "web")
        d.docker("rm", "web")
    elif path == "kill-then-rm":
        d.docker("kill", "web")
        d.docker("wait", "web")
        d.docker("rm", "web")
    elif path == "auto-remove":
        d.docker("kill", "web")
        wait_for(lambda: d.api("GET", f"/containers/{cid}/json")[0] == 404, what="--rm to remove it")
    elif path == "exit-then-prune":
        d.docker("run", "-d", "--name", "keeper", "busybox", "sleep", "600")  # running: prune keeps it
        d.docker("kill", "web")
        d.docker("wait", "web")
        out = d.docker("container", "prune", "-f").stdout
        assert cid in out and d.api("GET", f"/containers/{cid}/json")[0] == 404
        assert inspect(d, "keeper")["State"]["Running"]
        d.docker("rm", "-f", "keeper")
    elif path == "exit-while-daemon-down":
        d.stop()  # SIGTERM: containers keep running
        runc_root = d.root / "data" / "runtime" / "runc"
        subprocess.run(["runc", "--root", str(runc_root), "kill", cid, "KILL"], check=True)
        wait_for(lambda: not conmons(cid), what="the container's monitor to exit")
        d.start()
        assert nft_elements(d) == before  # released at restore, before any removal
        assert veths(d) == links_before
        d.docker("rm", "web")
    elif path == "daemon-killed-then-rm-f":
        d.stop(signal.SIGKILL)
        d.start()
        assert nft_elements(d) - before == published  # still published: it still runs
        d.docker("rm", "-f", "web")
    assert nft_elements(d) == before
    assert veths(d) == links_before
    assert not conmons(cid)
    assert_port_free_again(d, "web2")


def test_same_address_never_gets_the_old_containers_traffic(box):
    d = box
    d.docker("run", "-d", "--name", "old", "-p", f"{PORT}:80", "busybox", "sleep", "600")
    old_ip = inspect(d, "old")["NetworkSettings"]["IPAddress"]
    d.docker("rm", "-f", "old")
    d.docker("run", "-d", "--name", "new", "busybox", "sleep", "600")
    assert inspect(d, "new")["NetworkSettings"]["IPAddress"] == old_ip
    assert not any(PORT in e for e in nft_elements(d))


# -- item 1: the bridge's MAC is fixed ---------------------------------------------------

def test_gateway_mac_survives_the_container_that_had_the_lowest_mac(box):
    d = box
    net_id = d.docker("network", "create", "--subnet", "10.71.0.0/24", "macnet").stdout.strip()
    bridge = f"br-{net_id[:12]}"
    mac = d.link(bridge)["address"]
    for name in ("m1", "m2", "m3"):
        d.docker("run", "-d", "--name", name, "--network", "macnet", "busybox", "sleep", "600")
    assert d.link(bridge)["address"] == mac  # ports joining do not move it
    for name in ("m1", "m2", "m3"):
        assert d.docker("exec", name, "ping", "-c1", "-W2", "10.71.0.1").returncode == 0
    ports = {link["ifname"]: link["address"] for link in d.ip("link") if link.get("master") == bridge}
    lowest = min(ports, key=lambda n: ports[n])  # the port Linux would take the MAC from
    victim = next(n for n in ("m1", "m2", "m3")
                  if f"veth{inspect(d, n)['NetworkSettings']['Networks']['macnet']['EndpointID'][:7]}" == lowest)
    d.docker("rm", "-f", victim)
    assert d.link(bridge)["address"] == mac
    for name in {"m1", "m2", "m3"} - {victim}:
        # at once, with the ARP entry the container already had: no waiting for it to expire
        assert d.docker("exec", name, "ping", "-c1", "-W1", "10.71.0.1").returncode == 0
        assert mac in d.docker("exec", name, "ip", "neigh", "show", "10.71.0.1").stdout
    d.restart()
    assert d.link(bridge)["address"] == mac
    for name in {"m1", "m2", "m3"} - {victim}:
        d.docker("rm", "-f", name)
    d.stop()
    subprocess.run(["ip", "-n", d.netns, "link", "del", bridge], check=True)  # as after a reboot
    d.start()
    assert d.link(bridge)["address"] == mac  # recreated with the same MAC


def test_every_bridge_shoal_makes_has_a_fixed_mac(box):
    d = box
    d.docker("network", "create", "-o", "com.docker.network.bridge.name=sht-fixed", "named")
    macs = {name: d.link(name)["address"] for name in ("shoal0", "sht-fixed")}
    assert len(set(macs.values())) == 2 and all(int(m[:2], 16) & 2 for m in macs.values())  # local, distinct
    d.docker("run", "-d", "--name", "ca", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "cb", "--network", "named", "busybox", "sleep", "600")
    d.docker("rm", "-f", "ca", "cb")
    assert {name: d.link(name)["address"] for name in macs} == macs


# -- item 3: a start cut short by kill -9 of shoald --------------------------------------

PAUSING_RUNC = """#!/bin/sh
# runc that stops before or after one verb while a marker file exists (crash-point tests)
verb=""
for a in "$@"; do case "$a" in create|start) verb=$a; break;; esac; done
pause() {{
  if [ -n "$verb" ] && [ -e "{dir}/$1-$verb" ]; then
    echo $$ > "{dir}/at-$1-$verb"
    while [ -e "{dir}/$1-$verb" ]; do sleep 0.05; done
  fi
}}
pause before
/usr/sbin/runc "$@"
rc=$?
pause after
exit $rc
"""


@pytest.fixture
def crashable(make_shoald, busybox_tar, tmp_path):
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    wrapper = tmp_path / "pausing-runc"
    wrapper.write_text(PAUSING_RUNC.format(dir=pause_dir))
    wrapper.chmod(0o755)
    d = make_shoald(extra=["--add-runtime", f"pausing={wrapper}", "--default-runtime", "pausing"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    d.pause_dir = pause_dir
    return d


def crash_during_start(d, name: str, point: str) -> None:
    """`docker start NAME`, and kill -9 shoald while runc is at `point`; the step itself is
    killed too, so it never completes (as if the machine had stopped there)."""
    marker = d.pause_dir / point
    marker.touch()
    env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.root / "docker-config")}
    client = subprocess.Popen(["docker", "start", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at = d.pause_dir / f"at-{point}"
    wait_for(at.exists, 30, f"runc to reach {point}")
    d.stop(signal.SIGKILL)
    client.kill()
    client.wait()
    time.sleep(0.1)
    os.kill(int(at.read_text()), signal.SIGKILL)
    marker.unlink()
    at.unlink()
    d.start()


CRASH_POINTS = ["before-create", "after-create", "before-start", "after-start"]


@pytest.mark.parametrize("rerun", [False, True], ids=["first-start", "restart"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_start_cut_short_by_a_crash_converges(crashable, point, rerun):
    d = crashable
    base_elems, base_links = nft_elements(d), veths(d)
    cid = d.docker("create", "--name", "cc", "-p", f"{PORT}:80", "busybox", "httpd", "-f", "-p", "80").stdout.strip()
    if rerun:
        d.docker("start", "cc")
        d.docker("kill", "cc")
        assert d.docker("wait", "cc").stdout.strip() == "137"
    crash_during_start(d, "cc", point)
    state = inspect(d, "cc")["State"]
    if point == "after-start":  # the process ran: adopted, and shoald knows it
        assert state["Running"] and state["Pid"] > 0, state
        assert len(conmons(cid)) == 1
        assert any(PORT in e for e in nft_elements(d))
        d.docker("exec", "cc", "true")
        d.docker("stop", "-t", "1", "cc")
    else:  # back to before the start: created, or exited with the previous code
        assert not state["Running"], state
        assert state["Status"] == ("exited" if rerun else "created"), state
        if rerun:
            assert state["ExitCode"] == 137, state
        assert not conmons(cid)
    assert nft_elements(d) == base_elems and veths(d) == base_links
    d.docker("start", "cc")  # the next start works (no "container with given ID already exists")
    time.sleep(0.5)  # a late exit file from the cut-short run would show up here
    state = inspect(d, "cc")["State"]
    assert state["Running"] and state["ExitCode"] == 0, state
    assert len(conmons(cid)) == 1
    gateway = inspect(d, "cc")["NetworkSettings"]["Gateway"]
    assert d.docker("exec", "cc", "ping", "-c1", "-W2", gateway).returncode == 0
    d.docker("rm", "-f", "cc")
    assert nft_elements(d) == base_elems and veths(d) == base_links
    assert not conmons(cid)
    assert not list((d.root / "data" / "run" / "netns").glob("*"))


# -- item 4: several subnets of one family ("Network is unreachable" at connect) ----------

def test_networks_with_several_subnets_per_family(box):
    """Each endpoint's default route goes via its own subnet's gateway; a full first subnet
    hands out from the next one, as libnetwork does."""
    d = box
    # through the API: the docker CLI sends --subnet flags in Go map order (random), and the
    # first subnet is the one addresses come from first
    ipam = {"Config": [{"Subnet": s} for s in ("10.61.0.0/30", "10.62.0.0/24", "fd00:61::/64", "fd00:62::/64")]}
    status, _ = d.api("POST", "/networks/create", {"Name": "multi", "EnableIPv6": True, "IPAM": ipam})
    assert status == 201
    d.docker("run", "-d", "--name", "s1", "--network", "multi", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "s2", "--network", "multi", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "s3", "busybox", "sleep", "600")
    d.docker("network", "disconnect", "bridge", "s3")  # its only network
    d.docker("network", "connect", "multi", "s3")
    seen = {}
    for name in ("s1", "s2", "s3"):
        ep = inspect(d, name)["NetworkSettings"]["Networks"]["multi"]
        seen[name] = ep["IPAddress"]
        assert ep["Gateway"] == ep["IPAddress"].rsplit(".", 1)[0] + ".1", ep
        assert d.docker("exec", name, "ping", "-c1", "-W2", ep["Gateway"]).returncode == 0
        assert f"default via {ep['Gateway']}" in d.docker("exec", name, "ip", "route").stdout
    assert seen["s1"] == "10.61.0.2" and seen["s2"].startswith("10.62.0.") and seen["s3"].startswith("10.62.0."), seen


BAD_BODIES = [
    ("/containers/create", {"Image": "busybox", "Cmd": ["echo", "a\u0000b"]}),
    ("/containers/create", {"Image": "busybox", "Cmd": ["true"], "WorkingDir": 5}),
    ("/containers/create", {"Image": "busybox", "Cmd": ["true"], "WorkingDir": "relative/dir"}),
    ("/containers/create", {"Image": "busybox", "Cmd": ["true"], "ExposedPorts": {"@?": {}}}),
    ("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"PortBindings": {"80/tcp": "x"}}}),
    ("/containers/create", {"Image": "busybox", "Cmd": ["true"], "NetworkingConfig": {"EndpointsConfig": {"bridge": []}}}),
    ("/networks/bridge/connect", {"Container": "target", "EndpointConfig": "x"}),
    ("/networks/bridge/connect", {"Container": "target", "EndpointConfig": []}),
    ("/networks/bridge/connect", {"Container": "target", "EndpointConfig": {"IPAMConfig": 7}}),
    ("/networks/bridge/connect", {"Container": "target", "EndpointConfig": {"Aliases": "www"}}),
]


def test_bad_requests_are_400_and_change_nothing(box):
    """Against the real daemon: a 400 with a message, nothing made, and listing still works."""
    d = box
    d.docker("create", "--name", "target", "--network", "none", "busybox", "sleep", "600")
    before = (d.api("GET", "/containers/json?all=1")[1], d.api("GET", "/networks")[1], veths(d), nft_elements(d))
    for path, body in BAD_BODIES:
        status, reply = d.api("POST", path, body)
        assert status == 400 and reply["message"], (path, body, status, reply)
    after = (d.api("GET", "/containers/json?all=1")[1], d.api("GET", "/networks")[1], veths(d), nft_elements(d))
    assert after == before
    assert d.docker("ps", "-a").returncode == 0
    p = d.docker("run", "--rm", "-w", "rel", "busybox", "true", check=False)
    assert p.returncode != 0 and "absolute path" in p.stderr
