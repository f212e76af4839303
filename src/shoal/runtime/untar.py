"""Unpack one layer tar into a directory in overlay form, under shoal's own member policy.

tarfile's filters do not fit a root filesystem: `tar_filter` clears setuid bits and
`data_filter` refuses absolute symlinks and device nodes, all of which images carry. The
policy here instead confines *paths*: every entry lands under the layer directory, a parent
that is a symlink is refused (so nothing is written through a link, wherever it points),
`..` may not climb out, absolute names are re-rooted, and hardlinks may only name entries
already in this layer. Modes (setuid/setgid/sticky included), owners, mtimes, devices, fifos
and PAX `SCHILY.xattr.*` are kept. An entry replaces a non-directory of the same name rather
than merging into it; directories merge (the image spec's changeset rules).

Whiteouts become overlayfs's own: `.wh.NAME` a 0/0 character device NAME, `.wh..wh..opq`
the xattr trusted.overlay.opaque=y on its directory; other `.wh..wh.*` (AUFS metadata) are
skipped.

The stream is decompressed (gzip/zstd/plain by magic bytes) and hashed as it is read, and
drained to EOF after the last member: the end-of-archive padding is part of the DiffID.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import zstandard

from shoal.errors import InvalidParameter, ShoalError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_PROGRESS_STEP = 512 << 10

Progress = Callable[[int, int], None]


def compression_of(head: bytes) -> str:
    """"gzip", "zstd" or "" (plain tar) from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return ""


class _Counting:
    """The compressed side: counts bytes for progress reports."""

    def __init__(self, raw: BinaryIO, total: int, progress: Progress | None) -> None:
        self.raw, self.total, self.progress = raw, total, progress
        self.done = self._reported = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.done += len(data)
        if self.progress is not None and (self.done - self._reported >= _PROGRESS_STEP or not data):
            self._reported = self.done
            self.progress(self.done, self.total)
        return data


