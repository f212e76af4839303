"""Docker remote plugins end to end (issue #10 part 1): a real shoald in a throwaway
namespace, a real plugin process beside it (tests/plugin_server.py --kernel: a bridge per
network, a veth pair per endpoint, made with `ip` in shoald's namespace), driven by the
docker CLI; the calls the plugin received are compared with what dockerd 20.10 sends for
the same commands (read from moby's libnetwork; see the unit tests' notes)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import is_root
from tests.e2e.dockerd_plugin_calls import normalize
from tests.plugin_server import PluginProc

from .conftest import Shoald, needs_docker, unmount_below

pytestmark = needs_docker


@pytest.fixture
def plugbox(busybox_tar):
    if not is_root():
        pytest.skip("needs root (network namespaces)")
    netns = f"shr-e2e{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    root = Path(tempfile.mkdtemp(prefix="shr-e2e-"))
    d = Shoald(netns, root)
    d.plugin_sockets.mkdir(parents=True)
    plug = PluginProc(root, "shr-plug", socket_dir=d.plugin_sockets, extra=["--kernel"],
                      argv_prefix=["nsenter", f"--net=/run/netns/{netns}"])
    try:
        plug.start()
        d.start()
        d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d, plug
    finally:
        d.remove_containers()
        d.stop()
        d.kill_leftover_containers()
        plug.stop()
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
        unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


def ip_of(d: Shoald, name: str, net: str) -> str:
    return json.loads(d.docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]


def plugin_links(d: Shoald) -> set[str]:
    return {link["ifname"] for link in d.ip("link") if link["ifname"].startswith("shrp")}


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plugins" / "dockerd-lifecycle.json"


def as_dockerd_sends(calls: list[dict]) -> list[dict]:
    """shoal's calls with its two deliberate differences (docs/compat.md) undone: dockerd
    asks EndpointOperInfo twice after each start, and it releases a network's addresses
    and pool before DeleteNetwork (shoal takes the driver's side down first, so that a
    failure leaves the network whole)."""
    out = []
    for call in calls:
        out.append(call)
        if call["method"] == "NetworkDriver.EndpointOperInfo":
            out.append(call)
    for i, call in enumerate(out):
        if call["method"] == "NetworkDriver.DeleteNetwork":
            out[i:] = [*out[i + 1:], call]
            break
    return out


def test_plugin_network_lifecycle_with_the_docker_cli(plugbox):
    d, plug = plugbox
    d.docker("network", "create", "-d", "shr-plug", "--ipam-driver", "shr-plug", "--ipam-opt", "k=v",
             "-o", "o=1", "pnet")
    net = json.loads(d.docker("network", "inspect", "pnet").stdout)[0]
    assert net["Driver"] == "shr-plug" and net["IPAM"]["Driver"] == "shr-plug"
    assert net["IPAM"]["Options"] == {"k": "v"} and net["Options"] == {"o": "1"}
    assert net["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1"}]
    d.docker("run", "-d", "--name", "ca", "--network", "pnet", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "cb", "--network", "pnet", "busybox", "sleep", "600")
    assert ip_of(d, "ca", "pnet") == "10.77.0.2" and ip_of(d, "cb", "pnet") == "10.77.0.3"
    assert d.docker("exec", "ca", "ping", "-c1", "-W2", "10.77.0.3").returncode == 0
    assert d.docker("exec", "ca", "ping", "-c1", "-W2", "cb").returncode == 0  # embedded DNS works too
    route = d.docker("exec", "ca", "ip", "route").stdout.splitlines()
    assert route[0].startswith("default via 10.77.0.1 dev eth0")
    addrs = d.docker("exec", "ca", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "10.77.0.2/24" in addrs
    d.docker("network", "disconnect", "pnet", "ca")
    assert "eth0" not in d.docker("exec", "ca", "ip", "-o", "link").stdout
    d.docker("rm", "-f", "ca", "cb")
    d.docker("network", "rm", "pnet")

    # the same calls, bodies included, as dockerd 20.10.24 sent for these commands
    # (recorded by tests/e2e/dockerd_plugin_calls.py)
    golden = json.loads(GOLDEN.read_text())
    assert as_dockerd_sends(normalize(plug.calls())) == golden["calls"]
    assert plug.calls()[9]["body"]["SandboxKey"].startswith(str(d.root / "data" / "run" / "netns"))
    # nothing left: the plugin's links are gone with its endpoints and network
    assert plugin_links(d) == set()


def test_restarts_of_shoald_and_of_the_plugin_keep_the_network(plugbox):
    d, plug = plugbox
    d.docker("network", "create", "-d", "shr-plug", "--ipam-driver", "shr-plug", "pnet")
    d.docker("run", "-d", "--name", "ca", "--network", "pnet", "busybox", "sleep", "600")
    d.restart()
    assert "pnet" in d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    plug.stop()
    plug.start()  # its own state (networks, pools) it keeps, as real plugins do
    d.docker("run", "-d", "--name", "cb", "--network", "pnet", "busybox", "sleep", "600")
    assert d.docker("exec", "cb", "ping", "-c1", "-W2", ip_of(d, "ca", "pnet")).returncode == 0
    d.docker("rm", "-f", "ca", "cb")
    d.docker("network", "rm", "pnet")
    assert plugin_links(d) == set()


def test_failures_are_clear_and_leave_nothing(plugbox):
    d, plug = plugbox
    started = time.monotonic()
    p = d.docker("network", "create", "-d", "shr-nosuch", "x", check=False)
    assert p.returncode != 0 and 'plugin "shr-nosuch" not found' in p.stderr
    assert time.monotonic() - started < 10  # --plugin-retry 1 here; dockerd waits ~15 s
    plug.behave(**{"NetworkDriver.CreateNetwork": {"err": "no room for you"}})
    p = d.docker("network", "create", "-d", "shr-plug", "--ipam-driver", "shr-plug", "x", check=False)
    assert p.returncode != 0 and "remote: no room for you" in p.stderr
    assert "x" not in d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert plug.methods()[-1] == "IpamDriver.ReleasePool"
    plug.behave()
    d.docker("network", "create", "-d", "shr-plug", "--ipam-driver", "shr-plug", "pnet")
    plug.behave(**{"NetworkDriver.Join": {"err": "join refused"}})
    p = d.docker("run", "-d", "--name", "ca", "--network", "pnet", "busybox", "sleep", "600", check=False)
    assert p.returncode != 0 and "join refused" in p.stderr
    assert plug.methods()[-3:] == ["NetworkDriver.Join", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]
    net = json.loads(d.docker("network", "inspect", "pnet").stdout)[0]
    assert net["Containers"] == {}
    plug.behave()
    d.docker("rm", "-f", "ca")
    d.docker("run", "-d", "--name", "ca", "--network", "pnet", "busybox", "sleep", "600")
    assert ip_of(d, "ca", "pnet") == "10.77.1.2"  # the refused endpoint's address was given back: .2 again
