"""Pull an image from a registry into the image store, reporting as dockerd does.

The manifest is resolved before anything is written to the client (`resolve`), so a missing
tag or repository is a plain HTTP error the CLI prints as dockerd's; what follows streams.
Layers download three at a time (Docker's default) into the store's ingest area, where a
partial file survives a dropped connection or a cancelled pull and is resumed with Range the
next time; they are applied strictly in order, each one as soon as it and those below it are
there. A layer another image already has is "Already exists" and neither downloaded nor
applied. Nothing is an image until the last step: `add_image` checks the config against the
applied layers and only then records it, so a failed pull leaves blobs (reusable) and
complete layers (shared, collected by rmi/prune when no image uses them), never an image.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.errors import InvalidParameter, ShoalError
from shoal.runtime.progress import Emit, Transfer, message

CONCURRENCY = 3


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    @property
    def short(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class Resolved:
    """What the registry says the reference is, for this host's platform."""

    ref: Any  # registry.Reference
    creds: Any
    manifest: bytes
    media_type: str
    digest: str  # what Docker reports: the index's when the tag names one
    config: Blob
    layers: tuple[Blob, ...]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The image spec's ChainID: equal stacks below a layer name the same layer."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def parse_layers(manifest: bytes) -> tuple[Blob, tuple[Blob, ...]]:
    try:
        doc = json.loads(manifest)
        cfg = doc["config"]
        layers = tuple(Blob(d["digest"], int(d.get("size", 0)), d.get("mediaType", "")) for d in doc["layers"])
        return Blob(cfg["digest"], int(cfg.get("size", 0)), cfg.get("mediaType", "")), layers
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidParameter(f"invalid image manifest: {exc}") from None