class Hashing:
    """The uncompressed side: every byte tarfile (or the final drain) reads is hashed."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n if n is not None and n >= 0 else _CHUNK)
        self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def open_uncompressed(raw: BinaryIO, *, total: int = 0, progress: Progress | None = None) -> Hashing:
    """A reader of the uncompressed tar stream in the blob `raw` (positioned at its start)."""
    head = raw.read(6)
    raw.seek(0)
    counted = _Counting(raw, total, progress)
    kind = compression_of(head)
    if kind == "gzip":
        inner: BinaryIO = gzip.GzipFile(fileobj=counted, mode="rb")  # type: ignore[arg-type]
    elif kind == "zstd":
        inner = zstandard.ZstdDecompressor().stream_reader(counted, read_across_frames=True)  # type: ignore[assignment]
    elif kind == "bzip2":  # `docker import` takes these too; registries never send them
        inner = bz2.BZ2File(counted, mode="rb")  # type: ignore[arg-type]
    elif kind == "xz":
        inner = lzma.LZMAFile(counted, mode="rb")  # type: ignore[arg-type]  # noqa: SIM115
    else:
        inner = counted  # type: ignore[assignment]
    return Hashing(inner)


def clean_name(name: str) -> str:
    """The member's path relative to the layer root: absolute names re-rooted, `..` resolved
    lexically (parents are never symlinks here) and refused if it would climb out."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidParameter(f"invalid layer: {name!r} points outside the layer")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class Extractor:
    """Applies the members of one tar stream to `root` (an empty directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.privileged = os.geteuid() == 0
        self._dirs: list[tuple[str, tarfile.TarInfo]] = []

    def run(self, stream: Hashing) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="r|", errorlevel=2, bufsize=_CHUNK) as tar:  # type: ignore[call-overload]
                for member in tar:
                    self._member(tar, member)
            stream.drain()
        except (tarfile.TarError, EOFError, zstandard.ZstdError, gzip.BadGzipFile, lzma.LZMAError, OSError) as err:
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
                raise ShoalError(f"failed to register layer: {err}") from err
            raise InvalidParameter(f"invalid layer tar: {err}") from err
        for rel, member in reversed(self._dirs):  # after their children changed them
            if self._still_dir(rel):
                self._times(self._path(rel), member)

    def _still_dir(self, rel: str) -> bool:
        """A directory met earlier may since have been replaced by a symlink (`a/etc`, then
        `a -> /`): its time is set only if every component is still a real directory, or
        the times would land outside the layer."""
        current = str(self.root)
        for part in [p for p in rel.split("/") if p]:
            current = os.path.join(current, part)
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return False
            except OSError:
                return False
        return True

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else str(self.root)

    def _parent(self, rel: str) -> None:
        """Make the parents of `rel` directories (0755, as Docker), refusing symlinks."""
        current = str(self.root)
        for part in [p for p in posixpath.dirname(rel).split("/") if p]:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(f"invalid layer: {rel!r} goes through a non-directory (a symlink?)")

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = clean_name(member.name)
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT):
            self._whiteout(rel, base, member)
            return
        if not rel:  # the root itself: only its metadata
            if member.isdir():
                self._meta(str(self.root), member)
                self._dirs.append(("", member))
            return
        self._parent(rel)
        path = self._path(rel)
        self._replace(path, member.isdir())
        if member.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self._dirs.append((rel, member))
        elif member.isreg():
            self._file(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self._hardlink(member, path)
            return  # the inode has its target's metadata already
        elif member.ischr() or member.isblk() or member.isfifo():
            if not self._node(member, path):
                return
        else:
            return  # unknown types (GNU volume headers, sparse leftovers): nothing to make
        self._meta(path, member)
        if not member.isdir():
            self._times(path, member)

    def _replace(self, path: str, is_dir: bool) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if is_dir and stat.S_ISDIR(st.st_mode):
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def _file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        src = tar.extractfile(member)
        assert src is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)

    def _hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_rel = clean_name(member.linkname)
        target = self._path(target_rel)
        self._parent(target_rel)  # refuses a target reached through a symlink
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise InvalidParameter(f"invalid layer: hardlink {member.name!r} to {member.linkname!r},"
                                   " which is not in this layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(f"invalid layer: hardlink {member.name!r} to a directory")
        os.link(target, path, follow_symlinks=False)

    def _node(self, member: tarfile.TarInfo, path: str) -> bool:
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        try:
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor) if kind != stat.S_IFIFO else 0)
        except PermissionError:
            if self.privileged:
                raise
            return False  # as tar does without privileges: no device files
        return True

    def _whiteout(self, rel: str, base: str, member: tarfile.TarInfo) -> None:
        parent_rel = posixpath.dirname(rel)
        self._parent(rel)
        parent = self._path(parent_rel)
        if base == OPAQUE:
            os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # AUFS metadata (.wh..wh.plnk and the like)
        name = base[len(WHITEOUT):]
        if name in ("", ".", ".."):  # `.wh..` would whiteout the directory holding it
            raise InvalidParameter(f"invalid layer: whiteout {member.name!r} names no entry")
        path = os.path.join(parent, name)
        self._replace(path, False)
        os.mknod(path, stat.S_IFCHR | 0o600, 0)
        self._owner(path, member)

    def _owner(self, path: str, member: tarfile.TarInfo) -> None:
        if self.privileged:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)

    def _meta(self, path: str, member: tarfile.TarInfo) -> None:
        self._owner(path, member)  # before chmod: chown clears setuid/setgid
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self._xattr(path, key[len("SCHILY.xattr."):], value)

    def _xattr(self, path: str, name: str, value: str) -> None:
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError as err:
            # a filesystem without that namespace, or no privileges: tar warns and goes on too
            quiet = (errno.ENOTSUP, errno.EOPNOTSUPP) if self.privileged else (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)
            if err.errno not in quiet:
                raise

    @staticmethod
    def _times(path: str, member: tarfile.TarInfo) -> None:
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def extract_layer(blob: Path, dest: Path, *, progress: Progress | None = None) -> tuple[str, int]:
    """Unpack the layer blob into `dest` (made here); returns (DiffID, uncompressed size)."""
    dest.mkdir()
    with open(blob, "rb") as raw:
        stream = open_uncompressed(raw, total=os.fstat(raw.fileno()).st_size, progress=progress)
        Extractor(dest).run(stream)
    return stream.digest, stream.size


def tar_digest(src: BinaryIO) -> tuple[str, int]:
    """DiffID and size of the uncompressed stream in `src` (a compressed or plain blob)."""
    stream = open_uncompressed(src)
    try:
        stream.drain()
    except (zstandard.ZstdError, gzip.BadGzipFile, lzma.LZMAError, EOFError, OSError) as err:
        raise InvalidParameter(f"invalid layer blob: {err}") from err
    return stream.digest, stream.size
