"""--user resolution against a container's own /etc/passwd and /etc/group (no root)."""

import os

import pytest

from shoal.errors import InvalidParameter
from shoal.runtime.users import ExecUser, in_root, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www:x:33:33:www:/var/www:/bin/false
# a comment
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
wheel:x:10:root,www
web:x:33:
staff:x:50:www,daemon
nogroup:x:65534:
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(("user", "expected"), [
    ("", ExecUser(0, 0, (0, 10))),
    ("root", ExecUser(0, 0, (0, 10))),
    ("www", ExecUser(33, 33, (33, 10, 50))),
    ("33", ExecUser(33, 33, (33, 10, 50))),
    ("www:staff", ExecUser(33, 50, (50, 10))),
    ("www:7", ExecUser(33, 7, (7, 10, 50))),
    ("nobody:nogroup", ExecUser(65534, 65534, (65534,))),
    ("1234", ExecUser(1234, 0, (0,))),  # an id without an entry is fine (Docker)
    ("1234:5678", ExecUser(1234, 5678, (5678,))),
    ("1234:web", ExecUser(1234, 33, (33,))),
])
def test_resolve(root, user, expected):
    assert resolve_user(root, user) == expected


@pytest.mark.parametrize(("user", "message"), [
    ("ghost", "unable to find user ghost: no matching entries in passwd file"),
    ("www:ghosts", "unable to find group ghosts: no matching entries in group file"),
    (":5", "invalid user format"),
    ("www:", "invalid user format"),
    ("99999999999", "range"),
])
def test_errors(root, user, message):
    with pytest.raises(InvalidParameter, match=message):
        resolve_user(root, user)


def test_no_passwd_file_means_ids_only(tmp_path):
    assert resolve_user(tmp_path, "5:6") == ExecUser(5, 6, (6,))
    with pytest.raises(InvalidParameter, match="no matching entries"):
        resolve_user(tmp_path, "www")


def test_oci_user_object(root):
    assert resolve_user(root, "www").oci() == {"uid": 33, "gid": 33, "additionalGids": [33, 10, 50]}
    assert resolve_user(root, "1234").oci() == {"uid": 1234, "gid": 0, "additionalGids": [0]}


def test_symlinks_stay_inside_the_root(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_text("evil:x:7:7::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "passwd").write_text("www:x:33:33::/:/bin/sh\n")
    # an absolute link means the container's /, however many ".." it has
    os.symlink(f"../../../../..{host}/passwd", root / "etc" / "passwd")
    assert in_root(root, "/etc/passwd") == root / host.relative_to("/") / "passwd"
    os.remove(root / "etc" / "passwd")
    os.symlink(str(host / "passwd"), root / "etc" / "passwd")
    with pytest.raises(InvalidParameter, match="no matching entries"):
        resolve_user(root, "evil")
    os.remove(root / "etc" / "passwd")
    os.symlink("/data/passwd", root / "etc" / "passwd")
    assert resolve_user(root, "www") == ExecUser(33, 33, (33,))


def test_symlink_loop_is_an_error(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/passwd", tmp_path / "etc" / "passwd")
    with pytest.raises(InvalidParameter, match="symbolic links"):
        resolve_user(tmp_path, "www")


def test_a_broken_line_is_skipped(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("odd:x:abc:0::/:/bin/sh\nwww:x:33:x::/:/bin/sh\n")
    with pytest.raises(InvalidParameter, match="unable to find user odd"):
        resolve_user(tmp_path, "odd")
    assert resolve_user(tmp_path, "www") == ExecUser(33, 0, (0,))
