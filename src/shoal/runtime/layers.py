"""Content-addressed blobs and extracted layers, shared by every image that names them.

Under the image root:
- `blobs/sha256/<hex>`: blobs exactly as received (compressed layer tars, configs, manifests).
  Layer blobs are kept next to their extracted form, which doubles the disk a layer takes (as
  containerd does): push must send the very bytes the registry hashed and save must produce
  the tar whose digest is the DiffID; regenerating a byte-exact tar from a directory would
  need moby's tar-split metadata, and recompressing never reproduces a digest.
- `blobs/ingest/`: downloads in progress (`<hex>.partial`), kept across restarts so a pull
  can resume with Range; `commit_blob` moves a finished one into place (one rename).
- `layers/<chain hex>/`: `diff/` (the layer in overlay form, see untar.py), `layer.json`
  (diff_id, parent chain id, sizes, the blob it came from) and `link` (its short name).
  Extraction happens in `layers/.tmp-*` and is renamed into place once verified, so a crash
  never leaves a half layer under a real name; store open removes the leftovers.
- `l/<26 chars>`: symlinks to the diff dirs, so an overlay mount's option string (one page)
  holds many layers, as moby's overlay2 `l/` does.

Nothing counts references: whether a blob or a layer is still needed is computed from the
image records at removal (images.py), so no counter can drift after a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from shoal.errors import InvalidParameter, NotFound
from shoal.runtime.imageconfig import chain_id as make_chain_id
from shoal.runtime.imageconfig import check_digest
from shoal.runtime.untar import Progress, extract_layer

MAX_LAYERS = 128  # moby's overlay2 limit; the kernel's own is 500
_LINK_CHARS = string.ascii_uppercase + string.digits
_DOWNLOAD = re.compile(r"^[0-9a-f]{64}(\.partial)?$")  # ingest_path(digest) and its .partial
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int  # bytes of files in diff/ (what Docker's SIZE adds up)
    tar_size: int  # bytes of the uncompressed tar
    path: Path
    link: str  # its name under l/
    blob: str = ""  # the digest of the blob it came from ("" if unknown)
    media_type: str = ""
    blob_size: int = 0

    @property
    def diff(self) -> Path:
        return self.path / "diff"

    def to_json(self) -> dict:
        return {"chain_id": self.chain_id, "diff_id": self.diff_id, "parent": self.parent,
                "size": self.size, "tar_size": self.tar_size, "link": self.link,
                "blob": self.blob, "media_type": self.media_type, "blob_size": self.blob_size}


def tree_size(root: Path) -> int:
    total, seen = 0, set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class LayerStore:
    """Blobs and layers under `root` (the image root); thread-safe for distinct digests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.ingest = root / "blobs" / "ingest"
        self.layers = root / "layers"
        self.links = root / "l"
        for path in (self.blobs, self.ingest, self.layers, self.links):
            path.mkdir(parents=True, exist_ok=True)
        self._clean()

    def _clean(self) -> None:
        """What a crash can leave: half-extracted layers, half-copied blobs, links to nothing."""
        for entry in self.layers.iterdir():
            if entry.name.startswith(".") or not (entry / "layer.json").is_file():
                shutil.rmtree(entry, ignore_errors=True)
            elif (link := self.links / (entry / "link").read_text().strip()) and not os.path.lexists(link):
                os.symlink(f"../layers/{entry.name}/diff", link)  # installed, its link not yet made
        for entry in self.blobs.iterdir():
            if entry.name.startswith("."):
                entry.unlink(missing_ok=True)
        for entry in self.ingest.iterdir():
            if entry.is_dir():  # a load's scratch directory
                shutil.rmtree(entry, ignore_errors=True)
            elif not _DOWNLOAD.match(entry.name):  # an import's or a copy's scratch file; downloads stay
                entry.unlink(missing_ok=True)
        for entry in self.links.iterdir():
            if not entry.exists():
                entry.unlink(missing_ok=True)

    # --- blobs --------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / check_digest(digest)

    def ingest_path(self, digest: str) -> Path:
        """Where a download of `digest` goes; the downloader writes `<this>.partial`."""
        return self.ingest / check_digest(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def commit_blob(self, src: Path, digest: str, *, verify: bool = False) -> Path:
        """Move a finished download into blobs/ (atomic: same filesystem). The caller has
        hashed it while writing; `verify` hashes it again."""
        dest = self.blob_path(digest)
        if verify and file_digest(src) != digest:
            Path(src).unlink(missing_ok=True)
            raise InvalidParameter(f"filesystem layer verification failed for digest {digest}")
        os.replace(src, dest)
        return dest

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest):
            tmp = self.blobs / f".{secrets.token_hex(8)}"
            tmp.write_bytes(data)
            os.replace(tmp, self.blob_path(digest))
        return digest

    def write_blob(self, src: BinaryIO) -> str:
        """Copy a stream into blobs/ as it comes, hashing it; returns its digest."""
        tmp = self.ingest / f"stream-{secrets.token_hex(8)}.partial"
        sha = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
            digest = "sha256:" + sha.hexdigest()
            self.commit_blob(tmp, digest)
            return digest
        finally:
            tmp.unlink(missing_ok=True)

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def blob_digests(self) -> set[str]:
        return {"sha256:" + p.name for p in self.blobs.iterdir() if not p.name.startswith(".")}

    def delete_blob(self, digest: str) -> int:
        path = self.blob_path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    # --- layers -------------------------------------------------------------------------

    def layer(self, chain: str) -> Layer | None:
        path = self.layers / check_digest(chain)
        try:
            data = json.loads((path / "layer.json").read_text())
        except FileNotFoundError:
            return None
        return Layer(chain_id=data["chain_id"], diff_id=data["diff_id"], parent=data.get("parent"),
                     size=int(data["size"]), tar_size=int(data.get("tar_size", 0)), path=path,
                     link=data["link"], blob=data.get("blob", ""), media_type=data.get("media_type", ""),
                     blob_size=int(data.get("blob_size", 0)))

    def layer_by_diff(self, diff_id: str, parent_chain: str | None) -> Layer | None:
        """The layer `diff_id` on top of `parent_chain`, if already extracted ("Already exists")."""
        return self.layer(make_chain_id(parent_chain, diff_id))

    def chain_ids(self) -> set[str]:
        return {"sha256:" + p.name for p in self.layers.iterdir() if not p.name.startswith(".")}

    def apply_layer(self, blob_path: Path, expected_diff_id: str, parent_chain_id: str | None,
                    progress: Progress | None = None, *, media_type: str = "") -> str:
        """Extract a layer blob on top of `parent_chain_id`; returns its ChainID.

        The uncompressed stream must hash to `expected_diff_id` (the config's diff_ids[i]);
        on a mismatch or a refused entry nothing is left behind. An existing ChainID is
        reused without reading the blob."""
        check_digest(expected_diff_id)
        if parent_chain_id is not None and self.layer(parent_chain_id) is None:
            raise NotFound(f"parent layer {parent_chain_id} not found")
        chain = make_chain_id(parent_chain_id, expected_diff_id)
        if self.layer(chain) is not None:
            return chain
        tmp = self.layers / f".tmp-{secrets.token_hex(8)}"
        tmp.mkdir()
        try:
            diff_id, tar_size = extract_layer(Path(blob_path), tmp / "diff", progress=progress)
            if diff_id != expected_diff_id:
                raise InvalidParameter(f"layer verification failed: expected diff_id {expected_diff_id}, "
                                       f"got {diff_id}")
            blob = Path(blob_path)
            blob_digest = "sha256:" + blob.name if blob.parent == self.blobs else ""
            layer = Layer(chain_id=chain, diff_id=diff_id, parent=parent_chain_id,
                          size=tree_size(tmp / "diff"), tar_size=tar_size, path=self.layers / chain[7:],
                          link=self._new_link(), blob=blob_digest, media_type=media_type,
                          blob_size=blob.stat().st_size)
            return self._install(tmp, layer).chain_id
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def install_dir(self, tmp: Path, diff_id: str, tar_size: int, *, blob: str, media_type: str) -> Layer:
        """Make the directory `tmp/diff` a base layer (the old-layout migration's way in)."""
        layer = Layer(chain_id=diff_id, diff_id=diff_id, parent=None, size=tree_size(tmp / "diff"),
                      tar_size=tar_size, path=self.layers / check_digest(diff_id), link=self._new_link(),
                      blob=blob, media_type=media_type, blob_size=tar_size)
        try:
            return self._install(tmp, layer)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _install(self, tmp: Path, layer: Layer) -> Layer:
        (tmp / "layer.json").write_text(json.dumps(layer.to_json(), indent=1))
        (tmp / "link").write_text(layer.link)
        try:
            tmp.rename(layer.path)
        except OSError:
            if self.layer(layer.chain_id) is None:  # not a race with the same layer: a real error
                raise
            return self.layer(layer.chain_id)  # type: ignore[return-value]
        os.symlink(f"../layers/{layer.path.name}/diff", self.links / layer.link)
        return layer

    def _new_link(self) -> str:
        while True:
            name = "".join(secrets.choice(_LINK_CHARS) for _ in range(26))
            if not os.path.lexists(self.links / name):
                return name

    def chain(self, chain: str) -> list[Layer]:
        """The layers of `chain`, bottom first."""
        out: list[Layer] = []
        current: str | None = chain
        while current is not None:
            layer = self.layer(current)
            if layer is None:
                raise NotFound(f"layer {current} not found")
            out.append(layer)
            current = layer.parent
        return out[::-1]

    def delete_layers(self, chains: Iterable[str]) -> int:
        """Remove layers no image uses; renamed first so a crash never leaves half of one
        under its name. Returns the bytes freed."""
        freed = 0
        for chain in chains:
            layer = self.layer(chain)
            if layer is None:
                continue
            freed += layer.size
            (self.links / layer.link).unlink(missing_ok=True)
            doomed = self.layers / f".del-{layer.path.name}"
            layer.path.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        return freed

    def lower_dirs(self, chain: str | None) -> list[Path]:
        """The overlay lowerdirs for an image whose top layer is `chain`, top first, as
        short l/ links."""
        if chain is None:  # an image of no layers (a config only): overlay needs one lower
            empty = self.root / "empty"
            empty.mkdir(exist_ok=True)
            return [empty]
        layers = self.chain(chain)
        if len(layers) > MAX_LAYERS:
            raise InvalidParameter(f"max depth exceeded: an image has at most {MAX_LAYERS} layers"
                                   f" (this one has {len(layers)})")
        return [self.links / layer.link for layer in reversed(layers)]


def with_blob(layer: Layer, blob: str, media_type: str, size: int) -> Layer:
    return replace(layer, blob=blob, media_type=media_type, blob_size=size)


def file_digest(path: Path, update: Callable[[bytes], None] | None = None) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            sha.update(chunk)
            if update is not None:
                update(chunk)
    return "sha256:" + sha.hexdigest()
