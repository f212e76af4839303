"""`shoal system check`: it finds what was changed from outside, `--repair` and the
periodic self-heal put it back, and the regressions it found stay fixed."""

from __future__ import annotations

import json
import subprocess
import time

from tests.e2e.test_model_based import settle_check


def _ns(d, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{d.netns}", *argv], capture_output=True, text=True)


def _http(d, port: int, tries: int = 20) -> bool:
    """busybox httpd answers 404 for /: any HTTP answer proves the DNAT path (a container
    just started may not listen yet: a few tries)."""
    for _ in range(tries):
        p = _ns(d, "timeout", "5", "busybox", "wget", "-qO-", f"http://127.0.0.1:{port}/")
        if p.returncode == 0 or "HTTP/1.1" in p.stderr:
            return True
        time.sleep(0.25)
    return False


def _setup(d) -> None:
    d.docker("network", "create", "--subnet", "10.77.0.0/24", "sc-web")
    d.docker("run", "-d", "--name", "sc-a", "-p", "47913:80", "busybox", "httpd", "-f", "-p", "80")
    d.docker("run", "-d", "--name", "sc-b", "--network", "sc-web", "busybox", "httpd", "-f", "-p", "80")
    d.docker("network", "connect", "sc-web", "sc-a")


def test_a_clean_daemon_has_no_findings_and_the_cli_says_so(box):
    _setup(box)
    out = box.shoal("system", "check")
    assert out.stdout == "no problems found\n"
    data = json.loads(box.shoal("system", "check", "--format", "json").stdout)
    assert data["Findings"] == [] and data["Areas"] == {}


def test_outside_changes_are_found_and_repaired(make_shoald, busybox_tar):
    d = make_shoald(extra=["--self-heal-interval", "0"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    _setup(d)
    bridge = next(link["ifname"] for link in d.ip("link") if link["ifname"].startswith("br-"))
    _, info = d.api("GET", "/containers/sc-a/json")
    veth = "veth" + info["NetworkSettings"]["Networks"]["bridge"]["EndpointID"][:7]
    assert _ns(d, "nft", "flush", "ruleset").returncode == 0
    assert _ns(d, "ip", "link", "del", veth).returncode == 0
    assert _ns(d, "ip", "link", "del", bridge).returncode == 0
    found = d.shoal("system", "check", check=False)
    assert found.returncode == 1
    data = json.loads(d.shoal("system", "check", "--format", "json", check=False).stdout)
    problems = {f["Problem"] for f in data["Findings"]}
    assert {"table inet shoal is missing", f"bridge {bridge} is missing", f"endpoint sc-a: veth {veth} is missing",
            "interface eth0 is missing in the container"} <= problems
    assert all(f["Repairable"] for f in data["Findings"])
    repaired = d.shoal("system", "check", "--repair")
    assert "repaired: rewrote the firewall tables from the store" in repaired.stdout
    assert repaired.stdout.endswith("no problems found\n")
    assert _http(d, 47913)  # DNAT, veth and default route are back
    _, b = d.api("GET", "/containers/sc-b/json")
    ip = b["NetworkSettings"]["Networks"]["sc-web"]["IPAddress"]
    assert d.docker("exec", "sc-a", "ping", "-c1", "-W2", ip, check=False).returncode == 0


def test_self_heal_rebuilds_a_flushed_ruleset_and_a_deleted_bridge(make_shoald, busybox_tar):
    d = make_shoald(extra=["--self-heal-interval", "0.5"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    _setup(d)
    bridge = next(link["ifname"] for link in d.ip("link") if link["ifname"].startswith("br-"))
    _ns(d, "nft", "flush", "ruleset")
    _ns(d, "ip", "link", "del", bridge)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (d.link(bridge) is None or not _http(d, 47913)):
        time.sleep(0.3)
    assert d.link(bridge) is not None
    assert settle_check(d) == []
    assert _http(d, 47913)
    assert "rebuilding them" in d.log.read_text()


def test_forced_removal_of_a_publishing_container_leaves_nothing(box):
    """The issue's report: `run -p` then `rm -f` once left the DNAT element and the port."""
    box.docker("run", "-d", "--name", "sc-p", "-p", "47914:80", "busybox", "httpd", "-f", "-p", "80")
    box.docker("rm", "-f", "sc-p")
    assert settle_check(box) == []
    assert "47914" not in _ns(box, "nft", "list", "table", "inet", "shoal").stdout
    box.docker("run", "-d", "--name", "sc-q", "-p", "47914:80", "busybox", "httpd", "-f", "-p", "80")
    assert _http(box, 47914)


def test_published_ports_move_when_their_network_is_disconnected(box):
    """Found by the checker: disconnecting the network that carried the published ports
    left the DNAT to the address given back (the next container there would get the
    traffic); they now move to the endpoint that gives the default route, as in Docker."""
    box.docker("network", "create", "--subnet", "10.78.0.0/24", "sc-two")
    box.docker("run", "-d", "--name", "sc-m", "-p", "47915:80", "busybox", "httpd", "-f", "-p", "80")
    box.docker("network", "connect", "sc-two", "sc-m")
    box.docker("network", "disconnect", "bridge", "sc-m")
    assert settle_check(box) == []
    table = _ns(box, "nft", "list", "table", "inet", "shoal").stdout
    assert "10.78.0.2 . 80" in table and "172.17.0.2" not in table
    assert _http(box, 47915)
    assert box.docker("port", "sc-m").stdout.strip() == "80/tcp -> 0.0.0.0:47915"
    # and the default route moved with them (libnetwork's updateGateway)
    assert "default via 10.78.0.1" in box.docker("exec", "sc-m", "ip", "route").stdout


def test_a_default_route_deleted_inside_a_container_is_found_and_given_back(make_shoald, busybox_tar):
    d = make_shoald(extra=["--self-heal-interval", "0"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    d.docker("run", "-d", "--name", "sc-r", "busybox", "httpd", "-f", "-p", "80")
    _, info = d.api("GET", "/containers/sc-r/json")
    netns = d.root / "data" / "run" / "netns" / info["Id"][:12]
    subprocess.run(["nsenter", f"--net={netns}", "ip", "route", "del", "default"], check=True)
    data = json.loads(d.shoal("system", "check", "--format", "json", check=False).stdout)
    assert [f["Problem"] for f in data["Findings"]] == ["no default route via 172.17.0.1 (eth0, endpoint sc-r)"]
    d.shoal("system", "check", "--repair")
    routes = subprocess.run(["nsenter", f"--net={netns}", "ip", "route"], capture_output=True, text=True).stdout
    assert "default via 172.17.0.1 dev eth0" in routes
