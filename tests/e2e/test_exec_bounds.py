"""Finished execs do not pile up: records and directories stay bounded under many execs,
a recent one stays inspectable (dockerd keeps a finished exec for its clean-up period),
and a container's removal leaves nothing of its execs."""

import time

import httpx

from shoal.controller.execs import KEEP

from .conftest import needs_docker

pytestmark = needs_docker


def _wait_finished(c: httpx.Client, eid: str) -> dict:
    for _ in range(200):
        info = c.get(f"/v1.41/exec/{eid}/json").json()
        if not info["Running"]:
            return info
        time.sleep(0.05)
    raise AssertionError(f"exec {eid} still running")


def test_many_execs_stay_bounded_and_removal_leaves_nothing(box):
    d = box
    d.docker("run", "-d", "--name", "busy", "busybox", "sleep", "600")
    cid = d.docker("inspect", "-f", "{{.Id}}", "busy").stdout.strip()
    exec_dir = d.root / "data" / "runtime" / "containers" / cid / "exec"
    ids = []
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(d.sock)), base_url="http://shoal", timeout=30) as c:
        for i in range(200):
            eid = c.post("/v1.41/containers/busy/exec", json={"Cmd": ["sh", "-c", f"exit {i % 7}"]}).json()["Id"]
            assert c.post(f"/v1.41/exec/{eid}/start", json={"Detach": True}).status_code == 200
            ids.append(eid)
        last = _wait_finished(c, ids[-1])
        assert last["ExitCode"] == 199 % 7 and last["ContainerID"] == cid, last
        # the oldest went once the newest KEEP finished; the directories went with the finish
        assert c.get(f"/v1.41/exec/{ids[0]}/json").status_code == 404
        kept = [e for e in ids if c.get(f"/v1.41/exec/{e}/json").status_code == 200]
        assert KEEP // 2 <= len(kept) <= KEEP, len(kept)
        leftover = list(exec_dir.iterdir())
        assert len(leftover) <= 2, leftover  # a conmon or two may still be on its way out
        # an attached exec still reports its code to the CLI
        assert d.docker("exec", "busy", "sh", "-c", "exit 3", check=False).returncode == 3
        d.docker("rm", "-f", "busy")
        assert not (d.root / "data" / "runtime" / "containers" / cid).exists()
        assert c.get(f"/v1.41/exec/{ids[-1]}/json").status_code == 404


def test_stop_drops_execs_that_never_started(box):
    d = box
    d.docker("run", "-d", "--name", "brief", "busybox", "sleep", "600")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(d.sock)), base_url="http://shoal", timeout=30) as c:
        unstarted = c.post("/v1.41/containers/brief/exec", json={"Cmd": ["true"]}).json()["Id"]
        ran = c.post("/v1.41/containers/brief/exec", json={"Cmd": ["true"]}).json()["Id"]
        c.post(f"/v1.41/exec/{ran}/start", json={"Detach": True})
        _wait_finished(c, ran)
        d.docker("stop", "-t", "0", "brief")
        assert c.get(f"/v1.41/exec/{unstarted}/json").status_code == 404  # dockerd's Cleanup
        assert c.get(f"/v1.41/exec/{ran}/json").json()["ExitCode"] == 0  # until the retention ends
