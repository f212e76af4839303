"""`shoal` container and image commands against a real shoald (in a throwaway namespace).

Where docker's CLI can run the same command on the same daemon, the outputs are compared;
time columns ("3 seconds ago", "Up 2 seconds") are normalized because the two commands run
a moment apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from .conftest import BIN, needs_docker
from .ptydrive import drive

SHOAL = str(BIN / "shoal")
_TIMES = re.compile(
    r"(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes|hours|days|weeks|months|years))"
)


def cells(table: str) -> list[list[str]]:
    """A table's cells with durations normalized (column widths follow them, so split first)."""
    return [[_TIMES.sub("T", cell) for cell in re.split(r" {2,}", line.strip())] for line in table.splitlines()]


@pytest.fixture
def d(box):
    """The box; its containers are removed before shoald stops, since they would outlive it
    (with their mounts) otherwise."""
    yield box
    status, found = box.api("GET", "/containers/json?all=1")
    for ctr in found if status == 200 else []:
        box.api("DELETE", f"/containers/{ctr['Id']}?force=1")


def env_for(d) -> dict[str, str]:
    return {**os.environ, "SHOAL_HOST": d.host}


def state(d, name: str) -> dict:
    return json.loads(d.shoal("inspect", name).stdout)[0]["State"]


@needs_docker
def test_run_ps_images_logs_like_docker(d):
    cid = d.shoal("run", "-d", "--name", "web", "-e", "A=1", "busybox", "sleep", "600").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    p = d.shoal("run", "--rm", "busybox", "echo", "hello")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello\n", "")
    p = d.shoal("run", "--name", "job", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (7, "out\n", "err\n")
    p = d.shoal("run", "-i", "--name", "cat", "busybox", "cat", input="piped\n")
    assert (p.returncode, p.stdout) == (0, "piped\n")
    for args in (["ps", "-a"], ["images"]):
        assert cells(d.shoal(*args).stdout) == cells(d.docker(*args).stdout), args
    for args in (["inspect", "-f", "{{.Name}} {{.State.ExitCode}} {{.Config.Env}}", "job", "web", "busybox", "nope"],
                 ["inspect", "web", "bridge"], ["logs", "job"]):
        ours, theirs = d.shoal(*args, check=False), d.docker(*args, check=False)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    ours = [json.loads(line) for line in d.shoal("ps", "-a", "--format", "json").stdout.splitlines()]
    theirs = [json.loads(line) for line in d.docker("ps", "-a", "--format", "json").stdout.splitlines()]
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("RunningFor", "Status")} for r in rows]
    assert drop(ours) == drop(theirs) and len(ours) == 3
    d.shoal("run", "-d", "--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3; do echo t$i; sleep 0.3; done")
    p = d.shoal("logs", "-f", "ticker")
    assert (p.stdout, d.shoal("wait", "ticker").stdout) == ("t1\nt2\nt3\n", "0\n")
    p = d.shoal("logs", "--tail", "1", "job")  # docker's tail counts stdout and stderr lines together
    assert (p.stdout, p.stderr) == ("", "err\n")


