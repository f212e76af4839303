"""Images as Docker's `import` makes them: one rootfs tarball, unpacked once, never modified.

Layout under `root/images/<hex id>/`: `rootfs/` (the overlay lowerdir shared by containers) and
`image.json` (id, repo_tags, created, size, architecture, os, config). The id is
"sha256:" + sha256 of the tar bytes and the config, so importing the same tar twice (with the
same --change) yields one image.
Names are kept in Docker's familiar form (`busybox:latest`, not `docker.io/library/...`).

The store is synchronous (file I/O and `tar`); call it through `asyncio.to_thread` from the daemon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shoal.errors import Conflict, InvalidParameter, NotFound, ShoalError

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_HEX_RE = re.compile(r"^[0-9a-f]{1,64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageConfig:
    """The part of an image's config a container inherits (Docker's Cmd, Env, WorkingDir)."""

    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = (DEFAULT_PATH_ENV,)
    working_dir: str = ""

    def to_json(self) -> dict:
        return {"Cmd": list(self.cmd) if self.cmd is not None else None,
                "Env": list(self.env), "WorkingDir": self.working_dir}

    @classmethod
    def from_json(cls, data: Mapping | None) -> ImageConfig:
        data = data or {}
        cmd = data.get("Cmd")
        env = data.get("Env")
        return cls(cmd=tuple(cmd) if cmd is not None else None,
                   env=tuple(env) if env is not None else (DEFAULT_PATH_ENV,),
                   working_dir=data.get("WorkingDir") or "")


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<64 hex>"
    repo_tags: tuple[str, ...]
    created: int  # unix seconds
    size: int  # bytes of the unpacked rootfs
    architecture: str
    os: str
    config: ImageConfig
    path: Path  # the image directory; the rootfs is path / "rootfs"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    def to_json(self) -> dict:
        return {"id": self.id, "repo_tags": list(self.repo_tags), "created": self.created,
                "size": self.size, "architecture": self.architecture, "os": self.os,
                "config": self.config.to_json()}


def normalize_name(ref: str) -> str:
    """`docker.io/library/busybox` -> `busybox:latest`; validates the reference format."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        name, tag = ref, "latest"
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if "@" in ref or not _NAME_RE.match(name) or not _TAG_RE.match(tag):
        raise InvalidParameter(f"invalid reference format: {ref!r}")
    return f"{name}:{tag}"


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        total += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in filenames)
    return total


class ImageImport:
    """One import in progress: `write` the tarball's bytes, then `commit`; `abort` always
    (after a commit it has nothing left to remove)."""

    def __init__(self, store: ImageStore, tmpdir: Path, name: str | None, config: ImageConfig | None) -> None:
        self._store, self._tmpdir = store, tmpdir
        self._name, self._config = name, config
        self._digest = hashlib.sha256()
        self._out: BinaryIO | None = open(tmpdir / "layer.tar", "wb")  # noqa: SIM115 - closed in commit/abort
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._out is not None, "write after commit or abort"
        self._digest.update(data)
        self._out.write(data)
        self.size += len(data)

    def commit(self) -> Image:
        """Unpack what was written as an image (the same bytes give the same image)."""
        assert self._out is not None, "commit after commit or abort"
        self._out.close()
        self._out = None
        layer_id = "sha256:" + self._digest.hexdigest()
        try:
            return self._store._finish_import(self._tmpdir, layer_id, self._name, self._config)
        finally:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        shutil.rmtree(self._tmpdir, ignore_errors=True)


