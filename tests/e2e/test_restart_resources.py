"""Restart policies, stop signal and timeout, cgroup limits and `docker update` against shoald,
with the docker CLI and SDK; dockerd 20.10's rules and messages (moby v20.10.24:
restartmanager, daemon/kill.go, daemon/update.go, daemon/daemon_unix.go)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.conftest import needs_docker

pytestmark = needs_docker


def poll(what, timeout: float = 60.0, step: float = 0.1):
    """`what()` until it is truthy (and return it); generous, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def inspect(box, name: str) -> dict:
    status, data = box.api("GET", f"/containers/{name}/json")
    assert status == 200, data
    return data


def test_on_failure_restarts_up_to_its_bound(box):
    box.docker("run", "-d", "--name", "fail", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3")
    done = poll(lambda: (d := inspect(box, "fail"))["RestartCount"] == 2 and d["State"]["Status"] == "exited" and d)
    assert done, inspect(box, "fail")
    assert done["State"]["ExitCode"] == 3 and done["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure", "MaximumRetryCount": 2}
    time.sleep(1)  # the next back-off would be 400 ms: none comes
    after = inspect(box, "fail")
    assert after["RestartCount"] == 2 and after["State"]["Status"] == "exited"
    assert box.docker("logs", "fail").stdout.split() == ["run"] * 3
    box.docker("start", "fail")  # a user's start: a new restart manager, counting from 0: 2 more restarts
    assert poll(lambda: box.docker("logs", "fail").stdout.split() == ["run"] * 6)
    assert poll(lambda: (d := inspect(box, "fail"))["RestartCount"] == 2 and d["State"]["Status"] == "exited")


def test_always_restarts_its_own_exits_not_a_users_stop_or_kill(box):
    box.docker("run", "-d", "--name", "alw", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3")
    assert poll(lambda: inspect(box, "alw")["RestartCount"] >= 2)
    box.docker("run", "-d", "--name", "kil", "--restart", "always", "busybox", "sleep", "1000")
    box.docker("kill", "kil")
    box.docker("run", "-d", "--name", "stp", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    box.docker("stop", "-t", "1", "stp")
    time.sleep(1)
    for name in ("kil", "stp"):
        d = inspect(box, name)
        assert (d["State"]["Status"], d["RestartCount"]) == ("exited", 0), name
    box.docker("stop", "alw")  # also when it meets a restart waiting for its turn
    time.sleep(1)
    assert not inspect(box, "alw")["State"]["Running"]


def test_policies_after_shoald_restarts(box):
    box.docker("run", "-d", "--name", "al", "--restart", "always", "busybox", "sleep", "1000")
    box.docker("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    box.docker("run", "-d", "--name", "us2", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    box.docker("run", "-d", "--name", "no", "busybox", "sleep", "1000")
    box.docker("stop", "-t", "0", "al", "us", "no")
    pid = inspect(box, "us2")["State"]["Pid"]
    box.stop()
    os.kill(pid, signal.SIGKILL)  # it ends while shoald is away
    box.start()
    assert poll(lambda: inspect(box, "al")["State"]["Running"])  # always: even after the user's stop
    assert poll(lambda: inspect(box, "us2")["State"]["Running"])  # not stopped by the user
    assert not inspect(box, "us")["State"]["Running"]
    assert not inspect(box, "no")["State"]["Running"]


def test_rm_with_a_restart_policy_is_refused(box):
    status, data = box.api("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}})
    assert (status, data) == (400, {"message": "can't create 'AutoRemove' container with restart policy"})
    for policy, msg in (({"Name": "bogus"}, "invalid restart policy 'bogus'"),
                        ({"Name": "always", "MaximumRetryCount": 2},
                         "maximum retry count cannot be used with restart policy 'always'")):
        status, data = box.api("POST", "/containers/create", {
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"RestartPolicy": policy}})
        assert (status, data) == (400, {"message": msg})


def test_stop_signal_and_timeout(box, busybox_tar):
    box.docker("run", "-d", "--name", "sig", "--stop-signal", "USR1", "busybox", "sh", "-c",
               'trap "exit 7" USR1; while true; do sleep 0.1; done')
    box.docker("stop", "sig")
    d = inspect(box, "sig")
    assert d["State"]["ExitCode"] == 7 and d["Config"]["StopSignal"] == "USR1"
    box.docker("import", "--change", "STOPSIGNAL SIGUSR2", str(busybox_tar), "usr2:latest")
    box.docker("run", "-d", "--name", "isig", "usr2", "sh", "-c",
               'trap "exit 9" USR2; while true; do sleep 0.1; done')
    box.docker("stop", "isig")  # the image's StopSignal
    assert inspect(box, "isig")["State"]["ExitCode"] == 9
    box.docker("run", "-d", "--name", "deaf", "--stop-timeout", "1", "busybox", "sh", "-c",
               'trap "" TERM; while true; do sleep 0.1; done')
    box.docker("stop", "deaf")  # no -t: the container's own timeout, then SIGKILL
    d = inspect(box, "deaf")
    assert d["State"]["ExitCode"] == 137 and d["Config"]["StopTimeout"] == 1


def _cg(box, name: str, v1: str, v2: str) -> str:
    """A cgroup file of the container's, read inside it (v1 hierarchies, or v2's single one)."""
    out = box.docker("exec", name, "sh", "-c", f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}",
                     check=False)
    return out.stdout.strip()


def test_limits_are_in_the_containers_cgroup_and_update_changes_them(box):
    box.docker("run", "-d", "--name", "lim", "--memory", "64m", "--cpus", "0.5", "--cpu-shares", "512",
               "--pids-limit", "50", "busybox", "sleep", "1000")
    hc = inspect(box, "lim")["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == (
        64 << 20, 128 << 20, 500_000_000, 512, 50)
    assert _cg(box, "lim", "memory/memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert _cg(box, "lim", "cpu/cpu.cfs_quota_us", "cpu.max").split()[0] == "50000"
    assert _cg(box, "lim", "pids/pids.max", "pids.max") == "50"
    out = box.docker("update", "--memory", "96m", "--memory-swap", "192m", "--cpus", "1", "--cpu-shares", "256",
                     "--pids-limit", "70", "--restart", "on-failure:3", "lim")
    assert out.stdout.strip() == "lim"
    hc = inspect(box, "lim")["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == (
        96 << 20, 192 << 20, 1_000_000_000, 256, 70)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert _cg(box, "lim", "memory/memory.limit_in_bytes", "memory.max") == str(96 << 20)
    assert _cg(box, "lim", "cpu/cpu.cfs_quota_us", "cpu.max").split()[0] == "100000"
    assert _cg(box, "lim", "pids/pids.max", "pids.max") == "70"
    box.docker("restart", "-t", "0", "lim")  # a new run keeps what the update set
    assert _cg(box, "lim", "memory/memory.limit_in_bytes", "memory.max") == str(96 << 20)
    box.docker("update", "--pids-limit", "-1", "lim")  # unlimited: dockerd then shows 0 (measured)
    assert _cg(box, "lim", "pids/pids.max", "pids.max") == "max"
    assert inspect(box, "lim")["HostConfig"]["PidsLimit"] == 0
    box.docker("run", "-d", "--name", "free", "busybox", "sleep", "1000")  # the CLI sends PidsLimit 0
    assert inspect(box, "free")["HostConfig"]["PidsLimit"] is None


def test_resource_errors_as_dockerd(box):
    cases = [({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
             ({"NanoCpus": 1000 * 10**9}, "Range of CPUs is from 0.01 to"),
             ({"NanoCpus": 10**8, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
             ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms"),
             ({"Memory": 64 << 20, "MemorySwap": 32 << 20},
              "Minimum memoryswap limit should be larger than memory limit, see usage")]
    for host, msg in cases:
        status, data = box.api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": host})
        assert status == 400 and data["message"].startswith(msg), (host, data)
    box.docker("run", "-d", "--rm", "--name", "rm", "busybox", "sleep", "1000")
    cid = inspect(box, "rm")["Id"]
    status, data = box.api("POST", "/containers/rm/update", {"RestartPolicy": {"Name": "always"}})
    assert (status, data) == (409, {"message": f"Cannot update container {cid}: Restart policy cannot be updated "
                                               "because AutoRemove is enabled for the container"})
    status, data = box.api("POST", "/containers/rm/update", {"Memory": 1 << 20})
    assert (status, data) == (400, {"message": "Minimum memory limit allowed is 6MB"})
    status, data = box.api("POST", "/containers/rm/update", {"Memory": 64 << 20})  # no swap set: dockerd's conflict
    assert status == 409 and "Memory limit should be smaller than already set memoryswap limit" in data["message"]
    status, data = box.api("POST", "/containers/rm/update", {"Memory": 64 << 20, "MemorySwap": -1})
    assert (status, data) == (200, {"Warnings": None})  # dockerd 20.10.24's null (measured)
    status, data = box.api("POST", "/containers/nosuch/update", {})
    assert status == 404


def test_sdk_update_and_wait(box):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=box.host)
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk")
    c.update(mem_limit="32m", memswap_limit="64m", cpu_shares=300)
    c.reload()
    assert c.attrs["HostConfig"]["Memory"] == 32 << 20 and c.attrs["HostConfig"]["CpuShares"] == 300
    c.kill()
    assert c.wait(condition="not-running")["StatusCode"] == 137
    client.close()


def test_restarting_state_wait_and_kill_as_dockerd(box):
    """dockerd 20.10.24 (measured): while a restart waits, State is restarting with Running
    true and ps says "Restarting (1) ..."; a kill or stop then cancels it and succeeds; a
    wait for not-running goes on through the restarts."""
    box.docker("run", "-d", "--name", "fast", "--restart", "always", "busybox", "sh", "-c", "exit 1")
    st = poll(lambda: (s := inspect(box, "fast")["State"])["Status"] == "restarting" and s)
    assert st and st["Running"] and st["Restarting"] and st["Pid"] == 0 and st["ExitCode"] == 1
    ps = box.docker("ps", "-a", "--filter", "name=fast", "--format", "{{.Status}}").stdout
    assert ps.startswith(("Restarting (1)", "Up")), ps
    assert poll(lambda: inspect(box, "fast")["State"]["Status"] == "restarting")
    box.docker("kill", "fast")
    d = inspect(box, "fast")
    assert (d["State"]["Status"], d["State"]["Running"], d["State"]["ExitCode"]) == ("exited", False, 1)
    box.docker("run", "-d", "--name", "ww", "--restart", "on-failure:1", "busybox", "sh", "-c", "sleep 1; exit 2")
    status, data = box.api("POST", "/containers/ww/wait?condition=not-running")
    assert (status, data) == (200, {"StatusCode": 2, "Error": None})
    d = inspect(box, "ww")
    assert (d["State"]["Status"], d["RestartCount"]) == ("exited", 1)
    status, data = box.api("POST", "/containers/ww/wait?condition=bogus")  # dockerd: as not-running
    assert (status, data) == (200, {"StatusCode": 2, "Error": None})


def test_update_below_usage_is_the_runtimes_500(box):
    box.docker("run", "-d", "--name", "mem", "--memory", "64m", "busybox", "sh", "-c",
               "dd if=/dev/zero of=/dev/shm/x bs=1M count=30 2>/dev/null; sleep 1000")
    assert poll(lambda: int(_cg(box, "mem", "memory/memory.usage_in_bytes", "memory.current") or 0) > 25 << 20)
    cid = inspect(box, "mem")["Id"]
    status, data = box.api("POST", "/containers/mem/update", {"Memory": 10 << 20})
    assert status == 500 and data["message"].startswith(f"Cannot update container {cid}: ")
    assert "unable to set memory limit to 10485760" in data["message"], data
    assert inspect(box, "mem")["HostConfig"]["Memory"] == 64 << 20  # nothing changed
    assert _cg(box, "mem", "memory/memory.limit_in_bytes", "memory.max") == str(64 << 20)


def test_info_says_the_limits_are_supported(box):
    out = box.docker("info")
    assert "No memory limit support" not in out.stderr + out.stdout
    assert "No cpu cfs quota support" not in out.stderr + out.stdout
    status, info = box.api("GET", "/info")
    assert info["MemoryLimit"] and info["CpuCfsQuota"] and info["PidsLimit"]
