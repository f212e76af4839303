"""The archive API's file side (runtime.cparchive, runtime.cparchive_child) on a directory tree.

The stat header values, names and messages are dockerd 20.10.24's, measured against the same
tree (tests/e2e/test_cp_archive.py holds the e2e comparisons).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from shoal.errors import InvalidParameter, NotFound, ShoalError
from shoal.runtime import cparchive_child as archive_child
from shoal.runtime.cparchive import (
    CHILD,
    container_path,
    extraction_dir,
    go_mode,
    go_time,
    resolve,
    stat_path,
)

MISSING = "Could not find the file {} in container c1"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "bin").mkdir()
    (r / "bin" / "busybox").write_text("#!")
    os.symlink("busybox", r / "bin" / "sh")
    os.symlink("/etc/shadow", r / "esc")  # the host's, if anything followed it outside
    os.symlink("../../../../etc", r / "up")
    (r / "d").mkdir()
    (r / "d" / "f").write_text("hi\n")
    return r


def test_go_file_mode_bits_are_dockerds():
    assert go_mode(0o40755) == 2147484141  # measured: a directory
    assert go_mode(0o120777) == 134218239  # a symlink
    assert go_mode(0o100644) == 420
    assert go_mode(0o104755) == (1 << 23) | 0o755  # setuid
    assert go_mode(0o20666) == (1 << 26) | (1 << 21) | 0o666  # a char device


def test_go_time_drops_trailing_zeros():
    assert go_time(0) == "1970-01-01T00:00:00Z"
    assert go_time(1_764_622_886_108_620_836) == "2025-12-01T21:01:26.108620836Z"
    assert go_time(1_500_000_000) == "1970-01-01T00:00:01.5Z"


def test_paths_are_cleaned_and_keep_a_trailing_slash():
    assert container_path("d/f") == "/d/f"
    assert container_path("../../../etc/passwd") == "/etc/passwd"
    assert container_path("/up/") == "/up/"
    assert container_path("/d/.") == "/d/"
    assert container_path("/") == "/"
    with pytest.raises(InvalidParameter, match="bad parameter: pathcannot be empty"):
        container_path("")


def test_the_last_link_is_followed_only_with_a_trailing_slash(root):
    _, _, st = stat_path(root, "/up", MISSING)
    assert (st.name, st.mode, st.link_target) == ("up", 134218239, "/etc")
    host, resolved, st = stat_path(root, "/up/", MISSING)
    assert (host, resolved, st.name, st.mode, st.link_target) == (root / "etc", "/etc", "up", 2147484141, "")
    assert stat_path(root, "/bin/sh", MISSING)[2].link_target == "/bin/busybox"


def test_links_never_leave_the_root(root):
    assert resolve(root, "/esc/")[0] == root / "etc" / "shadow"
    assert resolve(root, "../../../etc/passwd") == (root / "etc" / "passwd", "/etc/passwd")
    _, _, st = stat_path(root, "/esc", MISSING)
    assert st.link_target == "/etc/shadow" and st.size == len("/etc/shadow")
    with pytest.raises(NotFound, match="Could not find the file /esc/ in container c1"):
        stat_path(root, "/esc/", MISSING.format("/esc/"))


def test_a_file_with_a_trailing_slash_is_not_a_directory(root):
    with pytest.raises(ShoalError, match=r"^lstat /d/f/: not a directory$"):
        stat_path(root, "/d/f/", MISSING)


def test_the_stat_header_is_base64_json(root):
    header = stat_path(root, "/d/f", MISSING)[2].header()
    assert set(json.loads(base64.b64decode(header))) == {"name", "size", "mode", "mtime", "linkTarget"}


def test_extraction_needs_an_existing_directory(root):
    assert extraction_dir(root, "/up", MISSING) == "/etc"
    with pytest.raises(NotFound):
        extraction_dir(root, "/nonexist", MISSING)
    with pytest.raises(ShoalError, match="^extraction point is not a directory$"):
        extraction_dir(root, "/d/f", MISSING)


def _tar(*entries) -> io.BytesIO:
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
                info.size, info.uid, info.gid = len(data), 1234, 4321
                t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_untar_refuses_members_outside_the_directory(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match=r'^"../../escape" is outside of "%s"$' % (tmp_path / "d")):
        archive_child.extract(str(tmp_path / "d"), _tar(("../../escape", "f", b"x")), False, None)
    assert not (tmp_path.parent / "escape").exists()


def test_untar_no_overwrite_messages_are_dockerds(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match=f'cannot overwrite non-directory "{tmp_path}/f" with directory "{tmp_path}"'):
        archive_child.extract(str(tmp_path), _tar(("f", "dir", None)), True, None)
    with pytest.raises(ValueError, match=f'cannot overwrite directory "{tmp_path}/sub" with non-directory'):
        archive_child.extract(str(tmp_path), _tar(("sub", "f", b"x")), True, None)
    archive_child.extract(str(tmp_path), _tar(("f", "dir", None)), False, None)  # replaced without the flag
    assert (tmp_path / "f").is_dir()


def test_untar_keeps_or_overrides_owners(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    archive_child.extract(str(tmp_path), _tar(("kept", "f", b"x")), False, None)
    archive_child.extract(str(tmp_path), _tar(("given", "f", b"x")), False, (7, 8))
    assert (os.stat(tmp_path / "kept").st_uid, os.stat(tmp_path / "kept").st_gid) == (1234, 4321)
    assert (os.stat(tmp_path / "given").st_uid, os.stat(tmp_path / "given").st_gid) == (7, 8)


def test_garbage_is_an_invalid_tar_header_and_empty_is_empty(tmp_path):
    with pytest.raises(ValueError, match="archive/tar: invalid tar header"):
        archive_child.extract(str(tmp_path), io.BytesIO(b"not a tar at all" * 100), False, None)
    archive_child.extract(str(tmp_path), io.BytesIO(b""), False, None)


def test_tar_out_renames_and_keeps_links_as_links(root):
    buf = io.BytesIO()
    archive_child.write_tar(str(root / "d"), "renamed", buf)
    os.symlink("/etc/shadow", root / "d" / "lnk")
    buf2 = io.BytesIO()
    archive_child.write_tar(str(root / "d"), "d", buf2)
    buf.seek(0), buf2.seek(0)
    assert tarfile.open(fileobj=buf).getnames() == ["renamed", "renamed/f"]
    members = {m.name: m for m in tarfile.open(fileobj=buf2)}
    assert members["d/lnk"].issym() and members["d/lnk"].linkname == "/etc/shadow"
    assert members["d/f"].uname == "" and len(buf2.getvalue()) % 512 == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_the_child_is_chrooted_so_links_land_inside(root, tmp_path):
    """A link to /etc and a member through it: written into the root's /etc, never the host's."""
    os.symlink("/etc", root / "d" / "hostetc")
    data = _tar(("hostetc/shoal-test-escape", "f", b"x")).getvalue()
    p = subprocess.run([sys.executable, "-I", str(CHILD), "untar", str(root), "/d", "-"], input=data,
                       capture_output=True, check=False)
    assert p.returncode == 0, p.stderr
    assert (root / "etc" / "shoal-test-escape").exists()
    assert not os.path.exists("/etc/shoal-test-escape")
    out = subprocess.run([sys.executable, "-I", str(CHILD), "tar", str(root), "/esc", "esc"], capture_output=True, check=False)
    members = tarfile.open(fileobj=io.BytesIO(out.stdout)).getmembers()
    assert [(m.name, m.linkname) for m in members] == [("esc", "/etc/shadow")]
