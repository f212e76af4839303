"""Crash points: the daemon dies at every kernel, firewall, store and runtime step of a
verb (daemon.faults), restarts, and must be in the state from before or after the verb,
with the invariant checker finding nothing and nothing leaked once all is removed.

Each verb first runs once armed, to list its steps; then once per step with a crash
there, each on a fresh daemon. SHOAL_CRASH_SAMPLE=N tries every Nth step only (CI
runs all of them; the count is printed).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Shoald
from tests.e2e.test_model_based import settle_check

NET = {"Name": "cp-net", "IPAM": {"Config": [{"Subnet": "10.95.0.0/24"}]}}
CTR = {"Image": "busybox", "Cmd": ["httpd", "-f", "-p", "80"], "ExposedPorts": {"80/tcp": {}},
       "HostConfig": {"NetworkMode": "cp-net", "PortBindings": {"80/tcp": [{"HostPort": "47301"}]}}}
TOTALS = {"points": 0}


def _ok(result: tuple) -> None:
    status, body = result
    assert status < 300, body


def _net(d: Shoald) -> None:
    _ok(d.api("POST", "/networks/create", NET))


def _created(d: Shoald) -> None:
    _net(d)
    _ok(d.api("POST", "/containers/create?name=cp-c", CTR))


def _running(d: Shoald) -> None:
    _created(d)
    _ok(d.api("POST", "/containers/cp-c/start"))


def _connected(d: Shoald) -> None:
    _running(d)
    _ok(d.api("POST", "/networks/create", {"Name": "cp-two"}))
    _ok(d.api("POST", "/networks/cp-two/connect", {"Container": "cp-c"}))


def _running_and_second_net(d: Shoald) -> None:
    _running(d)
    _ok(d.api("POST", "/networks/create", {"Name": "cp-two"}))


VERBS = {
    "network create": (lambda d: None, lambda d: d.api("POST", "/networks/create", NET)),
    "network rm": (_net, lambda d: d.api("DELETE", "/networks/cp-net")),
    "container create": (_net, lambda d: d.api("POST", "/containers/create?name=cp-c", CTR)),
    "container start": (_created, lambda d: d.api("POST", "/containers/cp-c/start")),
    "container stop": (_running, lambda d: d.api("POST", "/containers/cp-c/stop?t=1")),
    "container rm -f": (_running, lambda d: d.api("DELETE", "/containers/cp-c?force=1")),
    "network connect": (_running_and_second_net, lambda d: d.api("POST", "/networks/cp-two/connect",
                                                                 {"Container": "cp-c"})),
    "network disconnect": (_connected, lambda d: d.api("POST", "/networks/cp-two/disconnect",
                                                       {"Container": "cp-c"})),
}


def probe(d: Shoald) -> tuple:
    """What a user sees: networks by name, the container's state and its networks."""
    _, nets = d.api("GET", "/networks")
    names = tuple(sorted(n["Name"] for n in nets))
    status, info = d.api("GET", "/containers/cp-c/json")
    if status == 404:
        return names, None
    attached = tuple(sorted((info["NetworkSettings"].get("Networks") or {})))
    return names, info["State"]["Status"], attached if info["State"]["Running"] else ()


def _fresh(make_shoald, busybox_tar, fault_dir: Path, heal: str = "0") -> Shoald:
    d = make_shoald(extra=["--fault-dir", str(fault_dir), "--self-heal-interval", heal])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return d


def _armed(d: Shoald, fault_dir: Path, verb, crash_at: int = 0, fail_at: int = 0):  # noqa: ANN001, ANN201
    (fault_dir / "steps").unlink(missing_ok=True)
    if crash_at:
        (fault_dir / "crash-at").write_text(str(crash_at))
    if fail_at:
        (fault_dir / "fail-at").write_text(str(fail_at))
    (fault_dir / "armed").touch()
    try:
        return verb(d)
    except httpx.HTTPError:
        assert crash_at, "only a crash may cut the call short"
        return None
    finally:
        for name in ("armed", "crash-at", "fail-at"):
            (fault_dir / name).unlink(missing_ok=True)


