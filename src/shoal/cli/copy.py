"""`shoal cp`: files between a container and this machine, as `docker cp` copies them.

The daemon's archive API does the container's side (a tar out of or into a directory, the
stat of a path); this side decides, as docker's CLI does, what the copy means: into an
existing directory the source keeps its name, onto a path that does not exist it takes
that name, `SRC/.` copies a directory's contents, `-` is a tar on stdin or stdout.
Extraction here refuses members that would land outside the destination (tarfile's
"tar" filter), whatever the container's tar holds.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tarfile
import threading
from collections.abc import Iterator

import click

from shoal.cli.client import path_segment
from shoal.cli.cmdutil import AppContext, pass_app
from shoal.cli.errors import CliError, DaemonError

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
CHUNK = 1 << 16


def register(root: click.Group) -> None:
    root.add_command(cp)


def split_ref(arg: str) -> tuple[str, str]:
    """`CONTAINER:PATH` -> (container, path); a local path -> ("", path). As docker: a
    path that starts with `/` or `.` is local even with a colon in it."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    container, _, path = arg.partition(":")
    return container, path


@click.command("cp", short_help="Copy files/folders between a container and the local filesystem")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@pass_app
def cp(app: AppContext, src: str, dest: str, follow_link: bool, archive: bool) -> None:
    """Copy SRC to DEST: one of them is CONTAINER:PATH, `-` is a tar on stdin/stdout."""
    src_ctr, src_path = split_ref(src)
    dest_ctr, dest_path = split_ref(dest)
    if src_ctr and dest_ctr:
        raise CliError("copying between containers is not supported")
    if not src_ctr and not dest_ctr:
        raise CliError("must specify at least one container source")
    if src_ctr:
        copy_from(app, src_ctr, src_path, dest_path, follow_link)
    else:
        copy_to(app, src_path, dest_ctr, dest_path, follow_link, archive)


def _stat(header: str) -> dict:
    return json.loads(base64.b64decode(header)) if header else {}


def _archive_path(container: str) -> str:
    return f"/containers/{path_segment(container)}/archive"


def stat_in(app: AppContext, container: str, path: str) -> dict | None:
    """The container path's stat, or None when it does not exist."""
    try:
        response = app.client().request("HEAD", _archive_path(container), params={"path": path})
    except DaemonError as exc:
        if exc.status == 404:
            return None
        raise
    return _stat(response.headers.get("X-Docker-Container-Path-Stat", ""))


# -- out of the container ----------------------------------------------------------------

def _rebased(tar: tarfile.TarFile, old: str, new: str) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        for attr in ("name", "linkname") if member.islnk() else ("name",):
            value = getattr(member, attr)
            if value == old or value.startswith(old.rstrip("/") + "/"):
                setattr(member, attr, new + value[len(old.rstrip("/")):] if old != "." else os.path.join(new, value))
        yield member


def copy_from(app: AppContext, container: str, path: str, dest: str, follow: bool) -> None:
    if follow:
        st = stat_in(app, container, path)
        if st and st.get("mode", 0) & GO_SYMLINK:
            path = st["linkTarget"]
    with app.client().stream("GET", _archive_path(container), params={"path": path}) as response:
        if dest == "-":
            for chunk in response.iter_bytes(CHUNK):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        st = _stat(response.headers.get("X-Docker-Container-Path-Stat", ""))
        src_dir = bool(st.get("mode", 0) & GO_DIR)
        top = "." if path.endswith("/.") else (st.get("name") or os.path.basename(path.rstrip("/")))
        into, name = _local_target(dest, src_dir, contents=top == ".")
        name = name or top
        reader = _IterReader(response.iter_bytes(CHUNK))
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in _rebased(tar, top, name) if name != top else tar:
                tar.extract(member, into, filter="tar")


def _local_target(dest: str, src_dir: bool, *, contents: bool) -> tuple[str, str]:
    """(directory to extract into, the name the source's top entry takes there)."""
    if os.path.isdir(dest):
        return (dest, ".") if contents else (dest, "")
    if os.path.lexists(dest):
        if src_dir:
            raise CliError(f"cannot copy directory to file {dest}")
        return os.path.dirname(os.path.abspath(dest)), os.path.basename(dest)
    if dest.endswith("/") and not src_dir:
        raise CliError("no such directory")
    parent = os.path.dirname(os.path.abspath(dest.rstrip("/")))
    if not os.path.isdir(parent):
        raise CliError(f"lstat {parent}: no such file or directory")
    return parent, os.path.basename(dest.rstrip("/"))


class _IterReader:
    """A file-like view of an iterator of byte chunks (tarfile's stream mode reads it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        out, self._buf = (self._buf, b"") if size < 0 else (self._buf[:size], self._buf[size:])
        return out


# -- into the container ------------------------------------------------------------------

def copy_to(app: AppContext, src: str, container: str, dest: str, follow: bool, archive: bool) -> None:
    params = {"path": dest, "noOverwriteDirNonDir": "true", "copyUIDGID": "true" if archive else None}
    if src == "-":
        body: Iterator[bytes] = iter(lambda: sys.stdin.buffer.read(CHUNK), b"")
        _put(app, container, params, body)
        return
    if follow:
        src = os.path.realpath(src)
    if not os.path.lexists(src):
        raise CliError(f"lstat {os.path.abspath(src)}: no such file or directory")
    src_dir = os.path.isdir(src) and not os.path.islink(src)
    st = stat_in(app, container, dest)
    name = "." if src.endswith("/.") else os.path.basename(src.rstrip("/"))
    if st is not None and st.get("mode", 0) & GO_DIR:
        into = dest
    elif st is not None:
        if src_dir:
            raise CliError("cannot copy directory")
        into, name = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest)
    else:
        if dest.endswith("/") and not src_dir:
            raise CliError("no such directory")
        into, name = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest.rstrip("/"))
    _put(app, container, {**params, "path": into}, _tar_stream(src, name))


def _put(app: AppContext, container: str, params: dict, body: Iterator[bytes]) -> None:
    with app.client().stream("PUT", _archive_path(container), params={k: v for k, v in params.items() if v},
                             content=body, headers={"Content-Type": "application/x-tar"}):
        pass


def _tar_stream(src: str, name: str) -> Iterator[bytes]:
    """The tar of `src` with its top entry named `name`, made in a thread as it is sent."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                                format=tarfile.PAX_FORMAT) as tar:
                tar.add(src, arcname=name, recursive=True)
        except (OSError, tarfile.TarError) as exc:
            failure.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        while chunk := pipe.read(CHUNK):
            yield chunk
    writer.join()
    if failure:
        raise CliError(f"cannot read {src}: {failure[0]}")
