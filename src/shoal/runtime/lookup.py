"""Find a command inside an image's root filesystem, resolving symlinks within it.

Checked at container create so that `docker run IMAGE nope` fails before anything is
made (Docker only finds out when runc starts the process, leaving a dead container).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _resolve(rootfs: Path, path: str, depth: int = 0) -> Path | None:
    """Follow symlinks as the container would see them (absolute links stay in rootfs)."""
    if depth > 16:
        return None
    parts = [p for p in path.split("/") if p and p != "."]
    current = rootfs
    for i, part in enumerate(parts):
        if part == "..":
            current = current.parent if current != rootfs else rootfs
            continue
        candidate = current / part
        try:
            st = os.lstat(candidate)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(candidate)
            inside = "/" + "/".join(parts[:i]) if not target.startswith("/") else ""
            rest = "/".join(parts[i + 1:])
            joined = f"{inside}/{target}" if inside else target
            return _resolve(rootfs, f"{joined}/{rest}" if rest else joined, depth + 1)
        current = candidate
    return current


def is_executable(rootfs: Path, path: str) -> bool:
    target = _resolve(rootfs, path)
    return target is not None and target.is_file() and os.access(target, os.X_OK)


def find_executable(rootfs: Path, name: str, env: tuple[str, ...] = ()) -> str | None:
    """The path the container would exec for `name`, or None."""
    if "/" in name:
        return name if is_executable(rootfs, name) else None
    search = next((e.split("=", 1)[1] for e in reversed(env) if e.startswith("PATH=")), DEFAULT_PATH)
    for directory in search.split(":"):
        if directory and is_executable(rootfs, f"{directory}/{name}"):
            return f"{directory}/{name}"
    return None
