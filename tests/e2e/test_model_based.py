"""A model-based test of the daemon: random sequences of user actions against a real
shoald, with a model of what must be true after each (hypothesis' stateful testing).

After every step: the invariant checker (GET /shoal/check) finds nothing; the daemon's
networks and containers are the model's (an acknowledged change survives a restart and
a kill -9; nothing removed comes back); running containers on a shared network reach
each other, and published ports answer from the host. Shrunk failures are kept as
regression tests below the machine.

CI runs a short profile; a long one: SHOAL_MODEL_EXAMPLES=50 SHOAL_MODEL_STEPS=60
(scripts/soak runs it for as long as asked).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.e2e.conftest import Shoald

NETS = ["mnet-a", "mnet-b", "mnet-c"]
SUBNETS = ["10.91.0.0/24", "10.92.0.0/24", "10.91.0.0/16", "10.93.0.0/24"]  # one overlaps the first
NAMES = ["mc1", "mc2", "mc3", "mc4"]
BURST = ["mb1", "mb2", "mb3"]
HOST_PORTS = [47101, 47102, 47103]
STATS = {"steps": 0, "restarts": 0, "kills": 0, "examples": 0}


def settle_check(d: Shoald, tries: int = 25) -> list:
    """The checker's findings once the daemon is quiet: an exit is released by the
    container's watcher a moment after the process ends, so a finding must persist."""
    findings: list = []
    for _ in range(tries):
        status, data = d.api("GET", "/shoal/check")
        assert status == 200, data
        findings = data["Findings"]
        if not findings:
            return []
        time.sleep(0.2)
    return findings


def traced(fn):  # noqa: ANN001, ANN201
    """SHOAL_MODEL_TRACE=1 prints each step as it runs (a flaky failure shows no steps)."""
    @functools.wraps(fn)
    def step(self, **kwargs):  # noqa: ANN001, ANN202
        if os.environ.get("SHOAL_MODEL_TRACE"):
            print(f"step {fn.__name__} {kwargs}", flush=True)
        return fn(self, **kwargs)
    return step


def _pick(data: st.DataObject, strategy: st.SearchStrategy) -> str:
    value = data.draw(strategy)
    if os.environ.get("SHOAL_MODEL_TRACE"):
        print(f"  picked {value}", flush=True)
    return value