class ImageStore:
    """Imported images under `root/images`, with Docker's name and id-prefix lookup."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._images: dict[str, Image] = {}
        for entry in self.root.iterdir():
            if entry.name.startswith("."):  # an import or removal cut short by a crash
                shutil.rmtree(entry, ignore_errors=True)
            elif (entry / "image.json").is_file():
                image = self._load(entry / "image.json")
                self._images[image.id] = image

    def _load(self, meta: Path) -> Image:
        data = json.loads(meta.read_text())
        return Image(id=data["id"], repo_tags=tuple(data.get("repo_tags", ())),
                     created=int(data["created"]), size=int(data["size"]),
                     architecture=data.get("architecture", _arch()), os=data.get("os", "linux"),
                     config=ImageConfig.from_json(data.get("config")), path=meta.parent)

    def _save(self, image: Image) -> Image:
        tmp = image.path / "image.json.tmp"
        tmp.write_text(json.dumps(image.to_json(), indent=1))
        tmp.replace(image.path / "image.json")
        self._images[image.id] = image
        return image

    # --- lookup -------------------------------------------------------------------------

    def list(self) -> list[Image]:
        with self._lock:
            return sorted(self._images.values(), key=lambda i: (-i.created, i.id))

    def get(self, ref: str) -> Image:
        """Resolve `repo:tag`, `repo` (= :latest), a full id, `sha256:<prefix>` or an id prefix."""
        with self._lock:
            return self._resolve(ref)

    def _resolve(self, ref: str) -> Image:
        if ref.startswith("sha256:"):
            return self._by_prefix(ref.removeprefix("sha256:"), ref)
        try:
            name = normalize_name(ref)
        except InvalidParameter:
            name = None
        if name is not None:
            for image in self._images.values():
                if name in image.repo_tags:
                    return image
        if _HEX_RE.match(ref):
            return self._by_prefix(ref, ref)
        raise NotFound(f"No such image: {name or ref}")

    def _by_prefix(self, prefix: str, ref: str) -> Image:
        if not _HEX_RE.match(prefix):
            raise NotFound(f"No such image: {ref}")
        found = [i for i in self._images.values() if i.id.startswith("sha256:" + prefix)]
        if len(found) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {prefix}")
        if not found:
            raise NotFound(f"No such image: {ref}")
        return found[0]

    # --- import -------------------------------------------------------------------------

    def import_tar(self, source: Path | str | bytes | BinaryIO, repo: str | None = None,
                   tag: str = "latest", config: ImageConfig | None = None) -> Image:
        """Unpack a rootfs tarball (plain or compressed) as a new image; tag it `repo:tag`."""
        imp = self.begin_import(repo, tag, config)
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                src: BinaryIO = io.BytesIO(source)
            elif isinstance(source, (str, Path)):
                src = open(source, "rb")  # noqa: SIM115 - closed below
            else:
                src = source
            try:
                while chunk := src.read(_CHUNK):
                    imp.write(chunk)
            finally:
                if src is not source:
                    src.close()
            return imp.commit()
        finally:
            imp.abort()

    def begin_import(self, repo: str | None = None, tag: str = "latest",
                     config: ImageConfig | None = None) -> ImageImport:
        """An import fed piece by piece (a request body as it arrives): the tarball goes to
        disk as it comes, so its size never shows in the daemon's memory. A bad name is
        refused here, before any byte is taken."""
        name = normalize_name(f"{repo}:{tag or 'latest'}") if repo else None
        return ImageImport(self, Path(tempfile.mkdtemp(prefix=".import-", dir=self.root)), name, config)

    def _finish_import(self, tmpdir: Path, layer_id: str, name: str | None, config: ImageConfig | None) -> Image:
        # the id covers the config too: the same tarball imported with another --change
        # is another image, as in Docker
        cfg_json = json.dumps((config or ImageConfig()).to_json(), sort_keys=True)
        image_id = "sha256:" + hashlib.sha256(f"{layer_id}\n{cfg_json}".encode()).hexdigest()
        hexid = image_id.removeprefix("sha256:")
        with self._lock:
            existing = self._images.get(image_id)
        if existing is None:
            self._unpack(tmpdir / "layer.tar", tmpdir / "rootfs")
            (tmpdir / "layer.tar").unlink()
            image = Image(id=image_id, repo_tags=(), created=int(time.time()),
                          size=_tree_size(tmpdir / "rootfs"), architecture=_arch(), os="linux",
                          config=config or ImageConfig(), path=self.root / hexid)
            with self._lock:
                if image_id not in self._images:
                    tmpdir.rename(image.path)
                    self._save(image)
        if name:
            return self.tag(image_id, name)
        return self.get(image_id)

    @staticmethod
    def _unpack(tar: Path, dest: Path) -> None:
        """GNU tar keeps owners, modes, devices and hardlinks, and refuses `..` escapes."""
        dest.mkdir()
        owner = ["--same-owner"] if os.geteuid() == 0 else ["--no-same-owner"]
        proc = subprocess.run(["tar", "-x", "-f", str(tar), "-C", str(dest), "--numeric-owner",
                               "--same-permissions", *owner],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise InvalidParameter(f"invalid image tarball: {proc.stderr.strip()[:400]}")

    # --- names and removal --------------------------------------------------------------

    def tag(self, ref: str, name: str, tag: str | None = None) -> Image:
        """Point `name[:tag]` at the image `ref`, moving it off any image that had it."""
        full = normalize_name(f"{name}:{tag}" if tag else name)
        with self._lock:
            image = self._resolve(ref)
            for other in list(self._images.values()):
                if full in other.repo_tags and other.id != image.id:
                    self._save(dataclasses.replace(
                        other, repo_tags=tuple(t for t in other.repo_tags if t != full)))
            if full not in image.repo_tags:
                image = self._save(dataclasses.replace(image, repo_tags=image.repo_tags + (full,)))
            return image

    def untag(self, name: str) -> Image:
        """Remove one name; the image itself stays (possibly dangling)."""
        full = normalize_name(name)
        with self._lock:
            for image in self._images.values():
                if full in image.repo_tags:
                    return self._save(dataclasses.replace(
                        image, repo_tags=tuple(t for t in image.repo_tags if t != full)))
        raise NotFound(f"No such image: {full}")

    def remove(self, ref: str, *, force: bool = False,
               in_use: bool | Callable[[Image], bool] = False) -> list[dict[str, str]]:
        """`docker rmi`: untag by name while other names remain, else delete the image.

        Returns Docker's report, e.g. `[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}]`.
        An image used by a container is never deleted (`in_use` is a flag or a callback).
        """
        with self._lock:
            image = self._resolve(ref)
            try:
                full = normalize_name(ref)
            except InvalidParameter:
                full = ""
            by_name = full in image.repo_tags
            if by_name and len(image.repo_tags) > 1:
                self._save(dataclasses.replace(
                    image, repo_tags=tuple(t for t in image.repo_tags if t != full)))
                return [{"Untagged": full}]
            if not by_name and len(image.repo_tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                               "image is referenced in multiple repositories")
            used = in_use(image) if callable(in_use) else in_use
            if used:
                raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                               "image is being used by a container")
            report = [{"Untagged": t} for t in image.repo_tags] + [{"Deleted": image.id}]
            del self._images[image.id]
        self._delete_dir(image.path)
        return report

    def _delete_dir(self, path: Path) -> None:
        # Rename first so a crash half-way never leaves a directory that looks like an image.
        doomed = path.with_name(f".deleting-{path.name}")
        try:
            path.rename(doomed)
        except OSError as err:
            raise ShoalError(f"cannot remove image directory {path}: {err}") from err
        shutil.rmtree(doomed, ignore_errors=True)
