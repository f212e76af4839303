"""Images of the older store (`images/<id hex>/{image.json,rootfs/}`) made layered images.

Each old rootfs becomes a base layer in place: first it is written out as a tar into
blobs/ (the layer's blob, uncompressed: its digest is the DiffID, so push and save have the
bytes they need), and `migrated.json` records that DiffID; then the directory is renamed to
be the layer's diff/ (no copy), a config is synthesised from the old record (created, Cmd,
Env, WorkingDir), and the image is recorded under its *old* id, which existing containers
name, with the config digest kept beside it. A crash at any step is resumed at the next
open: a rootfs already moved but not yet installed is re-extracted from the blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tarfile
from pathlib import Path
from typing import Any, Protocol

from shoal.runtime.imageconfig import (
    MT_LAYER_TAR,
    ImageConfig,
    parse_config,
    synthesise_config,
)
from shoal.runtime.imagerecord import Image
from shoal.runtime.layers import LayerStore

_HEX = set("0123456789abcdef")


class MigratingStore(Protocol):
    root: Path
    content: LayerStore

    def _install_migrated(self, image: Image) -> None: ...


class _HashingWriter:
    def __init__(self, out: Any) -> None:
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""  # numeric owners only: names would mean this host's passwd
    return info


def tar_directory(content: LayerStore, root: Path) -> tuple[str, int]:
    """Write `root` as an uncompressed tar blob; returns (digest = DiffID, size)."""
    tmp = content.ingest / f"migrate-{secrets.token_hex(8)}.partial"
    try:
        with open(tmp, "wb") as raw:
            writer = _HashingWriter(raw)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for name in sorted(os.listdir(root)):
                    tar.add(root / name, arcname=name, recursive=True, filter=_anonymous)
        digest = "sha256:" + writer.sha.hexdigest()
        content.commit_blob(tmp, digest)
        return digest, writer.size
    finally:
        tmp.unlink(missing_ok=True)


def migrate_old_images(store: MigratingStore) -> None:
    for entry in sorted(store.root.iterdir()):
        if entry.name.startswith(".") and entry.is_dir():  # the old store's cut-short imports/removals
            shutil.rmtree(entry, ignore_errors=True)
        elif len(entry.name) == 64 and set(entry.name) <= _HEX and (entry / "image.json").is_file():
            _migrate_one(store, entry)


def _migrate_one(store: MigratingStore, old: Path) -> None:
    content = store.content
    data = json.loads((old / "image.json").read_text())
    marker = old / "migrated.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        diff_id, tar_size = done["diff_id"], int(done["tar_size"])
    else:
        diff_id, tar_size = tar_directory(content, old / "rootfs")
        tmp = marker.with_name(".migrated.json.tmp")
        tmp.write_text(json.dumps({"diff_id": diff_id, "tar_size": tar_size}))
        tmp.replace(marker)
    layer = content.layer(diff_id)
    if layer is None and (old / "rootfs").is_dir():
        tmp_dir = content.layers / f".tmp-{secrets.token_hex(8)}"
        tmp_dir.mkdir()
        (old / "rootfs").rename(tmp_dir / "diff")
        layer = content.install_dir(tmp_dir, diff_id, tar_size, blob=diff_id, media_type=MT_LAYER_TAR)
    elif layer is None:  # moved by a run that crashed before installing it: the blob has it all
        content.apply_layer(content.blob_path(diff_id), diff_id, None, media_type=MT_LAYER_TAR)
        layer = content.layer(diff_id)
    assert layer is not None
    config = synthesise_config([diff_id], ImageConfig.from_json(data.get("config")),
                               created=float(data.get("created", 0)),
                               comment="Migrated from shoal's single-rootfs image store")
    config_digest = content.put_blob(config)
    parsed = parse_config(config)
    store._install_migrated(Image(
        id=data["id"], repo_tags=tuple(data.get("repo_tags", ())), created=int(data.get("created", 0)),
        size=layer.size, architecture=data.get("architecture") or parsed.architecture,
        os=data.get("os") or "linux", config=parsed.config, config_digest=config_digest,
        diff_ids=(diff_id,), layers=((diff_id, MT_LAYER_TAR),), comment=str(parsed.raw.get("comment") or "")))
    shutil.rmtree(old, ignore_errors=True)
