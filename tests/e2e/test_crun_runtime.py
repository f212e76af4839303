"""crun beside runc (issue #12): `docker run --runtime crun` and `--default-runtime crun`.

A crun container must be an ordinary one to everything else: exec, networking, stop and
rm, the invariant checker (its state lives under crun's own root) and a daemon restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import needs_docker
from tests.e2e.test_model_based import settle_check

CRUN = "/usr/bin/crun"

pytestmark = [needs_docker, pytest.mark.skipif(not os.access(CRUN, os.X_OK), reason="crun not installed")]


def _runtime_of(d, name: str) -> str:
    return json.loads(d.docker("inspect", name).stdout)[0]["HostConfig"]["Runtime"]


def _state_dirs(d, runtime: str) -> set[str]:
    root = Path(d.root) / "data" / "runtime" / ("runc" if runtime == "runc" else f"runtimes/{runtime}")
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def test_run_with_crun_beside_runc(box):
    d = box
    info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
    assert {"runc", "crun"} <= set(info["Runtimes"]) and info["DefaultRuntime"] == "runc"
    d.docker("network", "create", "--subnet", "10.78.0.0/24", "cr-net")
    a = d.docker("run", "-d", "--runtime", "crun", "--name", "cr-a", "--network", "cr-net",
                 "busybox", "sleep", "1d").stdout.strip()
    d.docker("run", "-d", "--name", "cr-b", "--network", "cr-net", "busybox", "sleep", "1d")
    assert _runtime_of(d, "cr-a") == "crun" and _runtime_of(d, "cr-b") == "runc"
    assert a in _state_dirs(d, "crun") and a not in _state_dirs(d, "runc")
    assert d.docker("exec", "cr-a", "cat", "/etc/hostname").stdout.strip() == a[:12]
    d.docker("exec", "cr-a", "ping", "-c1", "-W2", "10.78.0.1")  # the gateway
    d.docker("exec", "cr-a", "ping", "-c1", "-W2", "cr-b")  # a runc container, by name
    d.docker("exec", "cr-b", "ping", "-c1", "-W2", "cr-a")
    assert settle_check(d) == []
    d.restart()
    assert json.loads(d.docker("inspect", "cr-a").stdout)[0]["State"]["Running"]
    d.docker("exec", "cr-a", "ping", "-c1", "-W2", "cr-b")
    assert settle_check(d) == []
    d.docker("stop", "-t", "1", "cr-a")
    assert a not in _state_dirs(d, "crun")  # deleted with its process, cgroups too (the checker)
    assert settle_check(d) == []
    d.docker("start", "cr-a")
    d.docker("exec", "cr-a", "true")
    d.docker("rm", "-f", "cr-a", "cr-b")
    assert settle_check(d) == [] and not _state_dirs(d, "crun")


def test_unknown_runtime_is_dockerds_400(box):
    status, body = box.api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                          "HostConfig": {"Runtime": "kata"}})
    assert (status, body["message"]) == (400, "Unknown runtime specified kata")
    assert box.docker("ps", "-aq").stdout == ""
    box.docker("run", "-d", "--name", "cr-v2", "--runtime", "io.containerd.runc.v2", "busybox", "sleep", "1d")
    assert _runtime_of(box, "cr-v2") == "io.containerd.runc.v2"  # dockerd's other name for runc
    box.docker("exec", "cr-v2", "true")
    assert settle_check(box) == []


def test_default_runtime_crun(make_shoald, busybox_tar):
    d = make_shoald(extra=["--default-runtime", "crun"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    out = d.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3", check=False)
    assert (out.returncode, out.stdout) == (3, "hi\n")
    d.docker("run", "-d", "--name", "cr-d", "busybox", "sleep", "1d")
    d.shoal("run", "-d", "--name", "cr-r", "--runtime", "runc", "busybox", "sleep", "1d")  # shoal's CLI too
    assert (_runtime_of(d, "cr-d"), _runtime_of(d, "cr-r")) == ("crun", "runc")
    assert settle_check(d) == []
    d.docker("rm", "-f", "cr-d", "cr-r")


def test_crun_refusing_the_cgroup_layout_names_the_fix(make_shoald, busybox_tar, tmp_path):
    """What crun 1.8 says on a hybrid layout with a controller left on cgroup v2 (this
    machine's before scripts/setup), as the client sees it: crun's words and the way out."""
    refusing = tmp_path / "refusing-crun"
    refusing.write_text("#!/bin/sh\n[ \"$3\" = create ] || exec /usr/bin/crun \"$@\"\n"
                        "echo 'cgroups in hybrid mode not supported, drop all controllers from cgroupv2' >&2\n"
                        "exit 1\n")
    refusing.chmod(0o755)
    d = make_shoald(extra=["--add-runtime", f"refusing={refusing}"])
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    out = d.docker("run", "-d", "--runtime", "refusing", "--name", "cr-x", "busybox", "sleep", "1d", check=False)
    assert out.returncode != 0
    assert "drop all controllers from cgroupv2" in out.stderr and "v1 hierarchies" in out.stderr, out.stderr
    d.docker("rm", "-f", "cr-x")
    assert settle_check(d) == []
