"""`docker cp` and the archive API against shoald, with dockerd 20.10.24's answers.

The expected statuses, stat headers and messages below were measured on Debian's dockerd
20.10.24 (its own namespace and data root, as tests/e2e/test_docker_plugins.py starts it)
with the same busybox image and the same container set-up (SETUP); shoald must give the
same. Where the two differ on purpose it is said at the assertion.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile

import httpx
import pytest

from tests.e2e.conftest import needs_docker

pytestmark = needs_docker

SETUP = "ln -s /etc/shadow /esc; ln -s ../../../../etc /up; mkdir /d; echo hi > /d/f; sleep 1000"
DIR = 2147484141  # Go's os.ModeDir | 0755
LINK = 134218239  # os.ModeSymlink | 0777

# (method, path) -> (status, stat header's fields or message), as dockerd 20.10.24 answered
GOLDEN_GET = [
    ("HEAD", "/nonexist", 404, None),
    ("GET", "/nonexist", 404, "Could not find the file /nonexist in container c1"),
    ("HEAD", "/bin/sh", 200, {"name": "sh", "size": 7, "mode": LINK, "linkTarget": "/bin/busybox"}),
    ("HEAD", "/esc", 200, {"name": "esc", "size": 11, "mode": LINK, "linkTarget": "/etc/shadow"}),
    ("HEAD", "/up", 200, {"name": "up", "size": 15, "mode": LINK, "linkTarget": "/etc"}),
    ("HEAD", "/up/", 200, {"name": "up", "size": 4096, "mode": DIR, "linkTarget": ""}),
    ("GET", "/d/f/", 500, "lstat /d/f/: not a directory"),  # dockerd names its host path; shoald does not
    ("HEAD", "../../../etc/passwd", 200, {"name": "passwd", "mode": 420, "linkTarget": ""}),
    ("HEAD", "d/f", 200, {"name": "f", "size": 3, "mode": 420, "linkTarget": ""}),
    ("HEAD", "/", 200, {"name": "/", "size": 4096, "mode": DIR, "linkTarget": ""}),
    ("HEAD", "/proc/1/status", 404, None),  # the rootfs, not the container's mounts
    ("GET", "", 400, "bad parameter: pathcannot be empty"),
]

# (path, tar entries) -> (status, message)
TAR_ERR = "Error processing tar file(exit status 1): "
GOLDEN_PUT = [
    ("/d", [("new.txt", "f", b"new\n")], 200, ""),
    ("/nonexist", [("x", "f", b"x")], 404, "Could not find the file /nonexist in container c1"),
    ("/d/f", [("x", "f", b"x")], 500, "extraction point is not a directory"),
    ("/d&noOverwriteDirNonDir=1", [("f", "dir", None)], 500,
     TAR_ERR + 'cannot overwrite non-directory "/d/f" with directory "/d"'),
    ("/&noOverwriteDirNonDir=1", [("d", "f", b"x")], 500,
     TAR_ERR + 'cannot overwrite directory "/d" with non-directory "/"'),
    ("/d", [("../../escape", "f", b"x")], 500, TAR_ERR + '"../../escape" is outside of "/d"'),
    ("/up", [("viaup", "f", b"x")], 200, ""),
    ("/d", [("lnk", "sym", "/etc/shadow")], 200, ""),
    ("/d", [("lnk/through", "f", b"x")], 500, TAR_ERR + "open /d/lnk/through: no such file or directory"),
]


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                t.addfile(info)
            else:
                info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1234, 4321
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _http(box) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=box.sock), base_url="http://shoal", timeout=30)


def _stat(response) -> dict | None:
    header = response.headers.get("x-docker-container-path-stat")
    return json.loads(base64.b64decode(header)) if header else None


@pytest.fixture
def c1(box):
    box.docker("run", "-d", "--name", "c1", "busybox", "sh", "-c", SETUP)
    box.docker("exec", "c1", "sh", "-c", "while [ ! -f /d/f ]; do sleep 0.05; done")
    return box


def test_stat_and_get_answer_as_dockerd(c1):
    with _http(c1) as http:
        for method, path, status, want in GOLDEN_GET:
            r = http.request(method, "/containers/c1/archive", params={"path": path} if path else None)
            assert r.status_code == status, (method, path, r.text)
            if isinstance(want, dict):
                got = _stat(r)
                assert {k: got[k] for k in want} == want, (method, path)
                assert set(got) == {"name", "size", "mode", "mtime", "linkTarget"}
            elif want is not None and method == "GET":
                assert r.json() == {"message": want}, path
        r = http.get("/containers/c1/archive", params={"path": "/d"})
        assert r.headers["content-type"] == "application/x-tar"
        assert tarfile.open(fileobj=io.BytesIO(r.content)).getnames() == ["d", "d/f"]
        r = http.get("/containers/nope/archive", params={"path": "/"})
        assert (r.status_code, r.json()) == (404, {"message": "No such container: nope"})


def test_put_answers_as_dockerd_and_stays_inside(c1):
    with _http(c1) as http:
        for path, entries, status, message in GOLDEN_PUT:
            where, _, flags = path.partition("&")
            params = {"path": where, **dict([flags.split("=")] if flags else [])}
            r = http.put("/containers/c1/archive", params=params, content=_tar(entries))
            assert r.status_code == status, (path, r.text)
            if message:
                assert r.json() == {"message": message}, path
        r = http.put("/containers/c1/archive", params={"path": "/d"}, content=b"not a tar at all" * 100)
        assert r.json() == {"message": TAR_ERR + "archive/tar: invalid tar header"}
    listing = c1.docker("exec", "c1", "ls", "-ln", "/d", "/etc/viaup").stdout
    assert "1234     4321" in listing and "new.txt" in listing and "lnk -> /etc/shadow" in listing
    assert not os.path.exists("/escape") and not os.path.exists("/etc/viaup")


def test_links_to_host_paths_resolve_inside_the_container(c1):
    """`/esc` -> /etc/shadow: the container has none, so following it is a 404, never the
    host's file; `/up` climbs above `/` and lands on the container's /etc."""
    with _http(c1) as http:
        assert http.get("/containers/c1/archive", params={"path": "/esc/"}).status_code == 404
        r = http.get("/containers/c1/archive", params={"path": "/up/passwd"})
        member = tarfile.open(fileobj=io.BytesIO(r.content)).extractfile("passwd").read()
        assert member == c1.docker("exec", "c1", "cat", "/etc/passwd").stdout.encode()
        c1.docker("exec", "c1", "ln", "-s", "/", "/d/hostroot")
        r = http.put("/containers/c1/archive", params={"path": "/d/hostroot/tmp"},
                     content=_tar([("shoal-escape-probe", "f", b"x")]))
        assert r.status_code == 200
    assert not os.path.exists("/tmp/shoal-escape-probe")
    assert c1.docker("exec", "c1", "cat", "/tmp/shoal-escape-probe").stdout == "x"


def test_docker_cp_both_ways_running_and_stopped(box, tmp_path):
    box.docker("create", "--name", "c2", "busybox", "sleep", "1000")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a").write_text("a\n")
    (tmp_path / "in.txt").write_text("hello\n")
    box.docker("cp", str(tmp_path / "in.txt"), "c2:/tmp/x.txt")  # created, never started
    box.docker("cp", str(src), "c2:/")
    box.docker("cp", "c2:/tmp/x.txt", str(tmp_path / "back.txt"))
    box.docker("cp", "c2:/src", str(tmp_path / "srcback"))
    assert (tmp_path / "back.txt").read_text() == "hello\n"
    assert (tmp_path / "srcback" / "sub" / "a").read_text() == "a\n"
    box.docker("start", "c2")
    box.docker("cp", str(tmp_path / "in.txt"), "c2:/src/sub/")
    assert box.docker("exec", "c2", "cat", "/src/sub/in.txt").stdout == "hello\n"
    box.docker("stop", "-t", "0", "c2")
    out = subprocess.run(["tar", "-t"], input=box.docker("cp", "c2:/src/.", "-").stdout.encode(),
                         capture_output=True, check=False).stdout.decode().split()
    assert {"./", "./sub/", "./sub/a", "./sub/in.txt"} <= set(out)
    missing = box.docker("cp", "c2:/nonexist", str(tmp_path), check=False)
    assert missing.returncode == 1
    assert "Error response from daemon: Could not find the file /nonexist in container c2" in missing.stderr


def test_shoal_cp_and_the_sdk(box, tmp_path):
    import docker

    box.docker("run", "-d", "--name", "c3", "busybox", "sleep", "1000")
    (tmp_path / "loc.txt").write_text("local\n")
    box.shoal("cp", str(tmp_path / "loc.txt"), "c3:/tmp/")
    box.shoal("cp", str(tmp_path / "loc.txt"), "c3:/tmp/renamed.txt")
    box.shoal("cp", "c3:/tmp", str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["loc.txt", "renamed.txt"]
    client = docker.DockerClient(base_url=box.host, version="auto")
    try:
        ctr = client.containers.get("c3")
        assert ctr.put_archive("/tmp", _tar([("sdk.txt", "f", b"sdk\n")]))
        stream, stat = ctr.get_archive("/tmp/sdk.txt")
        data = b"".join(stream)
        assert stat["name"] == "sdk.txt" and stat["size"] == 4
        assert tarfile.open(fileobj=io.BytesIO(data)).extractfile("sdk.txt").read() == b"sdk\n"
        with pytest.raises(docker.errors.NotFound):
            ctr.get_archive("/nonexist")
    finally:
        client.close()


def test_a_running_containers_etc_files_are_the_ones_it_sees(c1):
    """dockerd 20.10 answers `/etc/hostname` of a running container with the mounted file
    (measured: size 13, the id's 12 characters and a newline), not the image's."""
    hostname = c1.docker("exec", "c1", "hostname").stdout
    with _http(c1) as http:
        assert _stat(http.head("/containers/c1/archive", params={"path": "/etc/hostname"}))["size"] == len(hostname)
    hosts = subprocess.run(["tar", "-xO"], input=c1.docker("cp", "c1:/etc/hosts", "-").stdout.encode(),
                           capture_output=True, check=False).stdout.decode()
    assert hosts == c1.docker("exec", "c1", "cat", "/etc/hosts").stdout
    with open("/proc/self/mountinfo") as f:
        assert "/etc/hosts" not in f.read()  # mounted in the tar process's own namespace only


def test_copy_uid_gid_and_a_read_only_rootfs(box):
    """dockerd 20.10.24: with copyUIDGID the files belong to the container's user (nobody:
    65534:65534); without a user, to the archive's owners; a --read-only container's rootfs
    refuses with a 500. (For a numeric `--user 1000:1001` dockerd fails with `getent unable
    to find entry "1000:1001" in passwd database`; shoald uses the ids, as runc does.)"""
    box.docker("run", "-d", "--name", "u2", "--user", "nobody", "busybox", "sleep", "1000")
    box.docker("create", "--name", "ro1", "--read-only", "busybox", "sleep", "1000")
    with _http(box) as http:
        body = _tar([("own.txt", "f", b"x")])
        r = http.put("/containers/u2/archive", params={"path": "/tmp", "copyUIDGID": "1"}, content=body)
        assert r.status_code == 200
        r = http.put("/containers/ro1/archive", params={"path": "/tmp"}, content=body)
        assert (r.status_code, r.json()) == (500, {"message": "container rootfs is marked read-only"})
        assert http.head("/containers/ro1/archive", params={"path": "/tmp"}).status_code == 200
    assert box.docker("exec", "u2", "stat", "-c", "%u:%g", "/tmp/own.txt").stdout.strip() == "65534:65534"