def diff_ids_of(config: bytes, layers: int) -> list[str]:
    try:
        diff_ids = list(json.loads(config)["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter("invalid image config: no rootfs.diff_ids") from None
    if len(diff_ids) != layers:
        raise InvalidParameter(f"invalid image: {layers} layers in the manifest, {len(diff_ids)} diff_ids in the config")
    return diff_ids


async def finish(work: Any) -> Any:
    """Await thread work to its end even when cancelled: a thread cannot be stopped, and a
    clean-up that ran while it still extracts would miss the layer it then installs."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
            except BaseException:  # noqa: BLE001 - the cancellation is what the caller sees
                break
        raise


def threadsafe(emit: Emit, loop: asyncio.AbstractEventLoop) -> Emit:
    """Extraction runs in a worker thread; its progress must reach the loop's queue."""
    return lambda msg: loop.call_soon_threadsafe(emit, msg)


class Puller:
    """One per daemon: a blob is fetched and a layer extracted by one pull at a time."""

    def __init__(self, registry: Any, store: Any, *, concurrency: int = CONCURRENCY) -> None:
        self.registry = registry
        self.store = store
        self._slots = asyncio.Semaphore(concurrency)
        self._fetching: dict[str, asyncio.Lock] = {}
        self._applying: dict[str, asyncio.Lock] = {}

    async def resolve(self, ref: Any, creds: Any, platform: Any = None) -> Resolved:
        got = await self.registry.resolve(ref, creds, platform)
        config, layers = parse_layers(got.manifest)
        return Resolved(ref, creds, got.manifest, got.media_type, got.reported_digest, config, layers)

    async def pull(self, got: Resolved, emit: Emit) -> Any:
        ref = got.ref
        emit(message(f"Pulling from {ref.remote}", ref.digest or ref.tag or "latest"))  # reference.Path, as moby
        config = await self.registry.fetch_config(ref, got.creds, got.config.digest)
        diff_ids = diff_ids_of(config, len(got.layers))
        chains = chain_ids(diff_ids)
        pins = [*chains, *(b.digest for b in got.layers)]
        await asyncio.to_thread(self.store.pin, pins)
        try:
            return await self._pull_layers(got, config, diff_ids, chains, pins, emit)
        finally:
            await asyncio.shield(asyncio.to_thread(self.store.unpin, pins))

    async def _pull_layers(self, got: Resolved, config: bytes, diff_ids: list[str], chains: list[str],
                           pins: list[str], emit: Emit) -> Any:
        ref = got.ref
        found = [await asyncio.to_thread(self.store.layer_by_diff, d, chains[i - 1] if i else None)
                 for i, d in enumerate(diff_ids)]
        have = [layer is not None for layer in found]
        fresh = not all(have) or not await asyncio.to_thread(self._tagged, config, ref)
        waiting = 0
        for blob, present in zip(got.layers, have):
            if present:
                emit(message("Already exists", blob.short))
            else:
                emit(message("Pulling fs layer", blob.short))
        for blob, present in zip(got.layers, have):
            if not present:
                waiting += 1
                if waiting > CONCURRENCY:
                    emit(message("Waiting", blob.short))
        downloads = {b.digest: asyncio.ensure_future(self._download(got, b, emit))
                     for b, present in zip(got.layers, have) if not present}
        try:
            for i, (blob, present) in enumerate(zip(got.layers, have)):
                if present:
                    continue
                path = await downloads[blob.digest]
                await self._apply(blob, path, diff_ids[i], chains[i - 1] if i else None, emit)
                emit(message("Pull complete", blob.short))
            image = await asyncio.to_thread(self._record, got, config, found)
        except BaseException:
            # nothing stays that no image owns: layers go, blobs wait in ingest for the next
            # pull; the downloads stop first, so none commits a blob after the clean-up
            await self._stop(downloads)
            fresh_chains = [c for c, present in zip(chains, have) if not present]
            await asyncio.shield(asyncio.to_thread(self._set_aside, pins, list(downloads), fresh_chains))
            raise
        await self._stop(downloads)
        emit(message(f"Digest: {got.digest}"))
        status = "Downloaded newer image for" if fresh else "Image is up to date for"
        emit(message(f"Status: {status} {ref.familiar}"))
        return image

    def _set_aside(self, pins: list[str], blobs: list[str], chains: list[str]) -> None:
        """Our own pins go first (under them nothing would be freed); another pull's stay."""
        self.store.unpin(pins)
        try:
            self.store.set_aside(blobs=blobs, chains=chains)
        finally:
            self.store.pin(pins)  # the caller's finally takes them off again

    @staticmethod
    async def _stop(downloads: dict[str, asyncio.Future]) -> None:
        for task in downloads.values():
            task.cancel()
        await asyncio.gather(*downloads.values(), return_exceptions=True)

    def _tagged(self, config: bytes, ref: Any) -> bool:
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        try:
            image = self.store.get(image_id)
        except Exception:  # noqa: BLE001 - any lookup failure: not there
            return False
        return not ref.tag or ref.familiar in image.repo_tags

    def _record(self, got: Resolved, config: bytes, found: list[Any]) -> Any:
        """A layer that "Already exists" may have come in another blob (an import's plain
        tar, another registry's gzip): the image then names the blob the store holds for
        it, which has the same content; a push rebuilds the manifest for those blobs."""
        ref = got.ref
        layers = [(b.digest, b.media_type) if layer is None or self.store.has_blob(b.digest)
                  else (layer.blob, layer.media_type) for b, layer in zip(got.layers, found)]
        return self.store.add_image(
            config, layers=layers, manifest=got.manifest,
            manifest_media_type=got.media_type, repo_digest=f"{ref.familiar_name}@{got.digest}",
            tag=ref.familiar if ref.tag else None,
        )

    async def _download(self, got: Resolved, blob: Blob, emit: Emit) -> Any:
        """One download per digest at a time: a second pull of the same base waits, then
        finds the blob there (or, if the first was cancelled, resumes its partial file)."""
        lock = self._fetching.setdefault(blob.digest, asyncio.Lock())
        async with lock:
            return await self._fetch(got, blob, emit)

    async def _fetch(self, got: Resolved, blob: Blob, emit: Emit) -> Any:
        if await asyncio.to_thread(self.store.has_blob, blob.digest):
            emit(message("Download complete", blob.short))
            return self.store.blob_path(blob.digest)
        async with self._slots:
            progress = Transfer(emit, blob.short, "Downloading", blob.size)
            progress.set(0)
            dest = self.store.ingest_path(blob.digest)
            try:
                await self.registry.fetch_blob(
                    got.ref, got.creds, blob.digest, blob.size, dest, progress=progress.set,
                    retry_notice=lambda seconds: emit(message(f"Retrying in {seconds} seconds", blob.short)),
                )
            except OSError as exc:  # a full disk, a read-only data root: in Go's words, as dockerd
                where = exc.filename or f"{dest}.partial"
                raise ShoalError(f"write {where}: {os.strerror(exc.errno or 0).lower()}") from None
        emit(message("Verifying Checksum", blob.short))
        path = await finish(asyncio.to_thread(self.store.commit_blob, dest, blob.digest))
        emit(message("Download complete", blob.short))
        return path

    async def _apply(self, blob: Blob, path: Any, diff_id: str, parent: str | None, emit: Emit) -> None:
        lock = self._applying.setdefault(diff_id + (parent or ""), asyncio.Lock())
        async with lock:
            if await asyncio.to_thread(self.store.layer_by_diff, diff_id, parent) is not None:
                return
            progress = Transfer(threadsafe(emit, asyncio.get_running_loop()), blob.short, "Extracting", blob.size)
            progress_cb: Callable[[int, int], None] = lambda current, _total: progress.set(current)
            await finish(asyncio.to_thread(self.store.apply_layer, path, diff_id, parent, progress_cb))
