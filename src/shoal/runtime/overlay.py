"""Per-container overlay rootfs: the image rootfs as lowerdir, writes land in upper/.

Direct mount(2)/umount2(2) through ctypes: no shell, no option string parsed by a helper,
and about 100x faster than spawning mount(8).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from shoal.errors import ShoalError

MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check_path(path: Path) -> bytes:
    # ',' and ':' separate overlay options and layers; our paths never contain them.
    text = str(path)
    if "," in text or ":" in text or not os.path.isabs(text):
        raise ShoalError(f"unusable overlay path: {text!r}")
    return os.fsencode(text)


def mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    """Mount the overlay at `merged`, creating upper/work/merged as needed; no-op if mounted."""
    for path in (upper, work, merged):
        path.mkdir(parents=True, exist_ok=True)
    if is_mounted(merged):
        return
    opts = b"lowerdir=%s,upperdir=%s,workdir=%s" % (_check_path(lower), _check_path(upper), _check_path(work))
    if _libc.mount(b"overlay", _check_path(merged), b"overlay", 0, opts) != 0:
        err = ctypes.get_errno()
        raise ShoalError(f"mount overlay at {merged}: {os.strerror(err)}")


def unmount(merged: Path) -> None:
    """Unmount if mounted; a busy mount is detached lazily so removal never blocks."""
    if not is_mounted(merged):
        return
    target = os.fsencode(str(merged))
    if _libc.umount2(target, 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and _libc.umount2(target, MNT_DETACH) == 0:
        return
    if err in (errno.EINVAL, errno.ENOENT):  # raced with another unmount
        return
    raise ShoalError(f"unmount {merged}: {os.strerror(err)}")


def is_mounted(path: Path) -> bool:
    """True if `path` is a mount point in this mount namespace (per /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as info:
        for line in info:
            mount_point = line.split(b" ", 5)[4]
            if _unescape(mount_point) == target:
                return True
    return False


def _unescape(field: bytes) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    text = os.fsdecode(field)
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and len(text[i + 1 : i + 4]) == 3 and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
