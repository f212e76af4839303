"""The tar side of `docker cp`, run as its own process chrooted into the container's root.

Run by file path (`python -I cparchive_child.py tar|untar ROOT ...`), never imported by the
daemon: it needs only the standard library, which it imports before the chroot. Inside
the chroot `/` is the container's root, so no symlink the container made (`ln -s /etc/shadow
x`, `../../..`) can lead to a host file: the kernel resolves every path inside it, as
dockerd's chrootarchive does. Nothing here looks a user or group name up (the container's
NSS modules must never be loaded into a root process: CVE-2019-14271): owners are numeric.

    tar ROOT PATH NAME [HOSTFILE=TARGET ...]
                            write PATH (container path, already resolved) as a tar on stdout,
                            its entries renamed to start with NAME; each HOSTFILE is first
                            bind-mounted on TARGET (a file under ROOT) in a mount namespace of
                            the child's own: a running container's /etc/hosts, /etc/hostname
                            and /etc/resolv.conf are shoal's files, mounted in its namespace only
    untar ROOT DIR FLAGS    extract the tar on stdin into DIR; FLAGS: "no-overwrite-dir",
                            "chown=UID:GID" (comma separated, or "-")

Errors go to stderr as one line, exit status 1.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tarfile

CHUNK = 1 << 16
tarfile.RECORDSIZE = tarfile.BLOCKSIZE  # as Go's writer: no padding to 10 KiB records after the end blocks


def _tarinfo(path: str, arcname: str, links: dict) -> tarfile.TarInfo:
    st = os.lstat(path)
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime
    info.uname = info.gname = ""
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFREG and st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
        info.type, info.linkname = tarfile.LNKTYPE, links[(st.st_dev, st.st_ino)]
    elif kind == stat.S_IFREG:
        info.type, info.size = tarfile.REGTYPE, st.st_size
        if st.st_nlink > 1:
            links[(st.st_dev, st.st_ino)] = arcname
    elif kind == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
    elif kind == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif kind == stat.S_IFIFO:
        info.type = tarfile.FIFOTYPE
    else:
        return None  # sockets: tar has no type for them (Go's archive/tar skips them too)
    return info


def write_tar(path: str, name: str, out) -> None:
    links: dict = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        stack = [(path, name)]
        while stack:
            src, arc = stack.pop()
            info = _tarinfo(src, arc, links)
            if info is None:
                continue
            if info.type == tarfile.REGTYPE:
                with open(src, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if info.type == tarfile.DIRTYPE:
                for entry in sorted(os.listdir(src), reverse=True):
                    stack.append((os.path.join(src, entry), f"{arc.rstrip('/')}/{entry}"))


def _inside(dest: str, name: str) -> str:
    """The member's path under `dest`; one that would land outside it is refused."""
    target = os.path.normpath(os.path.join(dest, name))
    if target != dest and not target.startswith(dest.rstrip("/") + "/"):
        raise ValueError(f'"{name}" is outside of "{dest}"')
    return target


def _clear_for(target: str, member: tarfile.TarInfo, dest: str, no_overwrite: bool) -> bool:
    """Make room for `member` at `target`; False when an existing directory is kept."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return True
    is_dir = stat.S_ISDIR(st.st_mode)
    if no_overwrite and is_dir and not member.isdir():
        raise ValueError(f'cannot overwrite directory "{target}" with non-directory "{dest}"')
    if no_overwrite and not is_dir and member.isdir():
        raise ValueError(f'cannot overwrite non-directory "{target}" with directory "{dest}"')
    if is_dir and member.isdir():
        return False
    if is_dir:
        import shutil
        shutil.rmtree(target)
    else:
        os.unlink(target)
    return True


def _create(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str, dest: str) -> None:
    if member.isdir():
        os.mkdir(target, 0o700)
    elif member.isreg():
        src = tar.extractfile(member)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            while chunk := src.read(CHUNK):
                f.write(chunk)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        os.link(_inside(dest, member.linkname), target, follow_symlinks=False)
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))


def _finish(member: tarfile.TarInfo, target: str, owner: tuple[int, int] | None) -> None:
    uid, gid = owner if owner is not None else (member.uid, member.gid)
    os.lchown(target, uid, gid)
    if not member.issym():
        os.chmod(target, member.mode & 0o7777)
    if not member.isdir():
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def extract(dest: str, inp, no_overwrite: bool, owner: tuple[int, int] | None) -> None:
    try:
        tar = tarfile.open(fileobj=inp, mode="r|")  # noqa: SIM115 - closed by the `with` below
    except tarfile.ReadError as exc:
        if "empty" in str(exc):
            return  # an empty body is an empty archive, as for Go's reader
        raise ValueError("archive/tar: invalid tar header") from None
    dirs = []
    with tar:
        for member in tar:
            target = _inside(dest, member.name)
            if target == dest and member.isdir():
                continue
            parent = os.path.dirname(target)
            if not os.path.lexists(parent):
                os.makedirs(parent, 0o755)
            if _clear_for(target, member, dest, no_overwrite):
                _create(tar, member, target, dest)
            _finish(member, target, owner)
            if member.isdir():
                dirs.append((target, member.mtime))
    for target, mtime in dirs:  # last: their entries changed them meanwhile
        os.utime(target, (mtime, mtime))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        verb = "open" if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES) else "write"
        return f"{verb} {exc.filename}: {os.strerror(exc.errno or 0).lower()}"
    if isinstance(exc, tarfile.TarError):
        return "archive/tar: invalid tar header"
    return str(exc)


CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x00020000, 0x1000, 0x4000, 0x40000


def _bind_files(pairs: list[str]) -> None:
    """The HOSTFILE=TARGET mounts, private to this process (its mount namespace dies with it)."""
    if not pairs:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "cannot make a private mount namespace")
    for pair in pairs:
        source, _, target = pair.partition("=")
        if not os.path.isfile(target) or os.path.islink(target):
            continue  # an image without it: left out
        if libc.mount(os.fsencode(source), os.fsencode(target), None, MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), f"cannot show {target}")


def main(argv: list[str]) -> int:
    import shutil  # noqa: F401 - before the chroot: nothing may be imported from inside it

    verb, root = argv[0], argv[1]
    try:
        if verb == "tar":
            _bind_files(argv[4:])
        os.chroot(root)
        os.chdir("/")
        if verb == "tar":
            write_tar(argv[2], argv[3], sys.stdout.buffer)
        else:
            flags = set() if argv[3] == "-" else set(argv[3].split(","))
            owner = next(((int(u), int(g)) for f in flags if f.startswith("chown=")
                          for u, g in [f[6:].split(":")]), None)
            extract(argv[2], sys.stdin.buffer, "no-overwrite-dir" in flags, owner)
    except (OSError, ValueError, tarfile.TarError) as exc:
        sys.stderr.write(_describe(exc) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
