"""Containers on shoal networks through the real docker CLI: the walkthrough and issue #3."""

import json
import os
import time

import pytest

from .conftest import needs_docker
from .ptydrive import drive

pytestmark = needs_docker


def inspect(d, name):
    return json.loads(d.docker("inspect", name).stdout)[0]


def in_box(d, name, *cmd, check=True):
    return d.docker("exec", name, *cmd, check=check)


def test_walkthrough(box):
    d = box
    images = d.docker("images").stdout.splitlines()
    assert images[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert images[1].split()[:2] == ["busybox", "latest"]
    env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.root / "docker-config")}
    out, status = drive(["docker", "run", "-it", "--name", "one", "busybox", "sh"],
                        [(b"# ", b"ip addr show eth0\r"), (b"scope global eth0", b"\x10\x11")], env=env)
    assert status == 0, out
    assert b"inet 172.17.0.2/16" in out and b"link/ether 02:42:ac:11:00:02" in out
    assert d.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith("one Up")
    out, status = drive(["docker", "run", "-it", "--name", "two", "busybox", "sh"],
                        [(b"# ", b"ping -c1 -W2 172.17.0.2\r"), (b"packet loss", b"\x10\x11")], env=env)
    assert b"1 packets received" in out and status == 0
    assert inspect(d, "two")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.3"
    one = inspect(d, "one")
    short = one["Id"][:12].encode()
    out, status = drive(["docker", "attach", "one"], [(b"", b"\r"), (b"# ", b"hostname\r"), (b"\n" + short, b"\x10\x11")],
                        env=env)
    assert short in out and b"read escape sequence" in out
    net = json.loads(d.docker("network", "inspect", "bridge").stdout)[0]
    assert {c["Name"]: c["IPv4Address"] for c in net["Containers"].values()} == {
        "one": "172.17.0.2/16", "two": "172.17.0.3/16"}
    d.docker("network", "create", "--driver", "bridge", "my-bridge-network")
    d.docker("run", "-d", "--name", "three", "--net=my-bridge-network", "busybox", "sleep", "600")
    three = inspect(d, "three")["NetworkSettings"]["Networks"]["my-bridge-network"]
    assert three["IPAddress"] == "172.18.0.2" and three["IPPrefixLen"] == 16
    assert three["MacAddress"] == "02:42:ac:12:00:02" and three["Gateway"] == "172.18.0.1"
    ps = d.docker("ps", "-a").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(ps) == 4


def test_container_settings_and_inspect(box):
    d = box
    d.docker("network", "create", "--subnet", "10.44.0.0/24", "net44")
    cid = d.docker("run", "-d", "--name", "web", "--hostname", "webhost", "-e", "A=1", "-w", "/tmp",
                   "--network", "net44", "--ip", "10.44.0.50", "--mac-address", "02:00:00:00:00:50",
                   "busybox", "sleep", "600").stdout.strip()
    assert len(cid) == 64
    info = inspect(d, "web")
    assert info["State"]["Running"] and info["State"]["Pid"] > 0
    assert info["Config"]["Hostname"] == "webhost" and "A=1" in info["Config"]["Env"]
    ep = info["NetworkSettings"]["Networks"]["net44"]
    assert (ep["IPAddress"], ep["MacAddress"]) == ("10.44.0.50", "02:00:00:00:00:50")
    assert info["NetworkSettings"]["SandboxKey"].startswith(str(d.root))
    assert in_box(d, "web", "hostname").stdout.strip() == "webhost"
    assert in_box(d, "web", "pwd").stdout.strip() == "/tmp"
    assert in_box(d, "web", "sh", "-c", "echo $A").stdout.strip() == "1"
    hosts = in_box(d, "web", "cat", "/etc/hosts").stdout
    assert "10.44.0.50\twebhost" in hosts
    assert in_box(d, "web", "cat", "/etc/hostname").stdout.strip() == "webhost"
    link = json.loads(in_box(d, "web", "cat", "/sys/class/net/eth0/mtu").stdout)
    assert link == 1500
    ps = d.docker("ps", "-q").stdout.split()
    assert ps == [cid[:12]]
    assert d.docker("ps", "--no-trunc", "-q").stdout.split() == [cid]
    default = d.docker("run", "-d", "busybox", "sleep", "600").stdout.strip()
    name = inspect(d, default)["Name"].lstrip("/")
    adjective, _, surname = name.partition("_")
    assert adjective and surname and inspect(d, default)["Config"]["Hostname"] == default[:12]