def test_lifecycle_and_errors(d):
    d.shoal("run", "-d", "--name", "life", "busybox", "sleep", "600")
    assert d.shoal("stop", "-t", "1", "life").stdout == "life\n"
    assert d.shoal("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", "life").stdout == "false 137\n"
    assert d.shoal("start", "life").stdout == "life\n"
    assert d.shoal("kill", "life").stdout == "life\n"
    assert d.shoal("wait", "life").stdout == "137\n"
    assert d.shoal("rm", "life").stdout == "life\n"
    p = d.shoal("run", "nosuchimage", check=False)
    assert p.returncode == 125 and "Unable to find image 'nosuchimage:latest' locally" in p.stderr
    assert "registry-1.docker.io" in p.stderr and "Run 'shoal run --help' for more information" in p.stderr
    d.shoal("run", "-d", "--name", "taken", "busybox", "sleep", "600")
    p = d.shoal("run", "--name", "taken", "busybox", "true", check=False)
    assert p.returncode == 125 and 'The container name "/taken" is already in use' in p.stderr
    p = d.shoal("rm", "taken", check=False)
    assert p.returncode == 1 and "container is running" in p.stderr
    assert d.shoal("rm", "-f", "taken").stdout == "taken\n"
    d.shoal("run", "-d", "--name", "ex", "busybox", "sleep", "600")
    p = d.shoal("exec", "-e", "V=7", "-w", "/tmp", "ex", "sh", "-c", "echo $V $(pwd); echo e >&2; exit 5", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (5, "7 /tmp\n", "e\n")
    p = d.shoal("exec", "ex", "/no/such", check=False)
    assert p.returncode == 127 and p.stdout.startswith("OCI runtime exec failed: ") and "/no/such" in p.stdout, p


def test_interactive_run_attach_exec(d):
    env = env_for(d)
    out, status = drive([SHOAL, "run", "-it", "--name", "one", "busybox", "sh"],
                        [(b"# ", b"echo typed-$((6*7))\r"), (b"typed-42", b"\x10"), (b"", b"\x11")], env=env)
    assert status == 0 and b"typed-42" in out, out
    assert b"read escape sequence" not in out  # run treats a detach as success, silently
    assert state(d, "one")["Running"]
    short = json.loads(d.shoal("inspect", "one").stdout)[0]["Id"][:12].encode()
    out, status = drive([SHOAL, "attach", "one"], [(b"", b"\r"), (b"# ", b"hostname\r"), (b"\n" + short, b"\x10\x11")],
                        env=env)
    assert status == 1 and short in out and out.endswith(b"read escape sequence\r\n"), out
    assert state(d, "one")["Running"]
    out, status = drive([SHOAL, "exec", "-it", "one", "sh"], [(b"# ", b"echo in-$((2+2))\r"), (b"in-4", b"exit 3\r")],
                        env=env)
    assert status == 3 and b"in-4" in out, out
    # the terminal's size reaches the container (ConsoleSize, then a resize after start)
    sized = ["sh", "-c", f"stty rows 33 cols 111; exec {SHOAL} run -it --rm busybox sh"]
    out, status = drive(sized, [(b"# ", b"stty size\r"), (b"33 111", b"exit 4\r")], env=env)
    assert b"33 111" in out and status is not None, out
    out, status = drive([SHOAL, "attach", "one"], [(b"", b"\r"), (b"# ", b"exit 6\r")], env=env)
    assert status == 6, out


def test_image_import_tag_rmi(d, busybox_tar):
    out = d.shoal("image", "import", "-c", 'CMD ["sh"]', "-c", "ENV K=v", str(busybox_tar), "mine:v1").stdout
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    with open(busybox_tar, "rb") as tar:
        p = subprocess.run([SHOAL, "image", "import", "-c", 'CMD ["sh"]', "-c", "ENV K=v", "-", "piped:1"],
                           stdin=tar, env=env_for(d), capture_output=True, text=True, timeout=60)
    # as dockerd: another import is another image (its config records the time), on the same layer
    assert p.returncode == 0 and p.stdout != out
    layers = [d.shoal("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).stdout for ref in ("mine:v1", "piped:1")]
    assert layers[0] == layers[1]
    assert d.shoal("run", "--rm", "mine:v1", "echo", "from-mine").stdout == "from-mine\n"
    d.shoal("image", "tag", "mine:v1", "other/name:2")
    repos = d.shoal("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(repos) == ["busybox:latest", "mine:v1", "other/name:2", "piped:1"]
    assert d.shoal("rmi", "other/name:2", "piped:1").stdout == (
        f"Untagged: other/name:2\nUntagged: piped:1\nDeleted: {p.stdout.strip()}\n")  # the shared layer stays


def test_run_rm_keeps_the_exit_status(d):
    p = d.shoal("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3
    p = d.docker("run", "--rm", "busybox", "sh", "-c", "exit 4", check=False)
    assert p.returncode == 4
