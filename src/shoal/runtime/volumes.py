"""A container's mounts: the `-v`, `--mount` and `--tmpfs` forms parsed as dockerd 20.10 does,
and what they become in the OCI spec.

Parsing is pure (no file system, no store): the controller resolves volume names into paths
(`controller.volumes`). The messages are dockerd's (moby v20.10 `volume/mounts`, measured
against dockerd 20.10.24), because clients and scripts match on them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from shoal.errors import InvalidParameter

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
RW_MODES = {"ro", "rw"}
LABEL_MODES = {"z", "Z"}
PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
COPY_MODES = {"nocopy"}


@dataclass(frozen=True)
class MountPoint:
    """One mount as inspect's `Mounts` shows it, plus what the runtime needs to make it.

    `source` is a host path for a bind (a volume's is filled in by the controller); `create`
    marks a `-v` bind whose source is made as a directory at start if missing (dockerd's
    legacy rule: `--mount` refuses instead); `copy` asks for the image's content to be copied
    into an empty new volume; `anonymous` volumes go with `docker rm -v`.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""  # a bind's, as asked; "": the default (controller.volumes decides)
    copy: bool = True
    create: bool = False
    anonymous: bool = False
    subpath: str = ""
    tmpfs_options: tuple[str, ...] = ()
    hidden: bool = False  # `--tmpfs` (HostConfig.Tmpfs): mounted, but dockerd lists it in no `Mounts`
    driver_opts: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tmpfs_options"] = list(self.tmpfs_options)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MountPoint:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["tmpfs_options"] = tuple(values.get("tmpfs_options") or ())
        return cls(**values)

    def inspect(self) -> dict[str, Any]:
        """inspect's `Mounts` entry, field for field as dockerd 20.10 writes it."""
        out: dict[str, Any] = {"Type": self.type}
        if self.type == "volume":
            out["Name"] = self.name
        out["Source"] = self.source
        out["Destination"] = self.destination
        if self.type == "volume":
            out["Driver"] = self.driver or "local"
        out.update({"Mode": self.mode, "RW": self.rw,
                    "Propagation": self.propagation or ("rprivate" if self.type == "bind" else "")})
        return out


def check_volume_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter(f"create {name}: volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not VOLUME_NAME_RE.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


def _check_destination(dest: str, kind: str, spec: str | None = None) -> str:
    def fail(why: str) -> InvalidParameter:
        inner = f'invalid mount config for type "{kind}": {why}'
        return InvalidParameter(f"invalid volume specification: '{spec}': {inner}" if spec is not None else inner)
    if not dest:
        raise fail("field Target must not be empty")
    if not dest.startswith("/"):
        raise fail(f"invalid mount path: '{dest}' mount path must be absolute")
    clean = os.path.normpath(dest)
    if clean == "/":
        raise fail("invalid specification: destination can't be '/'")
    return clean


def _split_bind(spec: str) -> list[str]:
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3 or any(not p for p in parts):
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    return parts


def _parse_mode(mode: str) -> tuple[bool, str, bool, str]:
    """rw, the label option shown in Mode, copy, propagation: each at most once."""
    rw, propagation, copy, seen = True, "", True, set()
    for opt in mode.split(","):
        group = ("rw" if opt in RW_MODES else "label" if opt in LABEL_MODES else
                 "prop" if opt in PROPAGATIONS else "copy" if opt in COPY_MODES else None)
        if group is None or group in seen:
            raise InvalidParameter(f"invalid mode: {mode}")
        seen.add(group)
        if opt == "ro":
            rw = False
        elif group == "prop":
            propagation = opt
        elif opt == "nocopy":
            copy = False
    return rw, propagation, copy, "label" in seen


def parse_bind(spec: str) -> MountPoint:
    """One HostConfig.Binds entry: `src:dst[:mode]`; an absolute source is a bind (made as a
    directory at start if missing), any other a named volume."""
    parts = _split_bind(spec)
    if len(parts) == 1:  # the CLI sends a bare path in Config.Volumes, but the API takes it here
        return MountPoint(type="volume", destination=_check_destination(parts[0], "volume", spec), anonymous=True)
    src, dest, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    if src.startswith("/"):
        dest = _check_destination(dest, "bind", spec)
        rw, propagation, _, _ = _parse_mode(mode) if mode else (True, "", True, False)
        return MountPoint(type="bind", destination=dest, source=os.path.normpath(src), mode=mode, rw=rw,
                          propagation=propagation, create=True)
    check_volume_name(src)
    dest = _check_destination(dest, "volume", spec)
    rw, propagation, copy, _ = _parse_mode(mode) if mode else (True, "", True, False)
    if propagation:
        raise InvalidParameter(f"invalid mode: {mode}")
    return MountPoint(type="volume", destination=dest, name=src, driver="local", mode=mode or "z", rw=rw, copy=copy)


def _mount_fail(kind: str, why: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {why}')


def parse_mount(m: dict[str, Any]) -> MountPoint:
    """One HostConfig.Mounts entry (`--mount`), with dockerd's per-type rules."""
    kind = m.get("Type") or ""
    src, ro = m.get("Source") or "", bool(m.get("ReadOnly"))
    bind, vol, tmpfs = m.get("BindOptions"), m.get("VolumeOptions"), m.get("TmpfsOptions")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_fail(kind, "mount type unknown")
    for other, opts in (("bind", bind), ("volume", vol), ("tmpfs", tmpfs)):
        if opts and other != kind:
            raise _mount_fail(kind, f"{other.capitalize()}Options must not be specified")
    dest = _check_destination(m.get("Target") or "", kind)
    if kind == "bind":
        if not src:
            raise _mount_fail(kind, "field Source must not be empty")
        if not src.startswith("/"):
            raise _mount_fail(kind, f"invalid mount path: '{src}' mount path must be absolute")
        propagation = (bind or {}).get("Propagation") or ""
        if propagation and propagation not in PROPAGATIONS:
            raise _mount_fail(kind, f"invalid propagation mode: {propagation}")
        return MountPoint(type="bind", destination=dest, source=os.path.normpath(src), rw=not ro,
                          propagation=propagation)
    if kind == "tmpfs":
        if src:
            raise _mount_fail(kind, "field Source must not be specified")
        return MountPoint(type="tmpfs", destination=dest, rw=not ro, tmpfs_options=tmpfs_mount_options(tmpfs or {}))
    vol = vol or {}
    driver = (vol.get("DriverConfig") or {}).get("Name") or ""
    subpath = vol.get("Subpath") or ""
    if subpath and (subpath.startswith("/") or ".." in PurePosixPath(subpath).parts):
        raise _mount_fail(kind, "subpath must be a relative path within the volume")
    if src:
        check_volume_name(src)
    return MountPoint(type="volume", destination=dest, name=src, driver=driver or "local", mode="z", rw=not ro,
                      copy=not vol.get("NoCopy"), anonymous=not src, subpath=subpath,
                      driver_opts=dict((vol.get("DriverConfig") or {}).get("Options") or {}))


def tmpfs_mount_options(opts: dict[str, Any]) -> tuple[str, ...]:
    out = []
    if opts.get("SizeBytes"):
        out.append(f"size={int(opts['SizeBytes'] // 1024)}k")
    if opts.get("Mode"):
        out.append(f"mode={int(opts['Mode']) & 0o7777:o}")
    return tuple(out)


TMPFS_FLAGS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync",
               "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime",
               "nostrictatime", "remount", "mand", "nomand", "bind", "rbind"}
TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}


def parse_tmpfs(dest: str, options: str) -> MountPoint:
    """One HostConfig.Tmpfs entry (`--tmpfs /x:size=1m,mode=1777`)."""
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    opts = tuple(o for o in (options or "").split(",") if o)
    for opt in opts:
        key = opt.split("=", 1)[0]
        if key not in TMPFS_FLAGS and key not in TMPFS_DATA:
            raise InvalidParameter(f"Unknown mount option {opt}")  # moby pkg/mount's parse error
    return MountPoint(type="tmpfs", destination=os.path.normpath(dest), rw="ro" not in opts,
                      tmpfs_options=opts, hidden=True)


def oci_mount(mp: MountPoint) -> dict[str, Any]:
    """What runc makes of one mount point (a volume's source is its `_data` directory)."""
    if mp.type == "tmpfs":
        opts = [o for o in mp.tmpfs_options if o not in ("ro", "rw")]
        base = ["nosuid", "nodev", "noexec"] if not any(o in ("exec", "suid", "dev") for o in opts) else []
        return {"destination": mp.destination, "type": "tmpfs", "source": "tmpfs",
                "options": [*base, *opts, "ro" if not mp.rw else "rw"]}
    source = os.path.join(mp.source, mp.subpath) if mp.subpath else mp.source
    options = ["rbind", mp.propagation or "rprivate"]
    if not mp.rw:
        options.append("ro")
    return {"destination": mp.destination, "type": "bind", "source": source, "options": options}


def ordered(mounts: list[MountPoint]) -> list[MountPoint]:
    """Parents before children (/a before /a/b), as dockerd sorts them for runc."""
    return sorted(mounts, key=lambda m: len(PurePosixPath(m.destination).parts))


def copy_up(image_dir: Path, volume_dir: Path) -> None:
    """Copy what the image has at a mount's destination into an empty new volume, owners and
    modes kept (dockerd's copy-up); a volume that has anything in it is left alone."""
    if not image_dir.is_dir() or image_dir.is_symlink() or any(volume_dir.iterdir()):
        return
    for entry in image_dir.iterdir():
        target = volume_dir / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_copy_owned)
            _own_tree(entry, target)
        else:
            _copy_owned(str(entry), str(target))
    st = image_dir.stat()
    os.chown(volume_dir, st.st_uid, st.st_gid)
    os.chmod(volume_dir, st.st_mode & 0o7777)


def _copy_owned(src: str, dst: str) -> None:
    shutil.copy2(src, dst, follow_symlinks=False)
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)


def _own_tree(src: Path, dst: Path) -> None:
    for root, dirs, _ in os.walk(src):
        for d in [root, *(os.path.join(root, x) for x in dirs)]:
            st = os.lstat(d)
            os.lchown(os.path.join(dst, os.path.relpath(d, src)), st.st_uid, st.st_gid)


def mount_device(fstype: str, options: str, device: str, target: Path) -> None:
    """The local driver's `type`/`o`/`device` on a volume's `_data` (an argument list, never
    a shell line); `o=bind` binds a host directory, as `mount -o bind` does."""
    args = ["mount", "-t", fstype, *(["-o", options] if options else []), device, str(target)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InvalidParameter(f"error while mounting volume '{target.parent}': failed to mount local volume: "
                               f"{done.stderr.strip()}")


def mounts_json(container: Any) -> list[dict[str, Any]]:
    """inspect's and the list's `Mounts` for a container record (model.Container)."""
    points = [MountPoint.from_dict(m) for m in getattr(container, "mounts", ())]
    return [mp.inspect() for mp in points if not mp.hidden]
