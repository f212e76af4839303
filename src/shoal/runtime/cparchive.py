"""The archive API's file side: Docker's path stat, and tar streams out of and into a rootfs.

Paths are container paths, resolved as dockerd resolves them: relative to `/`, every
symlink on the way followed *inside* the root (runtime.users.in_root), and the last
element itself only when the path ends in `/` or `/.` (so `docker cp c:/link .` copies
the link, `c:/link/` what it points to). The stat is read here with lstat; the tar
itself is written and read by cparchive_child.py, a process chrooted into the root, so
the kernel keeps every path of a tar inside the container, whatever links it holds.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shoal.errors import InvalidParameter, NotFound, ShoalError
from shoal.runtime.users import in_root

CHILD = Path(__file__).with_name("cparchive_child.py")
CHUNK = 1 << 16

# Go's os.FileMode type bits, which dockerd's stat header carries
_GO_TYPE = {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFBLK: 1 << 26, stat.S_IFIFO: 1 << 25,
            stat.S_IFSOCK: 1 << 24, stat.S_IFCHR: (1 << 26) | (1 << 21)}
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


def go_mode(st_mode: int) -> int:
    """A stat mode as Go's os.FileMode: permission bits, type and special bits moved up."""
    mode = (st_mode & 0o777) | _GO_TYPE.get(stat.S_IFMT(st_mode), 0)
    for bit, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID), (stat.S_ISVTX, _GO_STICKY)):
        if st_mode & bit:
            mode |= go
    return mode


def go_time(ns: int) -> str:
    """Unix nanoseconds as Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int
    mtime: str
    link_target: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
                "linkTarget": self.link_target}

    def header(self) -> str:
        """The X-Docker-Container-Path-Stat value: base64 of the JSON."""
        return base64.b64encode(json.dumps(self.to_json(), separators=(",", ":")).encode()).decode()


def container_path(path: str) -> str:
    """The query's path, absolute and cleaned, keeping a trailing `/` or `/.` (which means:
    follow the last element)."""
    if not path:
        raise InvalidParameter("bad parameter: pathcannot be empty")  # sic: dockerd 20.10's wording
    clean = os.path.normpath("/" + path)
    clean = "/" + clean.lstrip("/")
    if clean != "/" and path.endswith(("/", "/.")):
        clean += "/"
    return clean


def resolve(root: Path, path: str) -> tuple[Path, str]:
    """(host path under `root`, container path) of `path` (see the module docstring)."""
    cpath = container_path(path)
    if cpath.endswith("/"):
        host = in_root(root, cpath)
    else:
        parent, base = os.path.split(cpath)
        host = in_root(root, parent) / base
    rel = os.path.relpath(host, root)
    return host, "/" if rel == "." else "/" + rel


def stat_path(root: Path, path: str, not_found: str,
              shown: dict[str, Path] | None = None) -> tuple[Path, str, PathStat]:
    """Resolve and lstat; `not_found` is the NotFound message (dockerd's names the container).
    `shown`: container path -> the host file a running container sees there (tar_out)."""
    host, resolved = resolve(root, path)
    try:
        st = os.lstat(host)
        if resolved in (shown or {}) and stat.S_ISREG(st.st_mode):
            st = os.stat(shown[resolved])
    except FileNotFoundError:
        raise NotFound(not_found) from None
    except NotADirectoryError:
        raise ShoalError(f"lstat {path}: not a directory") from None
    except OSError as exc:
        raise ShoalError(f"lstat {path}: {os.strerror(exc.errno or 0).lower()}") from None
    if container_path(path).endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise ShoalError(f"lstat {path}: not a directory")  # as dockerd: `file/` is no file
    link = ""
    if stat.S_ISLNK(st.st_mode):
        target = os.path.relpath(in_root(root, resolved), root)
        link = "/" if target == "." else "/" + target
    name = "/" if resolved == "/" else os.path.basename(container_path(path).rstrip("/"))
    return host, resolved, PathStat(name=name, size=st.st_size, mode=go_mode(st.st_mode),
                                    mtime=go_time(st.st_mtime_ns), link_target=link)


async def _child(*args: str, stdin: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-I", str(CHILD), *args, stdin=stdin, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def tar_out(root: Path, resolved: str, name: str,
                  shown: dict[str, Path] | None = None) -> AsyncIterator[bytes]:
    """The tar of `resolved` (a resolved container path), entries named from `name` (the last
    element the client asked for, as dockerd renames them); `shown` as for stat_path."""
    binds = [f"{source}={in_root(root, where)}" for where, source in (shown or {}).items()]
    proc = await _child("tar", str(root), resolved, name, *binds)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while chunk := await proc.stdout.read(CHUNK):
            yield chunk
        err = await proc.stderr.read()
        if await proc.wait() != 0:
            # the headers went out already: the client sees a short tar, the log says why
            raise ShoalError(f"tar of {resolved}: {err.decode(errors='replace').strip()}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def tar_in(root: Path, dest: str, body: AsyncIterator[bytes], *, no_overwrite_dir: bool = False,
                 owner: tuple[int, int] | None = None) -> None:
    """Extract the tar `body` into the directory `dest` (a resolved container path)."""
    flags = [f for f, on in (("no-overwrite-dir", no_overwrite_dir),) if on]
    if owner is not None:
        flags.append(f"chown={owner[0]}:{owner[1]}")
    proc = await _child("untar", str(root), dest, ",".join(flags) or "-", stdin=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        async for chunk in body:
            proc.stdin.write(chunk)
            try:
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                break  # the child failed: its message says why
        proc.stdin.close()
        err = (await proc.stderr.read()).decode(errors="replace").strip()
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if code != 0:
        raise ShoalError(f"Error processing tar file(exit status {code}): {err}")


def extraction_dir(root: Path, path: str, not_found: str) -> str:
    """The resolved directory a PUT extracts into (its last element followed, too)."""
    cpath = container_path(path)
    host = in_root(root, cpath)
    try:
        st = os.stat(host)
    except FileNotFoundError:
        raise NotFound(not_found) from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise ShoalError("extraction point is not a directory") from None
        raise ShoalError(f"stat {path}: {os.strerror(exc.errno or 0).lower()}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ShoalError("extraction point is not a directory")
    rel = os.path.relpath(host, root)
    return "/" if rel == "." else "/" + rel
