"""shoald as a process: help, locking, signals, restart, reconcile, concurrency."""

import concurrent.futures
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_help_documents_the_options():
    out = subprocess.run([str(BIN / "shoald"), "--help"], capture_output=True, text=True, check=True).stdout
    for opt in ("--data-root", "/var/lib/shoal", "-H", "--host", "--log-level", "--default-address-pool"):
        assert opt in out


def test_socket_mode_second_daemon_and_sigterm(make_shoald):
    d = make_shoald()
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    second = subprocess.run(d.argv(), capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "already running" in second.stderr and str(d.root / "data") in second.stderr
    assert d.api("GET", "/_ping") == (200, "OK")
    assert d.stop() == 0
    assert not os.path.exists(d.sock)


def test_restart_keeps_networks_and_repairs_kernel(make_shoald):
    d = make_shoald()
    d.docker("network", "create", "--subnet", "10.60.0.0/24", "--label", "k=v",
             "-o", "com.docker.network.driver.mtu=1400", "keep")
    d.docker("network", "create", "second")
    before = {n["Name"]: n for n in d.api("GET", "/networks")[1]}
    d.stop()
    keep_br = f"br-{before['keep']['Id'][:12]}"
    # a reboot loses kernel objects; an unknown link with our mark is stale; a foreign one stays
    subprocess.run(["ip", "-n", d.netns, "link", "del", keep_br], check=True)
    subprocess.run(["ip", "-n", d.netns, "link", "del", "shoal0"], check=True)
    engine = json.loads(subprocess.run(
        ["sqlite3", "-json", str(d.root / "data" / "shoal.db"), "select value from objects where kind='meta'"],
        capture_output=True, text=True).stdout or "[]")
    alias_prefix = None
    if engine:
        alias_prefix = "shoal:" + json.loads(engine[0]["value"])["id"][:12] + ":net:" + "f" * 64
    else:  # no sqlite3 CLI: read the mark from a live bridge instead
        alias_prefix = d.link(f"br-{before['second']['Id'][:12]}")["ifalias"].rsplit(":", 1)[0] + ":" + "f" * 64
    subprocess.run(["ip", "-n", d.netns, "link", "add", "br-stale", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", d.netns, "link", "set", "br-stale", "alias", alias_prefix], check=True)
    subprocess.run(["ip", "-n", d.netns, "link", "add", "br-notours", "type", "bridge"], check=True)
    d.start()
    after = {n["Name"]: n for n in d.api("GET", "/networks")[1]}
    assert after == before
    assert d.link(keep_br)["mtu"] == 1400
    assert d.link("shoal0") is not None
    assert d.link("br-stale") is None
    assert d.link("br-notours") is not None
    d.docker("network", "create", "third")
    third = d.api("GET", "/networks/third")[1]
    assert third["IPAM"]["Config"][0]["Subnet"] == "172.19.0.0/16"


def test_many_daemons_side_by_side(make_shoald):
    a, b = make_shoald(), make_shoald()
    a.docker("network", "create", "only-a")
    assert [n["Name"] for n in b.api("GET", "/networks")[1]] == ["bridge", "host", "none"]
    assert a.link("shoal0") and b.link("shoal0")
    assert a.api("GET", "/info")[1]["ID"] != b.api("GET", "/info")[1]["ID"]


def test_concurrent_creates_are_exact(make_shoald):
    d = make_shoald(["--default-address-pool", "base=10.100.0.0/16,size=24"])

    def create(i):
        return d.api("POST", "/networks/create", {"Name": f"c{i}"})

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, range(50)))
    assert all(status == 201 for status, _ in results), results
    nets = [n for n in d.api("GET", "/networks")[1] if n["Name"].startswith("c")]
    subnets = [n["IPAM"]["Config"][0]["Subnet"] for n in nets]
    assert len(subnets) == 50 == len(set(subnets))
    d.restart()
    again = [n["IPAM"]["Config"][0]["Subnet"] for n in d.api("GET", "/networks")[1] if n["Name"].startswith("c")]
    assert sorted(again) == sorted(subnets)
