"""Embedded DNS through shoald: names on shared user networks, forwarding to a stub upstream."""

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import needs_docker

pytestmark = needs_docker
STUB = Path(__file__).with_name("stub_dns.py")


@pytest.fixture
def stub_upstream(box):
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{box.netns}", sys.executable, str(STUB),
                             "127.0.0.53", "53"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


def lookup(d, container, name):
    return d.docker("exec", container, "nslookup", name, check=False)


def test_names_aliases_and_forwarding(box, stub_upstream):
    d = box
    d.docker("network", "create", "app")
    d.docker("network", "create", "other")
    d.docker("run", "-d", "--name", "web", "--network", "app", "--network-alias", "www", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "client", "--network", "app", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "lonely", "--network", "other", "busybox", "sleep", "600")
    web_ip = d.docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"app\").IPAddress}}", "web").stdout.strip()
    resolv = d.docker("exec", "client", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
    web_id = d.docker("inspect", "-f", "{{.Id}}", "web").stdout.strip()
    for name in ("web", "www", "WEB", web_id[:12], "web.app"):
        out = lookup(d, "client", name)
        assert out.returncode == 0 and web_ip in out.stdout, (name, out.stdout, out.stderr)
    assert d.docker("exec", "client", "ping", "-c1", "-W2", "web").returncode == 0
    out = lookup(d, "lonely", "web")  # not on a shared network: forwarded, and the stub says NXDOMAIN
    assert web_ip not in out.stdout
    out = lookup(d, "client", "api.upstream.test")
    assert "10.53.0.1" in out.stdout, out.stdout
    out = lookup(d, "client", "nothing.invalid")
    assert "10.53.0.1" not in out.stdout and out.returncode != 0
    default = d.docker("run", "--rm", "busybox", "cat", "/etc/resolv.conf").stdout
    assert "127.0.0.11" not in default
    d.docker("stop", "-t", "0", "web")
    assert web_ip not in lookup(d, "client", "web").stdout


def test_internal_networks_forward_only_on_net(box, stub_upstream):
    """Forwards leave from the host's namespace, so a container on internal networks only
    must not get them (Docker's CVE-2024-29018 fix); an upstream inside the network may."""
    d = box
    d.docker("network", "create", "--internal", "--subnet", "10.99.0.0/24", "sealed")
    d.docker("network", "create", "open")
    d.docker("run", "-d", "--name", "inside", "--network", "sealed", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "peer", "--network", "sealed", "busybox", "sleep", "600")
    assert lookup(d, "inside", "peer").returncode == 0  # its own names still answer
    out = lookup(d, "inside", "api.upstream.test")
    assert "10.53.0.1" not in out.stdout and out.returncode != 0, out.stdout
    d.docker("network", "connect", "open", "inside")
    assert "10.53.0.1" in lookup(d, "inside", "api.upstream.test").stdout
    d.docker("network", "disconnect", "open", "inside")
    assert "10.53.0.1" not in lookup(d, "inside", "api.upstream.test").stdout
    on_net = subprocess.Popen(["nsenter", f"--net=/run/netns/{d.netns}", sys.executable, str(STUB), "10.99.0.1", "53"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert on_net.stdout.readline().strip() == "ready"
        d.docker("run", "-d", "--name", "with-dns", "--network", "sealed", "--dns", "10.99.0.1", "busybox", "sleep", "600")
        assert "10.53.0.1" in lookup(d, "with-dns", "api.upstream.test").stdout
    finally:
        on_net.terminate()
        on_net.wait(timeout=10)


def test_default_bridge_container_connected_to_user_network_gets_embedded_dns(box, stub_upstream):
    """Docker starts the sandbox's resolver at its first user-defined network, and rewrites
    resolv.conf then: a container started on the default bridge and connected later
    resolves the names of its new network (and still forwards through the embedded DNS)."""
    d = box
    d.docker("network", "create", "later")
    d.docker("run", "-d", "--name", "target", "--network", "later", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "mover", "busybox", "sleep", "600")
    assert "127.0.0.11" not in d.docker("exec", "mover", "cat", "/etc/resolv.conf").stdout
    d.docker("network", "connect", "later", "mover")
    resolv = d.docker("exec", "mover", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv, resolv
    target_ip = d.docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"later\").IPAddress}}",
                         "target").stdout.strip()
    out = lookup(d, "mover", "target")
    assert out.returncode == 0 and target_ip in out.stdout, out.stdout
    assert "10.53.0.1" in lookup(d, "mover", "api.upstream.test").stdout
    assert d.docker("exec", "mover", "ping", "-c1", "-W2", "target").returncode == 0
