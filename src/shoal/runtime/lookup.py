"""Find a command inside an image's root filesystem, resolving symlinks within it.

Checked at container create so that `docker run IMAGE nope` fails before anything is
made (Docker only finds out when runc starts the process, leaving a dead container).
The image is its layers' directories (top first) seen as overlayfs would merge them: the
topmost entry of a name wins, a whiteout (0/0 character device) hides lower ones, a
non-directory hides everything below it, and an opaque directory hides lower directories.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OPAQUE = "trusted.overlay.opaque"


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _entry(dirs: list[Path], name: str) -> tuple[Path | None, list[Path]]:
    """The merged entry `name` in the directory made of `dirs`: (top path, dirs if a directory)."""
    found: list[Path] = []
    for directory in dirs:
        candidate = directory / name
        try:
            st = os.lstat(candidate)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout
            break
        if not stat.S_ISDIR(st.st_mode):
            if not found:
                return candidate, []
            break
        found.append(candidate)
        if _opaque(candidate):
            break
    return (found[0], found) if found else (None, [])


def _resolve(layers: list[Path], path: str, depth: int = 0) -> Path | None:
    """Follow symlinks as the container would see them (absolute links stay in the rootfs)."""
    if depth > 16:
        return None
    parts = [p for p in path.split("/") if p and p != "."]
    stack: list[list[Path]] = [layers]  # the merged directories walked so far
    current: Path | None = None
    for i, part in enumerate(parts):
        if part == "..":
            if len(stack) > 1:
                stack.pop()
            continue
        current, dirs = _entry(stack[-1], part)
        if current is None:
            return None
        if current.is_symlink():
            target = os.readlink(current)
            inside = "/" + "/".join(parts[:i]) if not target.startswith("/") else ""
            rest = "/".join(parts[i + 1:])
            joined = f"{inside}/{target}" if inside else target
            return _resolve(layers, f"{joined}/{rest}" if rest else joined, depth + 1)
        if not dirs and i < len(parts) - 1:
            return None
        stack.append(dirs)
    return current if current is not None else layers[0]


def _layers(rootfs: Path | Sequence[Path]) -> list[Path]:
    return [rootfs] if isinstance(rootfs, Path) else list(rootfs)


def is_executable(rootfs: Path | Sequence[Path], path: str) -> bool:
    target = _resolve(_layers(rootfs), path)
    return target is not None and target.is_file() and os.access(target, os.X_OK)


def find_executable(rootfs: Path | Sequence[Path], name: str, env: tuple[str, ...] = ()) -> str | None:
    """The path the container would exec for `name`, or None. `rootfs` is a directory or
    an image's layer directories, top first."""
    if "/" in name:
        return name if is_executable(rootfs, name) else None
    search = next((e.split("=", 1)[1] for e in reversed(env) if e.startswith("PATH=")), DEFAULT_PATH)
    for directory in search.split(":"):
        if directory and is_executable(rootfs, f"{directory}/{name}"):
            return f"{directory}/{name}"
    return None