class DaemonModel(RuleBasedStateMachine):
    daemon: Shoald

    def __init__(self) -> None:
        super().__init__()
        self.d = type(self).daemon
        self._reset()
        self.nets: dict[str, str] = {}  # name -> subnet
        self.ctrs: dict[str, dict] = {}  # name -> {"nets": [...], "ports": [...], "running": bool}
        self.since_restart = 0
        STATS["examples"] += 1

    def _reset(self) -> None:
        _, listing = self.d.api("GET", "/containers/json?all=1")
        for c in listing:
            self.d.api("DELETE", f"/containers/{c['Id']}?force=1")
        _, nets = self.d.api("GET", "/networks")
        for n in nets:
            if n["Name"] not in ("bridge", "host", "none"):
                self.d.api("DELETE", f"/networks/{n['Id']}")
        assert settle_check(self.d) == []

    # -- helpers -------------------------------------------------------------------------
    def _held_ports(self, but: str = "") -> set[int]:
        return {p for n, c in self.ctrs.items() if c["running"] and n != but for p in c["ports"]}

    def _startable(self, name: str) -> bool:
        c = self.ctrs[name]
        nets_ok = all(n == "bridge" or n in self.nets for n in c["nets"])
        return nets_ok and not (set(c["ports"]) & self._held_ports(but=name))

    def _wait_stopped(self, name: str) -> None:
        self.d.api("POST", f"/containers/{name}/wait")

    # -- networks ------------------------------------------------------------------------
    @rule(name=st.sampled_from(NETS), subnet=st.sampled_from(SUBNETS + ["10.300.0.0/24"]))
    @traced
    def create_network(self, name: str, subnet: str) -> None:
        status, body = self.d.api("POST", "/networks/create",
                                  {"Name": name, "CheckDuplicate": True, "IPAM": {"Config": [{"Subnet": subnet}]}})
        overlaps = any(_overlap(subnet, s) for s in self.nets.values()) if "300" not in subnet else False
        if name in self.nets:  # the name is checked first, as dockerd does
            assert status == 409, body
        elif "300" in subnet:
            assert status == 400, body
        elif overlaps:
            assert status == 403, body
        else:
            assert status == 201, body
            self.nets[name] = subnet

    @rule(name=st.sampled_from(NETS))
    @traced
    def remove_network(self, name: str) -> None:
        status, body = self.d.api("DELETE", f"/networks/{name}")
        in_use = any(c["running"] and name in c["nets"] for c in self.ctrs.values())
        if name not in self.nets:
            assert status == 404, body
        elif in_use:
            assert status == 403, body
        else:
            assert status == 204, body
            del self.nets[name]

    # -- containers ----------------------------------------------------------------------
    @rule(name=st.sampled_from(NAMES), net=st.sampled_from(["bridge", *NETS]),
          ports=st.lists(st.sampled_from(HOST_PORTS), max_size=3, unique=True))
    @traced
    def run(self, name: str, net: str, ports: list[int]) -> None:
        bindings = {f"{80 + i}/tcp": [{"HostPort": str(p)}] for i, p in enumerate(ports)}
        body = {"Image": "busybox", "Cmd": ["httpd", "-f", "-p", "80"],
                "ExposedPorts": {k: {} for k in bindings}, "HostConfig": {"NetworkMode": net, "PortBindings": bindings}}
        status, reply = self.d.api("POST", f"/containers/create?name={name}", body)
        if name in self.ctrs:
            assert status == 409, reply
            return
        if net != "bridge" and net not in self.nets:
            assert status == 404, reply
            return
        if set(ports) & self._held_ports():
            assert status >= 400, reply
            return
        assert status == 201, reply
        self.ctrs[name] = {"nets": [net], "ports": ports, "running": False}
        status, reply = self.d.api("POST", f"/containers/{name}/start")
        assert status == 204, reply
        self.ctrs[name]["running"] = True

    @rule(net=st.sampled_from(["bridge", *NETS]), connect=st.booleans())
    @traced
    def burst(self, net: str, connect: bool) -> None:
        """Three runs at once on one network (and, maybe, connects of the others to it at
        the same time): every one succeeds with its own address."""
        names = [n for n in BURST if n not in self.ctrs]
        if not names or (net != "bridge" and net not in self.nets):
            return
        body = {"Image": "busybox", "Cmd": ["httpd", "-f", "-p", "80"], "HostConfig": {"NetworkMode": net}}
        others = [n for n, c in self.ctrs.items() if connect and c["running"] and net not in c["nets"]
                  and net != "bridge"]

        def run_one(name: str) -> int:
            status, _ = self.d.api("POST", f"/containers/create?name={name}", body)
            return self.d.api("POST", f"/containers/{name}/start")[0] if status == 201 else status

        def connect_one(name: str) -> int:
            return self.d.api("POST", f"/networks/{net}/connect", {"Container": name})[0]

        with ThreadPoolExecutor(max_workers=6) as pool:
            runs = list(pool.map(run_one, names))
            joins = list(pool.map(connect_one, others))
        assert runs == [204] * len(names), runs
        assert joins == [200] * len(others), joins
        for name in names:
            self.ctrs[name] = {"nets": [net], "ports": [], "running": True}
        for name in others:
            self.ctrs[name]["nets"].append(net)

    @precondition(lambda self: self.ctrs)
    @rule(data=st.data())
    @traced
    def stop(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(self.ctrs)))
        status, reply = self.d.api("POST", f"/containers/{name}/stop?t=1")
        assert status == (204 if self.ctrs[name]["running"] else 304), reply
        self.ctrs[name]["running"] = False

    @precondition(lambda self: self.ctrs)
    @rule(data=st.data())
    @traced
    def start(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(self.ctrs)))
        status, reply = self.d.api("POST", f"/containers/{name}/start")
        if self.ctrs[name]["running"]:
            assert status == 304, reply
        elif self._startable(name):
            assert status == 204, reply
            self.ctrs[name]["running"] = True
        else:
            assert status >= 400, reply

    @precondition(lambda self: any(c["running"] for c in self.ctrs.values()))
    @rule(data=st.data())
    @traced
    def kill(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(n for n, c in self.ctrs.items() if c["running"])))
        status, reply = self.d.api("POST", f"/containers/{name}/kill")
        assert status == 204, reply
        self._wait_stopped(name)
        self.ctrs[name]["running"] = False

    @precondition(lambda self: self.ctrs)
    @rule(data=st.data())
    @traced
    def restart(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(self.ctrs)))
        status, reply = self.d.api("POST", f"/containers/{name}/restart?t=1")
        ok = self._startable(name)
        if ok:
            assert status == 204, reply
        else:
            assert status >= 400, reply
        self.ctrs[name]["running"] = ok

    @precondition(lambda self: self.ctrs)
    @rule(data=st.data())
    @traced
    def remove_forced(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(self.ctrs)))
        status, reply = self.d.api("DELETE", f"/containers/{name}?force=1")
        assert status == 204, reply
        del self.ctrs[name]

    @precondition(lambda self: self.ctrs and self.nets)
    @rule(data=st.data())
    @traced
    def connect(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(self.ctrs)))
        net = _pick(data, st.sampled_from(sorted(self.nets)))
        status, reply = self.d.api("POST", f"/networks/{net}/connect", {"Container": name})
        if net in self.ctrs[name]["nets"]:
            assert status in (403, 409), reply
        else:
            assert status == 200, reply
            self.ctrs[name]["nets"].append(net)

    @precondition(lambda self: any(len(c["nets"]) > 1 for c in self.ctrs.values()))
    @rule(data=st.data())
    @traced
    def disconnect(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(n for n, c in self.ctrs.items() if len(c["nets"]) > 1)))
        net = _pick(data, st.sampled_from(self.ctrs[name]["nets"]))
        status, reply = self.d.api("POST", f"/networks/{net}/disconnect", {"Container": name})
        if net != "bridge" and net not in self.nets:
            assert status == 404, reply
            return
        assert status == 200, reply
        self.ctrs[name]["nets"].remove(net)

    @precondition(lambda self: any(c["running"] for c in self.ctrs.values()))
    @rule(data=st.data())
    @traced
    def exec_true(self, data: st.DataObject) -> None:
        name = _pick(data, st.sampled_from(sorted(n for n, c in self.ctrs.items() if c["running"])))
        status, reply = self.d.api("POST", f"/containers/{name}/exec", {"Cmd": ["true"]})
        assert status == 201, reply
        status, reply = self.d.api("POST", f"/exec/{reply['Id']}/start", {"Detach": True})
        assert status == 200, reply

    @precondition(lambda self: self.since_restart >= 6)  # rarer than the rest: each costs a second
    @rule(hard=st.booleans())
    @traced
    def daemon_restart(self, hard: bool) -> None:
        """SIGTERM, or kill -9: every acknowledged change must be there afterwards."""
        STATS["kills" if hard else "restarts"] += 1
        self.d.stop(signal.SIGKILL if hard else signal.SIGTERM)
        self.d.start()
        self.since_restart = 0

    @precondition(lambda self: sum(c["running"] for c in self.ctrs.values()) >= 1)
    @rule()
    @traced
    def reachability(self) -> None:
        """Each running container answers on its published ports from the host, and pings
        every running container it shares a user network with."""
        addrs = self._addresses()
        for name, c in self.ctrs.items():
            if not c["running"]:
                continue
            if c["ports"]:  # its container port 80, where httpd listens
                _expect_http(self.d, c["ports"][0])
            for other, oc in self.ctrs.items():
                shared = [n for n in c["nets"] if n in oc["nets"] and n != "bridge"]
                if other != name and oc["running"] and shared:
                    ip = addrs[other][shared[0]]
                    p = self.d.docker("exec", name, "ping", "-c1", "-W2", ip, check=False)
                    assert p.returncode == 0, f"{name} cannot ping {other} at {ip} on {shared[0]}: {p.stdout}"

    def _addresses(self) -> dict[str, dict[str, str]]:
        out = {}
        for name in self.ctrs:
            _, info = self.d.api("GET", f"/containers/{name}/json")
            nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
            out[name] = {n: v.get("IPAddress", "") for n, v in nets.items()}
        return out

    # -- after every step -----------------------------------------------------------------
    @invariant()
    def matches_the_model(self) -> None:
        STATS["steps"] += 1
        self.since_restart += 1
        findings = settle_check(self.d)
        assert findings == [], findings
        _, nets = self.d.api("GET", "/networks")
        assert {n["Name"] for n in nets} - {"bridge", "host", "none"} == set(self.nets)
        _, listing = self.d.api("GET", "/containers/json?all=1")
        seen = {c["Names"][0].lstrip("/"): c["State"] == "running" for c in listing}
        assert seen == {n: c["running"] for n, c in self.ctrs.items()}


def _overlap(a: str, b: str) -> bool:
    import ipaddress
    return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))


def _expect_http(d: Shoald, port: int) -> None:
    """busybox httpd answers 404 for /: any HTTP answer proves the DNAT path (one just
    started may not listen yet)."""
    for _ in range(20):
        p = subprocess.run(["nsenter", f"--net=/run/netns/{d.netns}", "timeout", "5", "busybox", "wget", "-qO-",
                            f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
        if "HTTP/1.1" in p.stderr or p.returncode == 0:
            return
        time.sleep(0.25)
    raise AssertionError(f"host port {port}: {p.stderr}")


def test_random_sequences_keep_every_invariant(box):
    DaemonModel.daemon = box
    examples = int(os.environ.get("SHOAL_MODEL_EXAMPLES", "3"))
    steps = int(os.environ.get("SHOAL_MODEL_STEPS", "40"))
    # shrinking against a real daemon takes minutes: only the long profile shrinks
    phases = list(Phase) if os.environ.get("SHOAL_MODEL_SHRINK") else [Phase.explicit, Phase.generate]
    run_state_machine_as_test(DaemonModel, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, phases=phases,
        suppress_health_check=list(HealthCheck), database=None, print_blob=True))
    print(f"model-based: {STATS}")
