"""`--user name|uid[:group|gid]` against the container's own /etc/passwd and /etc/group.

Docker (through runc's user lookup) resolves names inside the container's root, not the
host's: an id that has no entry is fine, a name that has none is an error. The user's
supplementary groups come from /etc/group membership (runc sets HOME itself).
The files are read through `in_root`, which resolves symlinks as if `root` were `/`, so an
image whose /etc/passwd links to an absolute path cannot make the daemon read the host's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import InvalidParameter

MAX_ID = (1 << 31) - 1
_MAX_LINKS = 40


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()

    def oci(self) -> dict:
        return {"uid": self.uid, "gid": self.gid, "additionalGids": list(self.additional_gids)}


def in_root(root: Path, path: str) -> Path:
    """`path` inside `root` with every symlink resolved relative to `root` (never above it)."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if candidate.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                raise InvalidParameter(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


def _entries(root: Path, path: str) -> list[list[str]]:
    """Colon-separated lines of a passwd/group file; a missing file has no entries."""
    try:
        text = in_root(root, path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidParameter(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def check_user_syntax(user: str) -> None:
    """What can be checked without a root: ids in range, no empty parts."""
    name, sep, group = user.partition(":")
    if user and (not name or (sep and not group)):
        raise InvalidParameter(f"unable to find user {user}: invalid user format")
    _id(name)
    _id(group)


def resolve_user(root: Path, user: str) -> ExecUser:
    """Docker's rules for `user` (empty: root) inside the filesystem at `root`."""
    check_user_syntax(user)
    name, _, group = user.partition(":")
    name = name or "0"
    passwd = [e for e in _entries(root, "/etc/passwd") if len(e) >= 7 and e[2].isdigit()]
    entry = next((e for e in passwd if e[0] == name), None)
    uid = _id(name)
    if entry is None and uid is not None:
        entry = next((e for e in passwd if e[2] == name), None)
    if entry is None and uid is None:
        raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
    uid = int(entry[2]) if entry is not None else uid
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0  # a broken gid field: root's
    groups = [e for e in _entries(root, "/etc/group") if len(e) >= 4 and e[2].isdigit()]
    if group:
        match = next((e for e in groups if e[0] == group), None)
        gid = int(match[2]) if match is not None else _id(group)  # type: ignore[assignment]
        if gid is None:
            raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
    extra = [gid]  # Docker lists the primary group first, so `id` shows it under groups=
    if entry is not None:
        for e in groups:
            if entry[0] in e[3].split(",") and int(e[2]) not in extra:
                extra.append(int(e[2]))
    return ExecUser(uid, gid, tuple(extra))
