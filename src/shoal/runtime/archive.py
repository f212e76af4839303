"""`docker save` and `docker load` tars.

save writes Docker 25's format: an OCI layout (`oci-layout`, `index.json` whose entries carry
the `io.containerd.image.name` and `org.opencontainers.image.ref.name` annotations,
`blobs/sha256/`) in which every layer is an *uncompressed* tar named by its DiffID, plus the
legacy `manifest.json` (Config and Layers as paths into blobs/) and `repositories`. dockerd
20.10's load reads only manifest.json and follows its paths, so it loads these too. Entries
have mtime 0, so saving the same images twice gives the same bytes.

load reads that format, the legacy one (`<v1 id>/layer.tar` listed in manifest.json, as
Docker before 25 and `skopeo ... docker-archive:` write), and plain OCI layout tars (no
manifest.json: index.json's manifests). The tar is unpacked into a scratch directory under
blobs/ingest first (a loaded layer blob then moves into blobs/ by rename); only files,
directories and symlinks are taken, no entry may leave the scratch directory, and every path
the tar's json names is resolved inside it.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from shoal.errors import InvalidParameter, NotFound
from shoal.runtime.imageconfig import (
    MT_DOCKER_LIST,
    MT_LAYER_GZIP,
    MT_LAYER_TAR,
    MT_LAYER_ZSTD,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    check_digest,
    host_arch,
    parse_config,
    sha256_digest,
)
from shoal.runtime.imageconfig import (
    chain_id as chain_of,
)
from shoal.runtime.imagerecord import Image, familiar, normalize_name
from shoal.runtime.layers import Layer, LayerStore, file_digest
from shoal.runtime.untar import clean_name, compression_of, open_uncompressed

_CHUNK = 1 << 20


class ArchiveStore(Protocol):
    content: LayerStore

    def get(self, ref: str) -> Image: ...
    def list(self) -> list[Image]: ...
    def layers_of(self, image: Image) -> list[Layer]: ...
    def config_bytes(self, image: Image) -> bytes: ...
    def add_image(self, config: bytes, *, layers: Sequence[tuple[str, str]], manifest: bytes | None = None,
                  manifest_media_type: str | None = None, repo_digest: str | None = None,
                  tag: str | None = None) -> Image: ...
    def pin(self, names: Iterable[str]) -> None: ...
    def unpin(self, names: Iterable[str]) -> None: ...
    def release(self, *, blobs: Sequence[str] = (), chains: Sequence[str] = ()) -> int: ...


# --- save ----------------------------------------------------------------------------------


def _selection(store: ArchiveStore, refs: Sequence[str]) -> list[tuple[Image, list[str]]]:
    """Images to save with the names each is saved under: a name without a tag means every
    tag of that repository, an id (or digest) the image without names (as docker save)."""
    picked: dict[str, tuple[Image, list[str]]] = {}

    def pick(image: Image, names: list[str]) -> None:
        entry = picked.setdefault(image.id, (image, []))
        entry[1].extend(n for n in names if n not in entry[1])

    for ref in refs:
        if "@" not in ref and not ref.startswith("sha256:") and ":" not in ref.rsplit("/", 1)[-1]:
            repo = familiar(ref)
            found = [(i, [t for t in i.repo_tags if t.rpartition(":")[0] == repo]) for i in store.list()]
            found = [(i, names) for i, names in found if names]
            if found:
                for image, names in found:
                    pick(image, names)
                continue
        image = store.get(ref)
        by_name = "@" not in ref and not image.id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
        pick(image, [normalize_name(ref)] if by_name else [])
    return list(picked.values())


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.written: set[str] = set()

    def dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self.tar.addfile(info)

    def file(self, name: str, size: int, src: Any) -> None:
        if name in self.written:
            return
        self.written.add(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o644
        self.tar.addfile(info, src)

    def data(self, name: str, data: bytes) -> None:
        self.file(name, len(data), io.BytesIO(data))


def _full_name(name: str) -> str:
    """`busybox:latest` -> `docker.io/library/busybox:latest` (index.json's containerd name)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def save(store: ArchiveStore, refs: Sequence[str], out: BinaryIO) -> None:
    selection = _selection(store, refs)
    w = _Writer(out)
    w.dir("blobs/")
    w.dir("blobs/sha256/")
    index, legacy, repositories = [], [], {}
    for image, names in selection:
        config = store.config_bytes(image)
        w.data(f"blobs/sha256/{image.config_digest[7:]}", config)
        descriptors = []
        for layer in store.layers_of(image):
            with open(store.content.blob_path(layer.blob), "rb") as raw:
                w.file(f"blobs/sha256/{layer.diff_id[7:]}", layer.tar_size, open_uncompressed(raw))
            descriptors.append({"mediaType": MT_LAYER_TAR, "digest": layer.diff_id, "size": layer.tar_size})
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                               "config": {"mediaType": MT_OCI_CONFIG, "digest": image.config_digest,
                                          "size": len(config)},
                               "layers": descriptors}, separators=(",", ":")).encode()
        digest = sha256_digest(manifest)
        w.data(f"blobs/sha256/{digest[7:]}", manifest)
        desc = {"mediaType": MT_OCI_MANIFEST, "digest": digest, "size": len(manifest)}
        for name in names:
            index.append({**desc, "annotations": {"io.containerd.image.name": _full_name(name),
                                                  "org.opencontainers.image.ref.name": name.rpartition(":")[2]}})
            repo, _, tag = name.rpartition(":")
            if image.diff_ids:
                repositories.setdefault(repo, {})[tag] = image.diff_ids[-1][7:]
        if not names:
            index.append(desc)
        legacy.append({"Config": f"blobs/sha256/{image.config_digest[7:]}", "RepoTags": names or None,
                       "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in descriptors]})
    w.data("index.json", json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index}).encode())
    w.data("manifest.json", json.dumps(legacy).encode())
    w.data("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repositories:
        w.data("repositories", json.dumps(repositories).encode())
    w.tar.close()


# --- load ----------------------------------------------------------------------------------


@dataclass
class _Entry:
    config: bytes
    layers: list[tuple[Path, str, str | None]]  # (file, media type, digest if the descriptor gave one)
    tags: list[str]


def _unpack(src: BinaryIO, scratch: Path) -> None:
    try:
        with tarfile.open(fileobj=src, mode="r|*") as tar:
            for member in tar:
                rel = clean_name(member.name)
                if not rel:
                    continue
                path = scratch / rel
                for parent in reversed(path.relative_to(scratch).parents[:-1]):
                    target = scratch / parent
                    if target.is_symlink() or (target.exists() and not target.is_dir()):
                        raise InvalidParameter(f"invalid tar: {member.name!r} goes through a non-directory")
                    target.mkdir(exist_ok=True)
                if os.path.lexists(path) and not (member.isdir() and path.is_dir()):
                    raise InvalidParameter(f"invalid tar: {member.name!r} appears twice")
                if member.isdir():
                    path.mkdir(exist_ok=True)
                elif member.issym():
                    os.symlink(member.linkname, path)
                elif member.islnk():  # only to a file already taken, never through a symlink
                    target = scratch / clean_name(member.linkname)
                    if target.is_symlink() or not target.is_file() or \
                            not os.path.realpath(target).startswith(os.path.realpath(scratch) + os.sep):
                        raise InvalidParameter(f"invalid tar: hardlink {member.name!r} to {member.linkname!r}")
                    os.link(target, path)
                elif member.isreg():
                    fobj = tar.extractfile(member)
                    assert fobj is not None
                    with open(path, "wb") as out:
                        shutil.copyfileobj(fobj, out, _CHUNK)
    except (tarfile.TarError, EOFError) as err:
        raise InvalidParameter(f"invalid tar: {err}") from err


def _inside(scratch: Path, rel: str) -> Path:
    """`rel` from the archive's json, resolved (symlinks too) and confined to `scratch`."""
    path = Path(os.path.realpath(scratch / clean_name(rel)))
    root = os.path.realpath(scratch)
    if not str(path).startswith(root + os.sep) or not path.is_file():
        raise InvalidParameter(f"invalid archive: {rel!r} is not a file in the archive")
    return path


def _media_type(path: Path) -> str:
    with open(path, "rb") as f:
        kind = compression_of(f.read(6))
    return {"gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}.get(kind, MT_LAYER_TAR)


def _legacy_entries(scratch: Path) -> list[_Entry]:
    try:
        items = json.loads(_inside(scratch, "manifest.json").read_bytes())
        out = []
        for item in items:
            layers = [(p, _media_type(p), None) for p in (_inside(scratch, rel) for rel in item["Layers"] or [])]
            out.append(_Entry(config=_inside(scratch, item["Config"]).read_bytes(), layers=layers,
                              tags=list(item.get("RepoTags") or [])))
        return out
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidParameter(f"invalid manifest.json: {err}") from None


def _blob(scratch: Path, digest: str) -> Path:
    return _inside(scratch, f"blobs/sha256/{check_digest(digest)}")


def _oci_manifests(scratch: Path, index: dict, name: str | None) -> list[tuple[dict, str | None]]:
    out = []
    for desc in index.get("manifests") or []:
        annotations = desc.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        platform = desc.get("platform")
        if platform and (platform.get("os"), platform.get("architecture")) != ("linux", host_arch()):
            continue
        ref = annotations.get("io.containerd.image.name") or name
        ref_name = annotations.get("org.opencontainers.image.ref.name", "")
        if ref is None and ("/" in ref_name or ":" in ref_name):
            ref = ref_name  # some tools put the whole reference there
        if desc.get("mediaType") in (MT_OCI_INDEX, MT_DOCKER_LIST):
            out += _oci_manifests(scratch, json.loads(_blob(scratch, desc["digest"]).read_bytes()), ref)
        else:
            out.append((desc, ref))
    return out


def _oci_entries(scratch: Path) -> list[_Entry]:
    try:
        index = json.loads(_inside(scratch, "index.json").read_bytes())
        out = []
        for desc, ref in _oci_manifests(scratch, index, None):
            manifest = json.loads(_blob(scratch, desc["digest"]).read_bytes())
            layers = [(_blob(scratch, d["digest"]), d.get("mediaType") or MT_LAYER_TAR, d["digest"])
                      for d in manifest.get("layers") or []]
            tags = [normalize_name(familiar(ref))] if ref else []
            out.append(_Entry(config=_blob(scratch, manifest["config"]["digest"]).read_bytes(),
                              layers=layers, tags=tags))
        return out
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidParameter(f"invalid index.json: {err}") from None


def _load_entry(store: ArchiveStore, entry: _Entry) -> list[str]:
    parsed = parse_config(entry.config)
    if len(entry.layers) != len(parsed.diff_ids):
        raise InvalidParameter(f"invalid manifest, layers length mismatch: expected {len(entry.layers)}, "
                               f"got {len(parsed.diff_ids)}")
    made: list[str] = []  # blobs and chains this entry added: given back if it fails
    try:
        layers = _load_layers(store, entry, parsed.diff_ids, made)
        image = store.add_image(entry.config, layers=layers)
    except BaseException:
        store.unpin(made)
        store.release(blobs=made, chains=made)
        raise
    try:
        lines = _tag_loaded(store, entry, image)
    finally:
        store.unpin(made)
    # an image already here keeps the blobs it was pulled with: the tar's copies go again
    store.release(blobs=made, chains=made)
    return lines


def _load_layers(store: ArchiveStore, entry: _Entry, diff_ids: Sequence[str], made: list[str]) -> list[tuple[str, str]]:
    """Each layer's blob committed and applied, pinned until the image is recorded."""
    content, parent, layers = store.content, None, []
    for (path, media_type, stated), diff_id in zip(entry.layers, diff_ids):
        digest = file_digest(path)
        if stated is not None and stated != digest:
            raise InvalidParameter(f"invalid archive: blob {stated} has digest {digest}")
        store.pin([digest])
        made.append(digest)
        if not content.has_blob(digest):  # a link, not a move: other entries may name this file too
            spare = content.ingest / f"load-{secrets.token_hex(8)}.partial"
            os.link(path, spare)
            content.commit_blob(spare, digest)
        blob = content.blob_path(digest)
        if content.layer_by_diff(diff_id, parent) is None:
            store.pin([chain_of(parent, diff_id)])
            made.append(chain_of(parent, diff_id))
            try:
                content.apply_layer(blob, diff_id, parent, media_type=media_type)
            except InvalidParameter as err:
                raise InvalidParameter(f"invalid diffID for layer {len(layers)}: {err}") from None
        parent = content.layer_by_diff(diff_id, parent).chain_id  # type: ignore[union-attr]
        layers.append((digest, media_type))
    return layers


def _tag_loaded(store: ArchiveStore, entry: _Entry, image: Image) -> list[str]:
    lines = []
    layers = list(image.layers)
    for tag in entry.tags:
        name = normalize_name(tag)
        try:
            old = store.get(name)
        except NotFound:
            old = None
        if old is not None and old.id != image.id:
            lines.append(f"The image {name} already exists, renaming the old one with ID {old.id} to empty string")
        store.add_image(entry.config, layers=layers, tag=name)
        lines.append(f"Loaded image: {name}")
    return lines or [f"Loaded image ID: {image.id}"]


def load(store: ArchiveStore, src: BinaryIO) -> list[str]:
    """Returns the lines `docker load` prints ("Loaded image: busybox:latest", ...)."""
    scratch = store.content.ingest / f"load-{secrets.token_hex(8)}"
    scratch.mkdir()
    try:
        _unpack(src, scratch)
        if (scratch / "manifest.json").is_file():
            entries = _legacy_entries(scratch)
        elif (scratch / "index.json").is_file():
            entries = _oci_entries(scratch)
        else:
            raise InvalidParameter("invalid archive: no manifest.json or index.json (not a docker save or"
                                   " OCI layout tar)")
        lines: list[str] = []
        for entry in entries:
            lines += _load_entry(store, entry)
        return lines
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
