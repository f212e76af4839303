"""`docker top`, `stats`, `rename`, `pause`/`unpause` against shoald, with dockerd 20.10.24's
answers (measured on Debian's dockerd in its own namespace with the same busybox image;
the messages and statuses below are what it said)."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from tests.e2e.conftest import needs_docker

pytestmark = needs_docker


def _http(box) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=box.sock), base_url="http://shoal", timeout=30)


@pytest.fixture
def two(box):
    box.docker("run", "-d", "--name", "c1", "busybox", "sleep", "1000")
    box.docker("create", "--name", "c2", "busybox", "sleep", "1000")
    ids = {n: box.docker("inspect", "-f", "{{.Id}}", n).stdout.strip() for n in ("c1", "c2")}
    return box, ids


def test_top(two):
    box, ids = two
    with _http(box) as http:
        r = http.get("/containers/c1/top")
        assert r.json()["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        [row] = r.json()["Processes"]
        assert row[0] == "root" and row[-1] == "sleep 1000"
        r = http.get("/containers/c1/top", params={"ps_args": "-o pid,comm"})
        assert r.json()["Titles"] == ["PID", "COMMAND"] and r.json()["Processes"][0][1] == "sleep"
        r = http.get("/containers/c2/top")
        assert (r.status_code, r.json()) == (409, {"message": f"Container {ids['c2']} is not running"})
        r = http.get("/containers/c1/top", params={"ps_args": "--bogus"})
        assert (r.status_code, r.json()) == (500, {"message": "ps: error: unknown gnu long option"})
        r = http.get("/containers/c1/top", params={"ps_args": "-o comm"})
        assert (r.status_code, r.json()) == (500, {"message": "Couldn't find PID field in ps output"})
    out = box.docker("top", "c1", "aux").stdout.splitlines()
    assert out[0].split() == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"]
    assert out[1].endswith("sleep 1000")


STATS_KEYS = {"read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
              "precpu_stats", "memory_stats", "name", "id", "networks"}


def test_stats_shapes(two):
    box, ids = two
    with _http(box) as http:
        s = http.get("/containers/c1/stats", params={"stream": "0"}).json()
        assert set(s) == STATS_KEYS
        assert s["preread"] != "0001-01-01T00:00:00Z" and s["precpu_stats"]["system_cpu_usage"] > 0
        assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
        assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] > 0
        assert s["pids_stats"] == {"current": 1}
        assert set(s["networks"]) == {"eth0"} and s["networks"]["eth0"]["rx_packets"] >= 0
        assert s["name"] == "/c1" and s["id"] == ids["c1"]
        one = http.get("/containers/c1/stats", params={"stream": "0", "one-shot": "1"}).json()
        assert one["preread"] == "0001-01-01T00:00:00Z" and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0
        stopped = http.get("/containers/c2/stats", params={"stream": "0"}).json()
        assert stopped["read"] == "0001-01-01T00:00:00Z" and stopped["pids_stats"] == {}
        assert stopped["blkio_stats"]["io_service_bytes_recursive"] is None and "networks" not in stopped
        with http.stream("GET", "/containers/c1/stats") as r:
            lines = r.iter_lines()
            first, second = json.loads(next(lines)), json.loads(next(lines))
            assert first["preread"] == "0001-01-01T00:00:00Z" and second["preread"] == first["read"]
            box.docker("kill", "c1")
            box.docker("wait", "c1")
            while (sample := json.loads(next(lines)))["read"] != "0001-01-01T00:00:00Z":
                pass  # one taken before the kill
            assert set(sample) == set(stopped) and sample["pids_stats"] == {}  # a stopped one's zeroed sample
            assert sample["name"] == "/c1" and sample["blkio_stats"]["io_serviced_recursive"] is None


def test_docker_stats_no_stream_and_stream(two):
    box, _ = two
    out = box.docker("stats", "--no-stream", "c1").stdout.splitlines()
    assert out[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert " c1 " in out[1] and out[1].rstrip().endswith(" 1")  # PIDS
    env = {**os.environ, "DOCKER_HOST": box.host, "DOCKER_CONFIG": str(box.root / "docker-config")}
    proc = subprocess.Popen(["docker", "stats", "c1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""
        while b"c1" not in seen:  # the CLI redraws each second: the first frame is enough
            chunk = proc.stdout.read1(4096)
            assert chunk, proc.stderr.read().decode()
            seen += chunk
    finally:
        proc.kill()  # the CLI's stats loop does not end on SIGTERM while it redraws
        proc.wait()
    assert b"MEM USAGE / LIMIT" in seen


def test_rename(two):
    box, ids = two
    with _http(box) as http:
        def post(ref, name=None):
            r = http.post(f"/containers/{ref}/rename", params={"name": name} if name is not None else None)
            return r.status_code, (r.json() if r.content else None)

        assert post("c1", "c2") == (409, {"message": (
            'Error when allocating new name: Conflict. The container name "/c2" is already in use by container '
            f'"{ids["c2"]}". You have to remove (or rename) that container to be able to reuse that name.')})
        assert post("c1", "c1") == (400, {"message": "Renaming a container with the same name as its current name"})
        assert post("c1") == (400, {"message": "Neither old nor new names may be empty"})
        assert post("c1", "b@d") == (400, {"message": "Error when allocating new name: Invalid container name "
                                                      "(/b@d), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"})
        assert post("zz", "q1") == (404, {"message": "No such container: zz"})
        assert post("c2", "/c3") == (204, None)
        assert post("c3", "c2") == (204, None)
    box.docker("rename", "c1", "first")
    assert box.docker("inspect", "-f", "{{.Name}}", ids["c1"]).stdout.strip() == "/first"


def test_rename_moves_the_dns_name(box):
    box.docker("network", "create", "shs-net")
    box.docker("run", "-d", "--name", "web", "--network", "shs-net", "busybox", "sleep", "1000")
    box.docker("run", "-d", "--name", "cli", "--network", "shs-net", "busybox", "sleep", "1000")
    ip = box.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "web").stdout.strip()
    box.docker("rename", "web", "web2")
    assert ip in box.docker("exec", "cli", "nslookup", "web2", "127.0.0.11").stdout
    names = box.docker("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", "shs-net").stdout.split()
    assert sorted(names) == ["cli", "web2"]


def test_pause_unpause(two):
    box, ids = two
    with _http(box) as http:
        def post(ref, verb):
            r = http.post(f"/containers/{ref}/{verb}")
            return r.status_code, (r.json() if r.content else None)

        assert post("c2", "pause") == (409, {"message": f"Container {ids['c2']} is not running"})
        assert post("c1", "pause") == (204, None)
        assert post("c1", "pause") == (409, {"message": f"Container {ids['c1']} is already paused"})
        state = http.get("/containers/c1/json").json()["State"]
        assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)
        [row] = [c for c in http.get("/containers/json").json() if c["Id"] == ids["c1"]]
        assert row["State"] == "paused" and row["Status"].endswith("(Paused)")
        info = http.get("/info").json()
        assert (info["ContainersPaused"], info["ContainersRunning"]) == (1, 0)
        r = http.post("/containers/c1/exec", json={"Cmd": ["true"]})
        assert (r.status_code, r.json()) == (409, {
            "message": "Container c1 is paused, unpause the container before exec"})  # the name as given
        assert http.get("/containers/c1/top").status_code == 200
        assert post("c2", "unpause") == (500, {"message": f"Container {ids['c2']} is not paused"})
        assert post("c1", "unpause") == (204, None)
        assert post("c1", "unpause") == (500, {"message": f"Container {ids['c1']} is not paused"})
    assert box.docker("exec", "c1", "echo", "thawed").stdout == "thawed\n"


def test_a_paused_container_stops_kills_and_goes(two):
    box, _ = two
    box.docker("pause", "c1")
    box.docker("stop", "-t", "1", "c1")
    assert box.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "c1").stdout.split() == ["exited", "false"]
    box.docker("start", "c1")
    assert box.docker("inspect", "-f", "{{.State.Paused}}", "c1").stdout.strip() == "false"
    box.docker("pause", "c1")
    box.docker("kill", "c1")
    assert box.docker("wait", "c1").stdout.strip() == "137"
    box.docker("start", "c1")
    box.docker("pause", "c1")
    box.docker("rm", "-f", "c1")
    assert "c1" not in box.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_pause_survives_a_daemon_restart(two):
    box, _ = two
    box.docker("pause", "c1")
    box.restart()
    assert box.docker("inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "paused"
    box.docker("unpause", "c1")
    assert box.docker("exec", "c1", "true").returncode == 0


def test_the_sdk(two):
    import docker

    box, _ = two
    client = docker.DockerClient(base_url=box.host, version="auto")
    try:
        ctr = client.containers.get("c1")
        assert ctr.top()["Processes"][0][-1] == "sleep 1000"
        stats = ctr.stats(stream=False)
        assert stats["pids_stats"]["current"] == 1 and stats["precpu_stats"]["system_cpu_usage"] > 0
        stream = ctr.stats(decode=True)
        assert next(stream)["name"] == "/c1"
        stream.close()
        ctr.pause()
        ctr.reload()
        assert ctr.status == "paused"
        with pytest.raises(docker.errors.APIError, match="is already paused"):
            ctr.pause()
        ctr.unpause()
        ctr.rename("sdk-name")
        ctr.reload()
        assert ctr.name == "sdk-name" and ctr.status == "running"
    finally:
        client.close()
