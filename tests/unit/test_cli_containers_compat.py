"""The docker 28 CLI and `shoal` against the same stub daemon: same requests, same output.

Both CLIs talk to the stub from test_cli_containers (a unix socket in a temp dir); we compare
exit status, stdout, stderr and every request (method, path, query, body bytes, and the
hijack headers). Skipped when `docker` is not on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest

from tests.unit.test_cli_containers import CID, IMAGE_ID, Hijacked, Reply, Seen, Stub, stub  # noqa: F401 - fixture
from tests.unit.test_cli_containers_views import CONTAINERS, IMAGES

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="docker CLI not on PATH")


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    requests: list[tuple]


def shape(seen: list[Seen]) -> list[tuple]:
    """What a daemon sees; `Connection` only matters on a hijack (httpx adds keep-alive elsewhere)."""
    def hijack_headers(s: Seen) -> tuple:
        upgrade = s.headers.get("upgrade")
        return (s.headers.get("connection") if upgrade else None, upgrade, s.headers.get("content-type"))

    return [(s.method, s.path, s.query, s.body, hijack_headers(s)) for s in seen]


def run_docker(stub: Stub, *args: str, input: bytes | None = None) -> Outcome:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(stub.root), "DOCKER_HOST": stub.host,
           "DOCKER_CONFIG": str(stub.root / "docker-config")}
    proc = subprocess.run([DOCKER or "docker", *args], input=input, capture_output=True, env=env, timeout=30)
    return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), shape(stub.take()))


def run_shoal(stub: Stub, *args: str, input: bytes | None = None) -> Outcome:
    result = stub.shoal(*args, input=input)
    return Outcome(result.exit_code, result.stdout, result.stderr, shape(stub.take()))


def same(stub: Stub, *args: str, input: bytes | None = None, parallel: bool = False) -> Outcome:
    """Identical results; `parallel`: docker runs the per-container calls concurrently."""
    theirs, ours = run_docker(stub, *args, input=input), run_shoal(stub, *args, input=input)
    assert (ours.code, ours.out, ours.err) == (theirs.code, theirs.out, theirs.err)
    # docker's object lookup also tries volumes and plugins (and asks /info about swarm)
    wanted = [r for r in theirs.requests if not re.match(r"/(volumes|plugins|info)\b", r[1])]
    assert (sorted(ours.requests) if parallel else ours.requests) == (sorted(wanted) if parallel else wanted)
    return ours


@pytest.fixture
def daemon(stub):
    """The stub with list data docker prints in a stable order: Go ranges over maps (a
    container's networks, an image's repositories) randomly, so each has only one here."""
    created = int(time.time()) - 7200  # "2 hours ago" for both CLIs, however long the test takes
    containers = [{**c, "Created": created, "NetworkSettings": {"Networks": {"n1": {}}}} for c in CONTAINERS]
    images = [{**i, "Created": created, "RepoTags": i["RepoTags"][:1]} for i in IMAGES]
    stub.route("GET", "/containers/json", lambda s: containers)
    stub.route("GET", "/images/json", lambda s: images)
    missing = Reply(404, {"message": "No such container: nope"})
    stub.route("(POST|GET)", r"/containers/nope/\w+", lambda s: missing)
    stub.route("DELETE", r"/containers/nope", lambda s: missing)
    return stub


RUN_ARGS = [
    ["-d", "busybox"],
    # one -e only: docker passes the env list through a Go map (ParseProxyConfig), so its order is random
    ["-d", "--name", "web", "--hostname", "hh", "-e", "B=a<b", "-w", "/tmp", "-u", "1:2",
     "--label", "z=1", "--label", "a", "busybox", "sleep", "60"],
    ["-d", "--rm", "--network", "mynet", "--ip", "10.0.0.5", "--ip6", "fd00::5", "--mac-address", "02:00:00:00:00:01",
     "--network-alias", "x", "--network-alias", "y", "busybox"],
    ["-d", "--network", "host", "--entrypoint", "/bin/sh", "busybox", "-c", "echo hi"],
    ["-d", "--net", "none", "--entrypoint=", "busybox"],
    ["-d", "--ip", "172.17.0.9", "busybox"],
    ["busybox", "sh", "-c", "exit 3"],
    ["--rm", "busybox"],
    ["--detach-keys", "ctrl-a,x", "busybox"],
    ["--network-alias", "x", "busybox"],
]


@pytest.mark.parametrize("args", RUN_ARGS, ids=lambda a: " ".join(a))
def test_run(daemon, args):
    daemon.wait_status = 3
    # docker prints its own name in run errors ("docker: ..."); compare the rest
    theirs, ours = run_docker(daemon, "run", *args), run_shoal(daemon, "run", *args)
    assert (ours.code, ours.out, ours.requests) == (theirs.code, theirs.out, theirs.requests)
    assert ours.err == theirs.err.replace("docker", "shoal")


def test_run_interactive_stdin(daemon):
    daemon.route("POST", r"/containers/[^/]+/attach", lambda s: Hijacked(echo=True))
    same(daemon, "run", "-i", "busybox", "cat", input=b"hello\nworld\n")
    assert daemon.state.typed == [b"hello\nworld\n"] * 2


def test_run_pull_then_retry(daemon):
    answers = iter([Reply(404, {"message": "No such image: nope:1"}), Reply(201, {"Id": CID, "Warnings": []})] * 2)
    daemon.route("POST", "/containers/create", lambda s: next(answers))
    daemon.route("POST", "/images/create", lambda s: ("lines", b'{"status":"Status: Image is up to date for nope:1"}\r\n'))
    same(daemon, "run", "-d", "nope:1")


@pytest.mark.parametrize("args", [
    ["web", "sh", "-c", "x"],
    ["-e", "A=1", "-w", "/tmp", "-u", "nobody", "--privileged", "web", "true"],
    ["-d", "web", "touch", "/x"],
    ["--detach-keys", "ctrl-x", "web", "true"],
    ["nope", "true"],
])
def test_exec(daemon, args):
    daemon.exec_code = 5
    same(daemon, "exec", *args)


@pytest.mark.parametrize("args", [
    ["stop", "-t", "1", "a1", "nope", "a2"], ["stop", "a1"], ["kill", "a1", "nope"], ["kill", "-s", "TERM", "a1"],
    ["restart", "-t", "0", "a1"], ["rm", "a1", "nope"], ["rm", "-f", "a1", "nope"], ["wait", "a1", "nope"],
    ["start", "a1", "nope", "a2"], ["start", "-a", "web"], ["attach", "web"], ["attach", "--no-stdin", "web"],
    ["logs", "web"], ["logs", "-f", "-t", "--tail", "3", "web"],
])
def test_container_commands(daemon, args):
    daemon.wait_status = 2
    same(daemon, *args, parallel=args[0] in ("stop", "kill", "restart", "rm"))


def test_attach_to_a_stopped_container(daemon):
    daemon.container["State"]["Running"] = False
    same(daemon, "attach", "web")


@pytest.mark.parametrize("args", [
    [], ["-a"], ["-q"], ["-aq", "--no-trunc"], ["--no-trunc"], ["--format", "json"], ["--format", "raw"],
    ["--format", "table {{.Names}}\\t{{.Networks}}\\t{{.Labels}}\\t{{.Size}}\\t{{.CreatedAt}}"],
    ["--format", "{{json .}}"], ["-q", "--format", "{{.Names}}"], ["-s"], ["-n", "2", "-f", "status=exited"], ["-l"],
    ["--format", '{{.Label "a"}}|{{.Platform}}|{{.LocalVolumes}}|{{.Mounts}}|{{.State}}'],
])
def test_ps(daemon, args):
    same(daemon, "ps", *args)


@pytest.mark.parametrize("args", [
    [], ["-q"], ["--no-trunc"], ["--digests"], ["--format", "json"], ["--format", "raw"], ["-a", "busybox"],
    ["--format", "table {{.Repository}}\\t{{.Containers}}\\t{{.VirtualSize}}\\t{{.SharedSize}}\\t{{.UniqueSize}}"],
    ["--format", "{{.ID}} {{.CreatedAt}}"], ["-f", "dangling=true"],
])
def test_images(daemon, args):
    same(daemon, "images", *args)
    same(daemon, "image", "ls", *args)


def test_inspect_lookup(daemon):
    daemon.route("GET", r"/containers/(bb|br)/json", lambda s: Reply(404, {"message": "No such container"}))
    daemon.route("GET", r"/images/bb/json", lambda s: {"Id": IMAGE_ID, "RepoTags": ["bb:latest"]})
    daemon.route("GET", r"/images/(br|nope)/json", lambda s: Reply(404, {"message": "No such image"}))
    daemon.route("GET", r"/networks/br", lambda s: {"Name": "br", "Id": "n" * 64})
    daemon.route("GET", r"/networks/nope", lambda s: Reply(404, {"message": "network nope not found"}))
    same(daemon, "inspect", "web", "bb", "br")
    same(daemon, "inspect", "-f", "{{.Id}}", "web", "bb", "br", "nope")
    same(daemon, "inspect", "nope")
    same(daemon, "image", "inspect", "bb", "nope")


def test_image_tag_rmi_import(daemon, tmp_path):
    daemon.route("POST", r"/images/.*/tag", lambda s: Reply(201, None))
    for args in (["busybox", "bb"], ["busybox", "me/app:1"], ["busybox", "Bad"], [IMAGE_ID, "x:1"]):
        same(daemon, "image", "tag", *args)
    daemon.route("DELETE", r"/images/gone.*", lambda s: Reply(404, {"message": "No such image: gone:latest"}))
    daemon.route("DELETE", r"/images/.*", lambda s: [{"Untagged": "me/app:1"}, {"Deleted": IMAGE_ID}])
    for args in (["me/app:1"], ["-f", "--no-prune", "me/app:1", "gone"], ["gone"]):
        same(daemon, "rmi", *args)
        same(daemon, "image", "rm", *args)
    daemon.route("POST", "/images/create", lambda s: ("lines", json.dumps({"status": IMAGE_ID}).encode() + b"\r\n"))
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"\0" * 5000)
    for args in ([str(tar)], [str(tar), "repo:tag"], ["-c", 'CMD ["sh"]', "-c", "ENV A=1", "-m", "msg", str(tar), "r"]):
        same(daemon, "image", "import", *args)
    same(daemon, "image", "import", "-", "r:1", input=b"tar-from-stdin")
