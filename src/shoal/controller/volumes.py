"""Volumes (the `local` driver) and the mounts a container is created with.

A volume is a record in the store (kind `volume`, the same sqlite file as containers: one
source of truth, written in a transaction, kept across restarts and read back on every
lookup, so nothing needs restoring) and a directory `DATA_ROOT/volumes/<name>/_data`, as
dockerd lays it out. The local driver's options (`type`, `o`, `device`) mount that device on
`_data` when a container first needs it, and the mount stays until the volume is removed
(dockerd unmounts when the last container stops; shoal keeps it, which only matters for a
tmpfs volume's memory). Nothing outside the volumes directory is ever created or removed,
except a missing `-v` bind source made as a directory at start, as dockerd does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from shoal.controller.ids import new_id
from shoal.controller.undo import Undo
from shoal.errors import Conflict, InvalidParameter, NotFound, Unavailable
from shoal.model import Container
from shoal.runtime.overlay import is_mounted, unmount
from shoal.runtime.volumes import (
    MountPoint,
    check_volume_name,
    copy_up,
    mount_device,
    oci_mount,
    ordered,
    parse_bind,
    parse_mount,
    parse_tmpfs,
)
from shoal.store.base import Store

log = logging.getLogger("shoal.volumes")
KIND_VOLUME = "volume"
LOCAL_OPTS = ("type", "o", "device")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Volumes:
    def __init__(self, store: Store, root: Path, records: dict[str, Container]) -> None:
        self.store = store
        self.root = root
        self.records = records  # the containers', read for "in use" and --volumes-from
        self.lock = asyncio.Lock()
        # container id -> volume names, from a create's attach until its record is in
        # `records` (or its undo ran): a volume rm meanwhile sees them in use
        self._pending: dict[str, tuple[str, ...]] = {}

    # -- records -----------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """The volume's own directory, by exact name: never a path outside the root."""
        if not name or "/" in name or name in (".", ".."):
            raise InvalidParameter(f"invalid volume name: {name!r}")
        return self.root / name

    def data_dir(self, name: str) -> Path:
        return self.path(name) / "_data"

    def get(self, name: str) -> dict:
        rec = self.store.get(KIND_VOLUME, name) if name and "/" not in name else None
        if rec is None:
            raise NotFound(f"get {name}: no such volume")
        return rec

    def list(self) -> list[dict]:
        return self.store.list(KIND_VOLUME)

    def users(self, name: str) -> list[str]:
        for cid in [cid for cid in self._pending if cid in self.records]:
            del self._pending[cid]
        found = [c.id for c in self.records.values()
                 if any(m.get("type") == "volume" and m.get("name") == name for m in c.mounts)]
        return found + [cid for cid, names in self._pending.items() if name in names]

    def json(self, rec: dict) -> dict:
        return {"CreatedAt": rec["created"], "Driver": rec.get("driver", "local"), "Labels": rec.get("labels") or None,
                "Mountpoint": str(self.data_dir(rec["name"])), "Name": rec["name"],
                "Options": rec.get("options") or None, "Scope": "local"}

    # -- create / remove ---------------------------------------------------------------
    async def create(self, name: str = "", driver: str = "", options: dict | None = None,
                     labels: dict | None = None, *, anonymous: bool = False) -> dict:
        async with self.lock:
            return await self._create(name, driver, options, labels, anonymous=anonymous)

    async def _create(self, name: str, driver: str, options: dict | None, labels: dict | None, *,
                      anonymous: bool = False) -> dict:
        name = name or new_id()
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        check_volume_name(name)
        existing = self.store.get(KIND_VOLUME, name)
        if existing is not None:  # dockerd answers the existing one, whatever the options
            return existing
        options = dict(options or {})
        self._check_options(name, options)
        rec = {"name": name, "driver": driver, "created": _now(), "labels": dict(labels or {}),
               "options": options, "anonymous": anonymous}
        self.path(name).mkdir(mode=0o701, parents=True, exist_ok=True)
        self.data_dir(name).mkdir(mode=0o755, exist_ok=True)
        try:
            async with self.store.transaction() as tx:
                tx.put(KIND_VOLUME, name, rec)
        except BaseException:
            shutil.rmtree(self.path(name), ignore_errors=True)
            raise
        return rec

    @staticmethod
    def _check_options(name: str, options: dict) -> None:
        for key in options:
            if key == "size":  # dockerd 20.10 without a quota-capable data root (measured)
                raise InvalidParameter(f"create {name}: quota size requested but no quota support")
            if key not in LOCAL_OPTS:
                raise InvalidParameter(f'create {name}: invalid option: "{key}"')
        if options.get("type") and not options.get("device"):
            raise InvalidParameter(f'create {name}: missing required option: "device"')
        if options.get("device") and not options.get("type"):
            raise InvalidParameter(f'create {name}: missing required option: "type"')

    async def remove(self, name: str, force: bool = False) -> None:
        async with self.lock:
            await self._remove(name, force)

    async def _remove(self, name: str, force: bool = False) -> None:
        try:
            self.get(name)
        except NotFound:
            if force:
                return
            raise
        users = self.users(name)
        if users:  # dockerd refuses with force too
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        unmount(self.data_dir(name))
        if _mounts_below(self.path(name)):  # a device still mounted: never delete through it
            raise Unavailable(f"remove {name}: {self.data_dir(name)} is still mounted")
        async with self.store.transaction() as tx:
            tx.delete(KIND_VOLUME, name)
        shutil.rmtree(self.path(name), ignore_errors=True)

    async def prune(self, keep, *, anonymous_only: bool) -> tuple[list[str], int]:  # noqa: ANN001 - Callable
        """Every unused volume `keep` does not keep; API >= 1.42 (dockerd 23) only anonymous
        ones unless `all`; dockerd 20.10 (API 1.41) removes named ones too (measured)."""
        gone, space = [], 0
        async with self.lock:
            for rec in self.list():
                if self.users(rec["name"]) or (anonymous_only and not rec.get("anonymous")):
                    continue
                if keep(rec["created"], rec.get("labels") or {}):
                    continue
                size = _du(self.data_dir(rec["name"]))
                try:
                    await self._remove(rec["name"])
                except (Conflict, NotFound):
                    continue
                gone.append(rec["name"])
                space += size
        return gone, space

    # -- a container's mounts ----------------------------------------------------------
    async def attach(self, rec: Container, image_volumes: tuple[str, ...], undo: Undo) -> Container:
        """Parse every mount the container asks for (Binds, Mounts, Tmpfs, VolumesFrom, then
        Config.Volumes and the image's as anonymous volumes), make the volumes that do not
        exist yet (undone if the create fails), and record the mount points."""
        hc = rec.host_config
        driver = hc.get("VolumeDriver") or "local"  # --volume-driver: for -v and anonymous volumes
        points = [dataclasses.replace(mp, driver=driver) if mp.type == "volume" else mp
                  for mp in map(parse_bind, hc.get("Binds") or ())]
        points += [parse_mount(m) for m in hc.get("Mounts") or ()]
        points += [parse_tmpfs(d, o) for d, o in (hc.get("Tmpfs") or {}).items()]
        seen: set[str] = set()
        for mp in points:
            if mp.destination in seen:
                raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
            seen.add(mp.destination)
        for mp in points:
            if mp.type == "bind" and not mp.create and not os.path.exists(mp.source):
                raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: '
                                       f"{mp.source}")
        points += [mp for mp in self._volumes_from(hc.get("VolumesFrom") or ()) if mp.destination not in seen]
        seen |= {mp.destination for mp in points}
        wanted = dict.fromkeys([*image_volumes, *((rec.config.get("Volumes") or {}).keys())])
        for dest in wanted:
            clean = os.path.normpath(dest)
            if clean not in seen and dest.startswith("/"):
                points.append(MountPoint(type="volume", destination=clean, driver=driver, anonymous=True))
                seen.add(clean)
        async with self.lock:
            resolved = [await self._resolve(mp, undo) for mp in points]
            self._pending[rec.id] = tuple(mp.name for mp in resolved if mp.type == "volume")
            undo.push("volumes pending", lambda: self._pending.pop(rec.id, None))
        return dataclasses.replace(rec, mounts=tuple(mp.to_dict() for mp in ordered(resolved)))

    async def _resolve(self, mp: MountPoint, undo: Undo) -> MountPoint:
        if mp.type == "bind" and not mp.propagation:
            return dataclasses.replace(mp, propagation=self._default_propagation(mp.source))
        if mp.type != "volume" or mp.source:
            return mp
        name = mp.name
        if not name or self.store.get(KIND_VOLUME, name) is None:
            rec = await self._create(name, mp.driver, mp.driver_opts, None, anonymous=not name)
            name = rec["name"]
            undo.push(f"volume {name}", lambda n=name: self.remove(n, force=True))
        self.mount(name)
        data = self.data_dir(name)
        subpath = mp.subpath
        if subpath:  # what dockerd >= 26 does (20.10 has no subpath and ignores the field)
            if not (data / subpath).exists():
                raise InvalidParameter(f"cannot access path {data / subpath}: no such file or directory")
            real = os.path.realpath(data / subpath)  # a symlink a container left must not lead out
            if os.path.commonpath([real, os.path.realpath(data)]) != os.path.realpath(data):
                raise InvalidParameter(f"subpath {subpath!r} leads out of volume {name}")
            subpath = os.path.relpath(real, os.path.realpath(data))
        return dataclasses.replace(mp, name=name, source=str(data), subpath=subpath)

    def _default_propagation(self, source: str) -> str:
        """dockerd: a bind of the data root or a directory above it is rslave (so the
        daemon's later mounts, other containers' roots, reach into it), any other rprivate."""
        data_root = os.path.realpath(self.root.parent)
        try:
            real = os.path.realpath(source)
        except OSError:
            real = source
        return "rslave" if os.path.commonpath([real, data_root]) == real else "rprivate"

    def _volumes_from(self, refs) -> list[MountPoint]:  # noqa: ANN001 - list[str]
        out = []
        for ref in refs:
            target, _, mode = ref.partition(":")
            if mode and mode not in ("ro", "rw"):
                raise InvalidParameter(f"invalid mode: {mode}")
            other = self._find(target)
            for mp in map(MountPoint.from_dict, other.mounts):
                if mp.hidden:  # a --tmpfs is no mount point of dockerd's: it is not shared
                    continue
                out.append(dataclasses.replace(mp, rw=(mode != "ro") and mp.rw if mode != "rw" else True,
                                               anonymous=False, copy=False))
        return out

    def _find(self, ref: str) -> Container:
        if ref in self.records:
            return self.records[ref]
        for c in self.records.values():
            if c.name == ref.lstrip("/"):
                return c
        matches = [c for c in self.records.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"No such container: {ref}")

    def mount(self, name: str) -> None:
        """A volume with a device (the local driver's options) has it mounted on `_data`."""
        rec = self.store.get(KIND_VOLUME, name) or {}
        opts = rec.get("options") or {}
        data = self.data_dir(name)
        if opts.get("device") and not is_mounted(data):
            mount_device(opts["type"], opts.get("o", ""), opts["device"], data)

    @staticmethod
    def oci_mounts(rec: Container) -> tuple[dict, ...]:
        return tuple(oci_mount(MountPoint.from_dict(m)) for m in rec.mounts)

    async def copy_up(self, rec: Container, rootfs: Callable[[], Awaitable[Path]]) -> None:
        """Empty volumes get what the image has at their destination (unless `nocopy`);
        `rootfs` mounts the container's root, asked for only when a volume wants it."""
        wanted = [mp for mp in map(MountPoint.from_dict, rec.mounts) if mp.type == "volume" and mp.copy
                  and not mp.subpath]
        root = await rootfs() if wanted else None
        for mp in wanted:
            await asyncio.to_thread(copy_up, root / mp.destination.lstrip("/"), Path(mp.source))

    def prepare_start(self, rec: Container) -> None:
        """At start, as dockerd: a missing `-v` bind source becomes a directory; device
        volumes are mounted again (a reboot unmounted them)."""
        for data in rec.mounts:
            mp = MountPoint.from_dict(data)
            if mp.type == "bind" and mp.create and not os.path.lexists(mp.source):
                os.makedirs(mp.source, mode=0o755, exist_ok=True)
            elif mp.type == "volume" and self.store.get(KIND_VOLUME, mp.name) is not None:
                self.mount(mp.name)

    async def detach(self, rec: Container, *, remove_anonymous: bool) -> None:
        """After a container's removal: `rm -v` (and `--rm`) take its anonymous volumes."""
        self._pending.pop(rec.id, None)
        if not remove_anonymous:
            return
        for data in rec.mounts:
            mp = MountPoint.from_dict(data)
            if mp.type == "volume" and mp.anonymous:
                try:
                    await self.remove(mp.name)
                except (Conflict, NotFound) as exc:
                    log.info("volume %s kept: %s", mp.name[:12], exc)


def _du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total


def _mounts_below(path: Path) -> list[str]:
    """Mount points at or under `path` in shoald's mount namespace (mountinfo's 5th field,
    octal escapes as the kernel writes them)."""
    prefix = str(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            points = [line.split()[4].replace("\\040", " ") for line in f if len(line.split()) > 4]
    except OSError:
        return []
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]
