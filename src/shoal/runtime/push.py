"""Push an image's blobs and manifest to a registry, reporting as dockerd does.

The layers go first (five at a time, Docker's default), each skipped when the registry has
it ("Layer already exists"), mounted from the repository the image was pulled from when
that is on the same registry ("Mounted from"), else uploaded; then the config; the manifest
last, so a registry never names a manifest whose blobs it lacks. The blobs are the bytes the
store kept, so an image pushed back where it came from keeps its digest: the manifest the
store holds for it is sent unchanged when it lists exactly these blobs. An image without one
(imported, or pulled from elsewhere in another shape) gets a fresh manifest: Docker's
schema2 when its layers are gzip, OCI's otherwise (an imported layer is a plain tar, which
schema2 has no type for).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from shoal.errors import ShoalError
from shoal.registry import parse
from shoal.runtime.progress import Emit, Transfer, message

CONCURRENCY = 5
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def build_manifest(config: bytes, config_digest: str, layers: list[tuple[str, int, str]]) -> tuple[bytes, str]:
    """A manifest for blobs (digest, size, media type) as stored."""
    docker = all(mt in (DOCKER_GZIP, OCI_GZIP, "") for _, _, mt in layers)
    layer_type = (lambda mt: DOCKER_GZIP) if docker else (lambda mt: mt or OCI_TAR)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "size": len(config),
                   "digest": config_digest},
        "layers": [{"mediaType": layer_type(mt), "size": size, "digest": d} for d, size, mt in layers],
    }
    return json.dumps(doc, indent=3).encode(), doc["mediaType"]


def _lists_blobs(manifest: bytes, config_digest: str, digests: list[str]) -> bool:
    try:
        doc = json.loads(manifest)
        return doc["config"]["digest"] == config_digest and [d["digest"] for d in doc["layers"]] == digests
    except (ValueError, KeyError, TypeError):
        return False


class Pusher:
    def __init__(self, registry: Any, store: Any, *, concurrency: int = CONCURRENCY) -> None:
        self.registry = registry
        self.store = store
        self._slots = asyncio.Semaphore(concurrency)

    async def push(self, ref: Any, creds: Any, image: Any, emit: Emit) -> str:
        """`ref` names the repository and tag; returns the manifest's digest."""
        layers = await asyncio.to_thread(self.store.layers_of, image)
        sources = self._mount_sources(image, ref)
        jobs: list[Awaitable[None]] = []
        for layer in reversed(layers):
            emit(message("Preparing", layer.blob.removeprefix("sha256:")[:12]))
        for layer in reversed(layers):
            jobs.append(self._layer(ref, creds, layer, sources, emit))
        await asyncio.gather(*jobs)
        config = await asyncio.to_thread(self.store.config_bytes, image)
        config_digest = image.config_digest  # a migrated image keeps its old id
        if not await self.registry.blob_exists(ref, creds, config_digest):
            staged = self.store.ingest_path(config_digest).with_suffix(".config")
            await asyncio.to_thread(staged.write_bytes, config)
            try:
                await self.registry.upload_blob(ref, creds, config_digest, len(config), staged)
            finally:
                staged.unlink(missing_ok=True)
        manifest, media_type = await self._manifest(image, ref, config, layers)
        digest = await self.registry.put_manifest(ref, creds, manifest, media_type)
        tag = ref.tag or "latest"
        emit({"status": f"{tag}: digest: {digest} size: {len(manifest)}"})
        emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}})
        return digest

    async def _manifest(self, image: Any, ref: Any, config: bytes, layers: list[Any]) -> tuple[bytes, str]:
        digests = [layer.blob for layer in layers]
        for repo in [ref.familiar_name, *self._repos(image)]:
            kept = await asyncio.to_thread(self.store.manifest_for, image, repo)
            if kept and _lists_blobs(kept[0], image.config_digest, digests):
                return kept
        return build_manifest(config, image.config_digest, [(l.blob, l.blob_size, l.media_type) for l in layers])

    @staticmethod
    def _repos(image: Any) -> list[str]:
        return [d.split("@", 1)[0] for d in getattr(image, "repo_digests", ())]

    def _mount_sources(self, image: Any, ref: Any) -> list[str]:
        """Repositories (their paths) on the same registry the image came from: a mount there
        costs the registry a link instead of our upload."""
        out = []
        for repo in self._repos(image):
            try:
                source = parse(repo, default_tag=False)
            except ShoalError:
                continue
            if source.domain == ref.domain and source.remote != ref.remote:
                out.append(source.remote)
        return out

    async def _layer(self, ref: Any, creds: Any, layer: Any, sources: list[str], emit: Emit) -> None:
        short = layer.blob.removeprefix("sha256:")[:12]
        async with self._slots:
            if await self.registry.blob_exists(ref, creds, layer.blob):
                emit(message("Layer already exists", short))
                return
            for source in sources:
                if await self.registry.mount_blob(ref, creds, layer.blob, source):
                    emit(message(f"Mounted from {source}", short))
                    return
            progress = Transfer(emit, short, "Pushing", layer.blob_size)
            await self.registry.upload_blob(ref, creds, layer.blob, layer.blob_size,
                                            self.store.blob_path(layer.blob), progress=progress.set)
            emit(message("Pushed", short))