def test_host_and_none_networks(box):
    d = box
    out = d.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    out = d.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert "shoal0" in out
    d.docker("run", "-d", "--name", "hh", "--network", "host", "busybox", "sleep", "600")
    assert "hh" in {c["Name"] for c in json.loads(d.docker("network", "inspect", "host").stdout)[0]
                   ["Containers"].values()}


def test_stop_releases_start_rejoins_and_rm(box):
    d = box
    d.docker("run", "-d", "--name", "ca", "busybox", "sleep", "600")
    host_end = [l["ifname"] for l in d.ip("link") if l["ifname"].startswith("veth")]
    assert len(host_end) == 1
    d.docker("stop", "-t", "1", "ca")
    assert [l for l in d.ip("link") if l["ifname"].startswith("veth")] == []
    assert inspect(d, "ca")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    d.docker("run", "-d", "--name", "cb", "busybox", "sleep", "600")
    assert inspect(d, "cb")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.2"
    d.docker("start", "ca")
    assert inspect(d, "ca")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.3"
    assert in_box(d, "ca", "ping", "-c1", "-W2", "172.17.0.2").returncode == 0
    d.docker("restart", "-t", "1", "ca")
    assert inspect(d, "ca")["State"]["Running"]
    d.docker("kill", "ca")
    assert d.docker("wait", "ca").stdout.strip() == "137"
    d.docker("rm", "ca")
    p = d.docker("rm", "cb", check=False)
    assert p.returncode != 0 and "container is running" in p.stderr
    d.docker("rm", "-f", "cb")
    assert d.docker("ps", "-aq").stdout.strip() == ""
    assert [l for l in d.ip("link") if l["ifname"].startswith("veth")] == []
    assert not list((d.root / "data" / "run" / "netns").glob("*"))


def test_run_foreground_logs_rm_and_exit_codes(box):
    d = box
    p = d.docker("run", "--name", "cx", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert p.returncode == 7 and p.stdout == "out\n" and p.stderr == "err\n"
    logs = d.docker("logs", "cx")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    assert d.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "cx").stdout.split() == ["7", "exited"]
    p = d.docker("run", "--rm", "busybox", "echo", "bye")
    assert p.stdout == "bye\n"
    assert d.docker("ps", "-aq").stdout.split() == [inspect(d, "cx")["Id"][:12]]
    d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3; do echo t$i; sleep 0.3; done")
    assert d.docker("logs", "-f", "ticker").stdout.split() == ["t1", "t2", "t3"]
    assert d.docker("wait", "ticker").stdout.strip() == "0"


def test_exec(box):
    d = box
    d.docker("run", "-d", "--name", "ce", "busybox", "sleep", "600")
    assert in_box(d, "ce", "sh", "-c", "exit 5", check=False).returncode == 5
    env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.root / "docker-config")}
    out, status = drive(["docker", "exec", "-it", "ce", "sh"], [(b"# ", b"echo in-$((2+2))\r"), (b"in-4", b"exit 3\r")],
                        env=env)
    assert b"in-4" in out and status == 3
    p = in_box(d, "ce", "nope", check=False)  # Docker: the start error in the stream, 127 from inspect
    assert p.returncode == 127 and "OCI runtime exec failed" in p.stdout and "executable file not found" in p.stdout, p
    # --user: names from the container's own /etc/passwd and /etc/group, ids as they are
    assert in_box(d, "ce", "id").stdout == "uid=0(root) gid=0(root) groups=0(root)\n"
    assert d.docker("exec", "-u", "daemon", "ce", "id", "-u").stdout == "1\n"
    assert d.docker("exec", "-u", "4242:nogroup", "ce", "id").stdout == "uid=4242 gid=65534(nogroup) groups=65534(nogroup)\n"
    p = d.docker("exec", "-u", "ghost", "ce", "true", check=False)
    assert p.returncode == 126 and "unable to find user ghost" in p.stdout, p
    p = d.docker("run", "--rm", "-u", "nobody", "busybox", "id")
    assert p.stdout == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n", p
    d.docker("run", "-d", "--name", "as-daemon", "-u", "daemon:1", "busybox", "sleep", "600")
    assert inspect(d, "as-daemon")["Config"]["User"] == "daemon:1"
    assert in_box(d, "as-daemon", "id", "-u").stdout == "1\n"  # an exec runs as the container's user
    cid = inspect(d, "ce")["Id"]
    execs = [x.name for x in (d.root / "data" / "runtime" / "containers" / cid / "exec").iterdir()]
    assert len(execs) <= 1  # a finished exec's files go once it is seen finished; failed ones left none
    d.docker("stop", "-t", "0", "ce")
    p = in_box(d, "ce", "true", check=False)
    assert p.returncode != 0 and "is not running" in p.stderr


