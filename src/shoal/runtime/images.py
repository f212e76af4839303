"""Images in Docker's model: a config (whose digest is the id) over shared, content-addressed layers.

Layout under `root/images/` (blobs, layers and the l/ links: see layers.py):
- `imagedb/<id hex>.json`: one record per image: repo_tags, repo_digests, the raw manifest of
  each repo digest (by blob digest and media type: push re-sends the very bytes, `images
  --digests` shows them), the layers' blobs and media types in order, the config digest.
  The raw config is the blob `config_digest`; the image id is "sha256:" + its digest.
- Images made by the older store (`<id hex>/{image.json,rootfs/}`) are migrated at open
  (migrate.py): their rootfs becomes a base layer and they keep their old id, which running
  and stopped containers name.

A pull builds an image in this order: `ingest_path` (download to `<it>.partial`),
`commit_blob`, `layer_by_diff` ("Already exists") or `apply_layer` per layer bottom first,
then `add_image` with the raw config and manifest; on failure `release` gives back what it
committed and no image names. Push reads `layers_of`, `blob_path`, `config_bytes` and
`manifest_for`; nothing here counts references, removal computes them from the records.

Names are kept in Docker's familiar form (`busybox:latest`, `busybox@sha256:...`).
The store is synchronous (file I/O); call it through `asyncio.to_thread` from the daemon.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from shoal.errors import Conflict, InvalidParameter, NotFound
from shoal.runtime.archive import load as load_archive
from shoal.runtime.archive import save as save_archive
from shoal.runtime.imageconfig import (
    DEFAULT_PATH_ENV,
    MT_LAYER_TAR,
    ImageConfig,
    chain_ids,
    parse_config,
    synthesise_config,
)
from shoal.runtime.imagerecord import (
    Image,
    familiar,
    normalize_digest_ref,
    normalize_name,
)
from shoal.runtime.layers import Layer, LayerStore, with_blob
from shoal.runtime.migrate import migrate_old_images
from shoal.runtime.untar import Progress, open_uncompressed

__all__ = ["DEFAULT_PATH_ENV", "Image", "ImageConfig", "ImageImport", "ImageStore", "normalize_name"]

log = logging.getLogger("shoal.images")
_HEX_RE = re.compile(r"^[0-9a-f]{1,64}$")
_CHUNK = 1 << 20
InUse = bool | Callable[["Image"], bool]


class ImageImport:
    """One `docker import` in progress: `write` the tarball's bytes, then `commit`; `abort`
    always (after a commit it has nothing left to remove)."""

    def __init__(self, store: ImageStore, name: str | None, config: ImageConfig | None) -> None:
        self._store, self._name, self._config = store, name, config
        self._path = store.content.ingest / f"import-{secrets.token_hex(8)}.partial"
        self._out: BinaryIO | None = open(self._path, "wb")  # noqa: SIM115 - closed in commit/abort
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._out is not None, "write after commit or abort"
        self._out.write(data)
        self.size += len(data)

    def commit(self) -> Image:
        assert self._out is not None, "commit after commit or abort"
        self._out.close()
        self._out = None
        try:
            return self._store._finish_import(self._path, self._name, self._config)
        finally:
            self._path.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._path.unlink(missing_ok=True)


class ImageStore:
    """Images under `root/images`, with Docker's name, digest and id-prefix lookup."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.content = LayerStore(self.root)
        self.records = self.root / "imagedb"
        self.records.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()  # chains and blobs in-flight pulls and loads count on
        self._images: dict[str, Image] = {}
        unreadable = False
        for entry in self.records.iterdir():
            if entry.name.startswith("."):
                entry.unlink(missing_ok=True)
            elif entry.suffix == ".json":
                try:
                    image = self._load(json.loads(entry.read_text()))
                except (ValueError, KeyError, NotFound, InvalidParameter) as err:
                    log.warning("image record %s is unreadable, skipped: %s", entry.name, err)
                    unreadable = True
                    continue
                self._images[image.id] = image
        migrate_old_images(self)
        if not unreadable:  # an unreadable record may own layers: then nothing is swept
            self._sweep()

    def _sweep(self) -> None:
        """What a crash between a pull's steps left that no image owns: layers are deleted,
        blobs go back to ingest, where the next pull of their image resumes from them."""
        chains = [f"sha256:{p.name}" for p in self.content.layers.iterdir() if not p.name.startswith(".")]
        blobs = [f"sha256:{p.name}" for p in self.content.blobs.iterdir() if not p.name.startswith(".")]
        used = self._used_blobs() | {c for image in self._images.values() for c in chain_ids(image.diff_ids)}
        orphans = [n for n in chains + blobs if n not in used]
        if orphans:
            log.info("image store: %d layers and blobs no image owns, left by an interrupted pull or load: "
                     "set aside", len(orphans))
            self.set_aside(blobs=blobs, chains=chains)

    def _load(self, data: Mapping[str, Any]) -> Image:
        parsed = parse_config(self.content.read_blob(data["config_digest"]))
        return Image(id=data["id"], repo_tags=tuple(data.get("repo_tags", ())), created=int(data["created"]),
                     size=int(data["size"]), architecture=parsed.architecture, os=parsed.os,
                     config=parsed.config, config_digest=data["config_digest"], diff_ids=parsed.diff_ids,
                     layers=tuple((b, m) for b, m in data.get("layers", ())),
                     repo_digests=tuple(data.get("repo_digests", ())),
                     manifests={k: (v[0], v[1]) for k, v in (data.get("manifests") or {}).items()},
                     comment=str(parsed.raw.get("comment") or ""))

    def _save(self, image: Image) -> Image:
        path = self.records / f"{image.id.removeprefix('sha256:')}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(image.record(), indent=1))
        tmp.replace(path)
        self._images[image.id] = image
        return image

    # --- lookup -------------------------------------------------------------------------

    def list(self) -> list[Image]:
        with self._lock:
            return sorted(self._images.values(), key=lambda i: (-i.created, i.id))

    def get(self, ref: str) -> Image:
        """Resolve `repo:tag`, `repo` (= :latest), `repo@sha256:...`, a full id,
        `sha256:<prefix>` or an id prefix."""
        with self._lock:
            return self._resolve(ref)

    def _resolve(self, ref: str) -> Image:
        if ref.startswith("sha256:"):
            return self._by_prefix(ref.removeprefix("sha256:"), ref)
        if "@" in ref:
            wanted = normalize_digest_ref(ref)
            for image in self._images.values():
                if wanted in image.repo_digests:
                    return image
            raise NotFound(f"No such image: {wanted}")
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

    # --- content (what pull, push, save and load build on) ------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.content.blob_path(digest)

    def ingest_path(self, digest: str) -> Path:
        return self.content.ingest_path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.content.has_blob(digest)

    def commit_blob(self, src: Path, digest: str) -> Path:
        return self.content.commit_blob(src, digest)

    def put_blob(self, data: bytes) -> str:
        return self.content.put_blob(data)

    def layer_by_diff(self, diff_id: str, parent_chain: str | None) -> Layer | None:
        return self.content.layer_by_diff(diff_id, parent_chain)

    def apply_layer(self, blob_path: Path, expected_diff_id: str, parent_chain_id: str | None,
                    progress: Progress | None = None, *, media_type: str = "") -> str:
        return self.content.apply_layer(blob_path, expected_diff_id, parent_chain_id, progress,
                                        media_type=media_type)

    def layers_of(self, image: Image) -> list[Layer]:
        """The image's layers bottom first, each with the blob this image knows it by."""
        if not image.diff_ids:
            return []
        out = []
        for layer, (blob, media_type) in zip(self.content.chain(chain_ids(image.diff_ids)[-1]), image.layers):
            size = self.blob_path(blob).stat().st_size if self.has_blob(blob) else 0
            out.append(with_blob(layer, blob, media_type, size))
        return out

    def lower_dirs(self, image: Image) -> list[Path]:
        """The overlay lowerdirs of a container of `image`, top first."""
        return self.content.lower_dirs(image.top_layer)

    def config_bytes(self, image: Image) -> bytes:
        return self.content.read_blob(image.config_digest)

    def manifest_for(self, image: Image, repo: str) -> tuple[bytes, str] | None:
        """The raw manifest `image` was pulled (or pushed) as in `repo`, and its media type."""
        name = familiar(repo)
        for repo_digest, (digest, media_type) in image.manifests.items():
            if repo_digest.partition("@")[0] == name and self.has_blob(digest):
                return self.content.read_blob(digest), media_type
        return None

    def add_image(self, config: bytes, *, layers: Sequence[tuple[str, str]], manifest: bytes | None = None,
                  manifest_media_type: str | None = None, repo_digest: str | None = None,
                  tag: str | None = None) -> Image:
        """Record an image whose layers are applied and blobs committed; the tag moves here
        from any other image, which stays (dangling if that was its last name)."""
        parsed = parse_config(config)
        if len(parsed.diff_ids) != len(layers):
            raise InvalidParameter(f"layers from manifest don't match image configuration: {len(layers)} "
                                   f"layers for {len(parsed.diff_ids)} diff_ids")
        chains = chain_ids(parsed.diff_ids)
        image_id = self.content.put_blob(config)
        full_tag = normalize_name(tag) if tag else None
        manifests: dict[str, tuple[str, str]] = {}
        if repo_digest:
            repo_digest = normalize_digest_ref(repo_digest)
            if manifest is not None:
                manifests[repo_digest] = (self.content.put_blob(manifest), manifest_media_type or "")
        size = sum(layer.size for layer in self.content.chain(chains[-1])) if chains else 0
        with self._lock:  # checked under the lock: a removal's clean-up cannot take them meanwhile
            for chain, (blob, _mt) in zip(chains, layers):
                if self.content.layer(chain) is None:
                    raise InvalidParameter(f"layers from manifest don't match image configuration: layer {chain}"
                                           " is not applied")
                if not self.has_blob(blob):
                    raise InvalidParameter(f"blob {blob} is not in the store")
            image = self._images.get(image_id) or Image(
                id=image_id, repo_tags=(), created=parsed.created, size=size, architecture=parsed.architecture,
                os=parsed.os, config=parsed.config, config_digest=image_id, diff_ids=parsed.diff_ids,
                layers=tuple((b, m) for b, m in layers), comment=str(parsed.raw.get("comment") or ""))
            if repo_digest:
                image = dataclasses.replace(
                    image, repo_digests=tuple(d for d in image.repo_digests if d != repo_digest) + (repo_digest,),
                    manifests={**image.manifests, **manifests})
            image = self._save(image)
            if full_tag:
                image = self._tag_locked(image, full_tag)
            return image

    # --- import -------------------------------------------------------------------------

    def import_tar(self, source: Path | str | bytes | BinaryIO, repo: str | None = None,
                   tag: str = "latest", config: ImageConfig | None = None) -> Image:
        """`docker import`: a rootfs tarball (plain or compressed) as a one-layer image."""
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
        disk as it comes. A bad name is refused here, before any byte is taken."""
        name = normalize_name(f"{repo}:{tag or 'latest'}") if repo else None
        return ImageImport(self, name, config)

    def _finish_import(self, raw: Path, name: str | None, config: ImageConfig | None) -> Image:
        """The layer blob is the *uncompressed* tar (digest = DiffID), as dockerd keeps it."""
        tmp = self.content.ingest / f"import-{secrets.token_hex(8)}.tar.partial"
        try:
            with open(raw, "rb") as src, open(tmp, "wb") as out:
                stream = open_uncompressed(src)
                while chunk := stream.read(_CHUNK):
                    out.write(chunk)
            diff_id = stream.digest
        except (OSError, EOFError, ValueError) as err:
            tmp.unlink(missing_ok=True)
            raise InvalidParameter(f"invalid image tarball: {err}") from None
        known = self.has_blob(diff_id)
        blob = self.content.commit_blob(tmp, diff_id)
        fresh = self.layer_by_diff(diff_id, None) is None
        try:
            self.apply_layer(blob, diff_id, None, media_type=MT_LAYER_TAR)
        except InvalidParameter as err:
            if not known:
                self.content.delete_blob(diff_id)
            raise InvalidParameter(f"invalid image tarball: {err}") from None
        try:
            return self.add_image(synthesise_config([diff_id], config), layers=[(diff_id, MT_LAYER_TAR)],
                                  tag=name)
        except BaseException:
            if fresh:
                self.release(blobs=[] if known else [diff_id], chains=[diff_id])
            raise

    # --- names and removal --------------------------------------------------------------

    def tag(self, ref: str, name: str, tag: str | None = None) -> Image:
        """Point `name[:tag]` at the image `ref`, moving it off any image that had it."""
        full = normalize_name(f"{name}:{tag}" if tag else name)
        with self._lock:
            return self._tag_locked(self._resolve(ref), full)

    def _tag_locked(self, image: Image, full: str) -> Image:
        for other in list(self._images.values()):
            if full in other.repo_tags and other.id != image.id:
                self._save(dataclasses.replace(other, repo_tags=tuple(t for t in other.repo_tags if t != full)))
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

    def remove(self, ref: str, *, force: bool = False, in_use: InUse = False) -> list[dict[str, str]]:
        """`docker rmi`: untag by name (or repo digest) while other names remain, else delete
        the image and every layer and blob no other image uses.

        Returns Docker's report: `[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}, ...]`.
        An image used by a container is never deleted (`in_use` is a flag or a callback).
        """
        with self._lock:
            image = self._resolve(ref)
            name = self._name_in(ref, image)
            gone = _untagged_with(image, name) if name else []
            if gone and any(r not in gone for r in image.repo_tags + image.repo_digests):
                manifests = [digest for r, (digest, _type) in image.manifests.items() if r in gone]
                for each in gone:
                    image = self._save(_without(image, each))
                self._release_locked(manifests, [])  # their manifests go unless another image has them
                return [{"Untagged": each} for each in gone]
            if not name and len(image.repo_tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                               "image is referenced in multiple repositories")
            used = in_use(image) if callable(in_use) else in_use
            if used:
                raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                               "image is being used by a container")
            report, _freed = self._delete_locked(image)
            return report

    @staticmethod
    def _name_in(ref: str, image: Image) -> str:
        try:
            name = normalize_digest_ref(ref) if "@" in ref else normalize_name(ref)
        except InvalidParameter:
            return ""
        return name if name in image.repo_tags or name in image.repo_digests else ""

    def _delete_locked(self, image: Image) -> tuple[list[dict[str, str]], int]:
        report = [{"Untagged": t} for t in image.repo_tags + image.repo_digests] + [{"Deleted": image.id}]
        (self.records / f"{image.id.removeprefix('sha256:')}.json").unlink(missing_ok=True)
        del self._images[image.id]
        chains = chain_ids(image.diff_ids)
        blobs = [image.config_digest, *(b for b, _ in image.layers), *(d for d, _ in image.manifests.values())]
        deleted, freed = self._release_locked(blobs, chains)
        report += [{"Deleted": c} for c in reversed(chains) if c in deleted]
        return report, freed

    def release(self, *, blobs: Sequence[str] = (), chains: Sequence[str] = ()) -> int:
        """Delete those of `blobs` and layers `chains` that no image uses (a pull that failed
        half-way gives back what it committed); returns the bytes freed."""
        with self._lock:
            return self._release_locked(blobs, chains)[1]

    def set_aside(self, *, blobs: Sequence[str] = (), chains: Sequence[str] = ()) -> None:
        """A pull that failed: its layers no image uses are deleted, and its downloaded
        blobs no image uses go back to the ingest area as complete partial downloads, so
        nothing is left that no image owns, and the next pull of the same image finds them
        there and "resumes" without a byte fetched."""
        with self._lock:
            used = self._used_blobs()
            keep = [b for b in set(blobs) if b not in used and self.content.has_blob(b)]
            for digest in keep:
                dest = self.content.ingest_path(digest)
                os.replace(self.content.blob_path(digest), dest.with_name(dest.name + ".partial"))
            self._release_locked((), chains)

    def pin(self, names: Iterable[str]) -> None:
        """Chains and blobs a pull (or load) counts on before its image is recorded: no rmi,
        prune or other pull's failure frees them meanwhile (containerd calls this a lease)."""
        with self._lock:
            self._pins.update(names)

    def unpin(self, names: Iterable[str]) -> None:
        with self._lock:
            self._pins.subtract(names)
            for name in [n for n, count in self._pins.items() if count <= 0]:
                del self._pins[name]

    def _used_blobs(self) -> set[str]:
        used: set[str] = set(self._pins)
        for other in self._images.values():
            used.update([other.config_digest, *(b for b, _ in other.layers), *(d for d, _ in other.manifests.values())])
        return used

    def _release_locked(self, blobs: Sequence[str], chains: Sequence[str]) -> tuple[set[str], int]:
        used_chains: set[str] = set(self._pins)
        used_blobs = self._used_blobs()
        for other in self._images.values():
            used_chains.update(chain_ids(other.diff_ids))
        doomed = {c for c in chains if c not in used_chains and self.content.layer(c) is not None}
        freed = self.content.delete_layers(sorted(doomed))
        freed += sum(self.content.delete_blob(b) for b in set(blobs) - used_blobs)
        return doomed, freed

    def prune(self, dangling_only: bool = True, *, until: float | None = None,
              labels: Callable[[Mapping[str, str]], bool] | None = None, in_use: InUse = False) -> dict:
        """`docker image prune [-a]`: images without tags (or, with -a, every image no
        container uses) created before `until` and whose labels pass `labels`."""
        report: list[dict[str, str]] = []
        freed = 0
        with self._lock:
            for image in list(self._images.values()):
                if dangling_only and image.repo_tags:
                    continue
                if until is not None and image.created >= until:
                    continue
                if labels is not None and not labels(image.config.labels):
                    continue
                if in_use(image) if callable(in_use) else in_use:
                    continue
                entries, size = self._delete_locked(image)
                report += entries
                freed += size
        return {"ImagesDeleted": report or None, "SpaceReclaimed": freed}

    # --- save / load ----------------------------------------------------------------------

    def save(self, refs: Sequence[str], out: BinaryIO) -> None:
        """`docker save`: Docker 25's tar (OCI layout plus manifest.json) of `refs`."""
        save_archive(self, refs, out)

    def load(self, src: BinaryIO) -> list[str]:
        """`docker load`: Docker's (legacy or 25's) save tars and OCI layout tars."""
        return load_archive(self, src)

    def _install_migrated(self, image: Image) -> None:
        with self._lock:
            self._save(image)


def _untagged_with(image: Image, name: str) -> list[str]:
    """The references `docker rmi name` drops: the name, and with the last tag of a
    repository that repository's digest references too (as moby does)."""
    repo = name.partition("@")[0] if "@" in name else name.rpartition(":")[0]
    if "@" in name or any(t != name and t.rpartition(":")[0] == repo for t in image.repo_tags):
        return [name]
    return [name, *(d for d in image.repo_digests if d.partition("@")[0] == repo)]


def _without(image: Image, name: str) -> Image:
    return dataclasses.replace(image, repo_tags=tuple(t for t in image.repo_tags if t != name),
                               repo_digests=tuple(d for d in image.repo_digests if d != name),
                               manifests={k: v for k, v in image.manifests.items() if k != name})

