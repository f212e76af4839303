"""Restart back-off (controller.restarts) and resource limits (runtime.resources), without a
daemon: dockerd 20.10's state machine, checks, defaults and what runc gets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.controller.restarts import (
    FIRST_DELAY, KIND_RESTART, MAX_DELAY, Backoff, Policy, Restarter, stop_plan, wants_restart,
)
from shoal.errors import InvalidParameter
from shoal.model import Container
from shoal.runtime import resources
from shoal.runtime.spec import ContainerSpec, oci_config, spec_from_json, spec_to_json


def test_backoff_doubles_from_100ms_and_starts_over_after_10s_up():
    b, always = Backoff(), Policy("always")
    delays = [b.decide(always, 1, ran_for=0.01) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8] and delays[-1] == MAX_DELAY
    assert b.count == 12
    assert b.decide(always, 0, ran_for=10.0) == FIRST_DELAY


def test_on_failure_bound_and_codes():
    b, pol = Backoff(), Policy("on-failure", 2)
    assert b.decide(pol, 0, 0) is None  # a clean exit is no failure
    assert b.decide(pol, 3, 0) is not None and b.decide(pol, 3, 0) is not None
    assert b.decide(pol, 3, 0) is None and b.count == 2
    unbounded = Backoff()
    assert all(unbounded.decide(Policy("on-failure"), 1, 0) is not None for _ in range(50))


def test_users_stop_rules():
    assert wants_restart(Policy("always"), 0, stopped=True, count=0)  # at shoald's start too
    assert not wants_restart(Policy("unless-stopped"), 0, stopped=True, count=0)
    assert wants_restart(Policy("unless-stopped"), 0, stopped=False, count=5)
    assert not wants_restart(Policy("no"), 1, stopped=False, count=0)
    canceled = Backoff(canceled=True)
    assert canceled.decide(Policy("always"), 1, 0) is None and canceled.count == 0


@given(st.lists(st.tuples(st.integers(0, 255), st.floats(0, 30)), max_size=40),
       st.sampled_from(["no", "always", "unless-stopped", "on-failure"]), st.integers(0, 5))
def test_backoff_invariants(exits, name, retries):
    policy = Policy(name, retries if name == "on-failure" else 0)
    b, restarts = Backoff(), 0
    for code, ran in exits:
        delay = b.decide(policy, code, ran)
        if delay is not None:
            restarts += 1
            assert FIRST_DELAY <= delay <= MAX_DELAY
            if ran >= 10:
                assert delay == FIRST_DELAY
        assert b.count == restarts
    if name == "on-failure" and retries:
        assert b.count <= retries
    if name == "no":
        assert b.count == 0


def _rec(**config) -> Container:
    return Container(id="c" * 64, name="x", created="", image="busybox", image_id="sha256:1", args=("sh",),
                     config=config)


def test_stop_plan():
    assert stop_plan(_rec(), None) == (10, "TERM")
    assert stop_plan(_rec(StopSignal="USR1", StopTimeout=3), None) == (3, "USR1")
    assert stop_plan(_rec(StopTimeout=3), 0) == (0, "TERM")  # the request's t wins


@pytest.mark.parametrize(("res", "msg"), [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"NanoCpus": 10**8, "CpuPeriod": 100000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**8, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 3 * 10**9}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": -1}, "Range of CPUs"),
    ({"CpuPeriod": 999}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
])
def test_resource_checks(res, msg):
    with pytest.raises(InvalidParameter) as err:
        resources.check(res, ncpu=2)
    assert err.value.message.startswith(msg)


def test_swap_alone_is_fine_in_an_update():
    resources.check({"MemorySwap": 64 << 20}, update=True, ncpu=2)
    resources.check({"Memory": 6 << 20, "NanoCpus": 2 * 10**9, "CpuQuota": -1}, ncpu=2)


def test_adapt_as_dockerd_stores_it():
    assert resources.adapt({"Memory": 64 << 20})["MemorySwap"] == 128 << 20
    assert resources.adapt({"Memory": 64 << 20, "MemorySwap": -1})["MemorySwap"] == -1
    assert resources.adapt({"CpuShares": 1})["CpuShares"] == 1  # the kernel's to clamp (API >= 1.19)


def test_oci_resources_and_runc_flags():
    res = resources.oci_resources({"Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 5 * 10**8,
                                   "CpuShares": 512, "PidsLimit": 50})
    assert res == {"memory": {"limit": 64 << 20, "swap": 128 << 20}, "cpu": {"shares": 512, "period": 100000,
                                                                          "quota": 50000}, "pids": {"limit": 50}}
    assert resources.runc_update_args(res) == [
        "--memory", str(64 << 20), "--memory-swap", str(128 << 20), "--cpu-share", "512",
        "--cpu-period", "100000", "--cpu-quota", "50000", "--pids-limit", "50"]
    assert resources.oci_resources({"PidsLimit": 0}) == {}
    assert resources.runc_update_args({}, lift_pids=True) == ["--pids-limit", "-1"]
    assert resources.adapt({"PidsLimit": 0})["PidsLimit"] is None
    assert resources.oci_resources({}) == {}
    assert resources.oci_resources({"CpuPeriod": 50000, "CpuQuota": 25000}) == {"cpu": {"period": 50000, "quota": 25000}}


def test_merge_update_keeps_what_is_not_given_and_refuses_dockerds_conflicts():
    cur = {"Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 10**9, "PidsLimit": 50, "Other": 1}
    out = resources.merge_update(cur, {"Memory": 96 << 20, "CpuShares": 0, "PidsLimit": 0})
    assert out == {**cur, "Memory": 96 << 20, "PidsLimit": 0}
    with pytest.raises(InvalidParameter, match="CPU Quota cannot be updated as NanoCPUs has already been set"):
        resources.merge_update(cur, {"CpuQuota": 50000})
    with pytest.raises(InvalidParameter, match="Memory limit should be smaller than already set memoryswap limit"):
        resources.merge_update(cur, {"Memory": 256 << 20})
    with pytest.raises(InvalidParameter, match="Nano CPUs cannot be updated as CPU Quota has already been set"):
        resources.merge_update({"CpuQuota": 50000}, {"NanoCpus": 10**9})


def test_limits_reach_config_json_and_survive_the_record(tmp_path: Path):
    res = resources.oci_resources({"Memory": 64 << 20, "PidsLimit": 9})
    spec = ContainerSpec(id="c1", args=("sh",), resources=res)
    config = oci_config(spec, tmp_path)
    assert config["linux"]["resources"]["memory"] == {"limit": 64 << 20}
    assert config["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert spec_from_json(spec_to_json(spec)).resources == res
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    resources.rewrite_config(path, {"pids": {"limit": 20}})
    again = json.loads(path.read_text())["linux"]["resources"]
    assert again == {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 20}}


def test_inspect_view():
    assert resources.host_config_view({})["PidsLimit"] is None  # dockerd: null when never set
    assert resources.host_config_view({"Memory": 5})["Memory"] == 5


# -- the Restarter against a fake Containers ---------------------------------------------

class _St:
    def __init__(self, running=False, code=0, started=1.0, finished=1.0):
        self.running, self.exit_code, self.started_at, self.finished_at = running, code, started, finished


class _Host:
    """Containers as the Restarter sees it: records, states, start/stop/kill by hand."""

    def __init__(self, policy: dict, code: int = 1) -> None:
        from types import SimpleNamespace

        from shoal.store.memory import MemoryStore
        self.records = {"c1": dataclasses.replace(_rec(), id="c1", host_config={"RestartPolicy": policy})}
        self.ctl = SimpleNamespace(store=MemoryStore())
        self.runtime = None
        self.st = _St(code=code)
        self.starts: list[bool] = []
        self.stops: list[str] = []

    def state(self, cid):
        return self.st

    def watcher(self, cid):
        return None

    async def start(self, ref, *, by_policy=False):
        self.starts.append(by_policy)
        self.st = _St(running=True)

    async def stop(self, ref, timeout=None):
        self.stops.append("stop")

    async def kill(self, ref, signal="KILL"):
        self.stops.append(signal)


def _run(coro):
    return asyncio.run(coro)


def test_restarter_exit_restart_and_users_stop():
    async def go():
        host = _Host({"Name": "always"})
        r = Restarter(host)
        assert await r.exited("c1") and r.restarting("c1")
        await asyncio.wait([r.pending["c1"]])
        assert host.starts == [True] and r.count("c1") == 1 and not r.restarting("c1")
        host.st = _St(code=1)
        assert await r.exited("c1")
        assert await r.user_stop("c1") is True  # met waiting: cancelled, nothing to signal
        await asyncio.sleep(0)
        assert not r.restarting("c1") and host.starts == [True]
        assert not await r.exited("c1")  # cancelled until the user's start
        stored = host.ctl.store.get(KIND_RESTART, "c1")
        assert stored["stopped"] and stored["canceled"] and stored["count"] == 2
        await r.user_start("c1")
        assert r.count("c1") == 0 and not host.ctl.store.get(KIND_RESTART, "c1")["canceled"]
        await r.forget("c1")
        assert host.ctl.store.get(KIND_RESTART, "c1") is None
    _run(go())


def test_kill_with_another_signal_than_the_stop_signal_keeps_the_restarts():
    async def go():
        host = _Host({"Name": "always"})
        host.records["c1"] = dataclasses.replace(host.records["c1"], config={"StopSignal": "USR1"})
        r = Restarter(host)
        await r.user_stop("c1", "HUP")
        assert not r.state["c1"].canceled and r.state["c1"].stopped
        await r.user_stop("c1", "SIGUSR1")
        assert r.state["c1"].canceled
    _run(go())


def test_boot_brings_back_what_the_policy_says():
    async def go():
        for policy, stopped, code, want in ((("always", 0), True, 0, True), (("unless-stopped", 0), True, 0, False),
                                            (("unless-stopped", 0), False, 0, True), (("on-failure", 1), False, 0, False),
                                            (("on-failure", 1), False, 2, True), (("no", 0), False, 1, False)):
            host = _Host({"Name": policy[0], "MaximumRetryCount": policy[1]}, code=code)
            r = Restarter(host)
            r.state["c1"] = Backoff(stopped=stopped)
            await r.boot()
            assert host.starts == ([False] if want else []), (policy, stopped, code)
    _run(go())


def test_a_stop_that_meets_the_start_under_way_stops_it_once_started():
    async def go():
        host = _Host({"Name": "always"})
        gate = asyncio.Event()
        started = host.start

        async def slow_start(ref, *, by_policy=False):
            await gate.wait()
            await started(ref, by_policy=by_policy)
        host.start = slow_start
        r = Restarter(host)
        await r.exited("c1")
        while "c1" not in r.starting:
            await asyncio.sleep(0.01)
        stopper = asyncio.ensure_future(r.user_stop("c1", "KILL"))
        await asyncio.sleep(0.01)
        assert not stopper.done() and r.restarting("c1")
        gate.set()
        assert await stopper is True and host.stops == ["KILL"] and not r.restarting("c1")
    _run(go())