def _steps_of(make_shoald, busybox_tar, fault_dir: Path, setup, verb) -> tuple[list[str], tuple, tuple]:  # noqa: ANN001
    """The verb's steps, with the state before and after it."""
    d = _fresh(make_shoald, busybox_tar, fault_dir)
    setup(d)
    before = probe(d)
    _armed(d, fault_dir, lambda d: _ok(verb(d)))
    after = probe(d)
    steps = (fault_dir / "steps").read_text().splitlines()
    assert steps, "the verb took no step"
    assert before != after
    d.remove_containers()
    d.stop()
    return steps, before, after


def _leaks(d: Shoald) -> list[str]:
    """After everything is removed: no container mounts, veths or namespaces left."""
    _, listing = d.api("GET", "/containers/json?all=1")
    for c in listing:
        d.api("DELETE", f"/containers/{c['Id']}?force=1")
    out = []
    prefix = str(d.root) + "/"
    with open("/proc/self/mountinfo") as f:
        out += [f"mount {line.split()[4]}" for line in f if line.split()[4].startswith(prefix)]
    out += [f"link {link['ifname']}" for link in d.ip("link") if link["ifname"].startswith("veth")]
    netns = d.root / "data" / "run" / "netns"
    out += [f"netns {p}" for p in (netns.iterdir() if netns.is_dir() else [])]
    return out


@pytest.mark.parametrize("verb_name", list(VERBS))
def test_a_crash_at_any_step_converges_to_before_or_after(make_shoald, busybox_tar, tmp_path, verb_name):
    setup, verb = VERBS[verb_name]
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    steps, before, after = _steps_of(make_shoald, busybox_tar, fault_dir, setup, verb)
    sample = int(os.environ.get("SHOAL_CRASH_SAMPLE", "1"))
    tried = []
    for k in range(1, len(steps) + 1, sample):
        d = _fresh(make_shoald, busybox_tar, fault_dir)
        setup(d)
        _armed(d, fault_dir, verb, crash_at=k)
        assert d.proc is not None and d.proc.wait(timeout=30) == 137, f"no crash at step {steps[k - 1]}"
        d.extra = ["--self-heal-interval", "0"]
        d.start()
        found = settle_check(d, tries=10)
        state = probe(d)
        assert found == [], f"crash at {steps[k - 1]}: {found}"
        assert state in (before, after), f"crash at {steps[k - 1]}: {state} is neither {before} nor {after}"
        assert _leaks(d) == [], f"crash at {steps[k - 1]}"
        tried.append(steps[k - 1])
        d.stop()
    TOTALS["points"] += len(tried)
    print(f"{verb_name}: {len(steps)} steps, crashed at {len(tried)}: {', '.join(tried)}")


@pytest.mark.parametrize("verb_name", list(VERBS))
def test_a_failure_at_any_step_rolls_the_verb_back(make_shoald, busybox_tar, tmp_path, verb_name):
    """An error half-way (the kernel, nft or the store refusing): the verb answers an
    error and everything it did before is undone, with no restart. One daemon serves
    every step: the state after each rollback is the state before, so the next try
    starts from it."""
    setup, verb = VERBS[verb_name]
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    steps, before, after = _steps_of(make_shoald, busybox_tar, fault_dir, setup, verb)
    # past a point of no return (a removal after the runtime's delete) what is left over
    # is the self-heal's: it runs often here, and the check waits for it
    d = _fresh(make_shoald, busybox_tar, fault_dir, heal="0.3")
    setup(d)
    rolled_back, completed = [], []
    for k in range(1, len(steps) + 1):
        status, body = _armed(d, fault_dir, verb, fail_at=k)
        state = probe(d)
        assert settle_check(d, tries=10) == [], f"failure at {steps[k - 1]}"
        if status >= 400:
            assert state == before, f"failure at {steps[k - 1]} answered {status} but left {state}"
            rolled_back.append(steps[k - 1])
        else:  # a step after the point of no return: the verb completes
            assert state == after, f"failure at {steps[k - 1]} answered {status} but left {state}"
            completed.append(steps[k - 1])
            d.remove_containers()
            d.stop()
            d = _fresh(make_shoald, busybox_tar, fault_dir, heal="0.3")
            setup(d)
    TOTALS["points"] += len(rolled_back) + len(completed)
    print(f"{verb_name}: rolled back at {len(rolled_back)} of {len(steps)} steps"
          + (f", completed despite a failure at {', '.join(completed)}" if completed else ""))