def test_bad_input_leaves_nothing_behind(box):
    d = box
    d.docker("network", "create", "--subnet", "10.55.0.0/24", "n55")
    d.docker("run", "-d", "--name", "taken", "--network", "n55", "--ip", "10.55.0.9", "busybox", "sleep", "600")
    before = (d.docker("ps", "-aq").stdout, sorted(l["ifname"] for l in d.ip("link")),
              sorted(p.name for p in (d.root / "data" / "run" / "netns").glob("*")))
    cases = [
        # the CLI pulls it from Docker Hub: this namespace has only loopback, so the lookup fails
        (["run", "nosuchimage"], "registry-1.docker.io"),
        (["run", "--network", "nosuchnet", "busybox", "true"], "network nosuchnet not found"),
        (["run", "--name", "taken", "busybox", "true"], "is already in use"),
        (["run", "--network", "n55", "--ip", "10.66.0.5", "busybox", "true"], "no configured subnet"),
        (["run", "--network", "n55", "--ip", "10.55.0.9", "busybox", "true"], "Address already in use"),
        (["run", "--ip", "172.17.0.9", "busybox", "true"], "user configured subnets"),
        (["run", "busybox", "/no/such/command"], "executable file not found"),
        (["run", "--name", "bad/name", "busybox", "true"], "Invalid container name"),
        (["run", "-u", "ghost", "busybox", "true"], "unable to find user ghost: no matching entries in passwd file"),
    ]
    for args, needle in cases:
        p = d.docker(*args, check=False)
        assert p.returncode != 0, args
        assert needle in p.stderr, (args, p.stderr)
    after = (d.docker("ps", "-aq").stdout, sorted(l["ifname"] for l in d.ip("link")),
             sorted(p.name for p in (d.root / "data" / "run" / "netns").glob("*")))
    assert after == before
    status, body = d.api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                        "HostConfig": {"NetworkMode": "nosuch"}})
    assert status == 404
    status, body = d.api("POST", "/containers/nosuch/start")
    assert (status, body) == (404, {"message": "No such container: nosuch"})
    p = d.docker("rmi", "busybox", check=False)
    assert p.returncode != 0 and "is using its referenced image" in p.stderr


def test_containers_survive_a_daemon_restart(box):
    d = box
    d.docker("run", "-d", "--name", "keep", "busybox", "sh", "-c", "echo started; sleep 600")
    d.docker("run", "-d", "--name", "ends", "busybox", "sh", "-c", "sleep 2; exit 4")
    ip_before = inspect(d, "keep")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    d.stop()
    time.sleep(3)  # "ends" exits while shoald is away
    d.start()
    names = d.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert names == ["keep"]
    assert inspect(d, "ends")["State"]["ExitCode"] == 4
    assert inspect(d, "ends")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    assert inspect(d, "keep")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ip_before
    assert in_box(d, "keep", "echo", "alive").stdout == "alive\n"
    assert d.docker("logs", "keep").stdout == "started\n"
    d.docker("run", "-d", "--name", "new", "busybox", "sleep", "600")
    assert inspect(d, "new")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.3"
    d.docker("stop", "-t", "0", "keep")
    assert not inspect(d, "keep")["State"]["Running"]


def test_sdk_containers(box):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=box.host, version="auto")
    c = client.containers.run("busybox", ["sleep", "600"], detach=True, name="sdk")
    c.reload()
    assert c.status == "running"
    assert c.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.2"
    # output can only follow the upgrade line (docker-py loses bytes that come along with it)
    runs = [c.exec_run(["sh", "-c", "echo hi; exit 2"]) for _ in range(10)]
    assert [(code, out) for code, out in runs] == [(2, b"hi\n")] * 10
    assert client.containers.run("busybox", ["echo", "x"], remove=True) == b"x\n"
    c.stop(timeout=0)
    assert c.wait()["StatusCode"] == 137
    c.remove()
    assert client.containers.list(all=True) == []
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nothere")
    assert [t for i in client.images.list() for t in i.tags] == ["busybox:latest"]
