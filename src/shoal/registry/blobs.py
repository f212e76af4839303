"""Layer download: resumable, verified, retried (moby's pull_v2 layerDescriptor.Download and
xfer's retry loop). The partial file survives failures and restarts, so an interrupted pull
continues where it stopped; only bytes that hash to the digest are renamed into place."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from shoal.errors import ShoalError

from .auth import Credentials, pull_scope
from .errors import DigestMismatch, RegistryUnreachable, TooManyRequests, pull_error
from .reference import Reference

if TYPE_CHECKING:
    from .client import Endpoint

READ_SIZE = 1 << 16
DONT_RETRY = {"UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS", "NAME_UNKNOWN", "BLOB_UNKNOWN"}


class _Retry(Exception):
    """A failure worth another attempt (dropped connection, 5xx, short body)."""


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


class BlobsMixin:
    if TYPE_CHECKING:
        attempts: int
        retry_delay: Callable[[int], float]

        async def pull_endpoint(self, ref: Reference) -> Endpoint: ...
        async def send(self, ep: Endpoint, method: str, url: str, scopes: tuple[str, ...], creds: Credentials,
                       **kw) -> httpx.Response: ...
        async def error_of(self, resp: httpx.Response) -> tuple: ...

    async def fetch_blob(self, ref: Reference, creds: Credentials, digest: str, size: int, dest: Path,
                         progress: Callable[[int], None] | None = None,
                         retry_notice: Callable[[int], None] | None = None) -> None:
        """Download blob `digest` of `size` bytes to `dest`, through `<dest>.partial`.

        progress(n) gets the bytes held so far (resumed bytes included), i.e. the
        "Downloading" current. Up to `attempts` tries; before each wait retry_notice(seconds)
        ("Retrying in N seconds"). The registry URL is asked again on every try (CDN
        redirects expire). A digest mismatch removes the partial and is not retried."""
        partial = partial_path(dest)
        partial.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.attempts + 1):
            try:
                await self._download_once(ref, creds, digest, size, partial, progress)
                break
            except (_Retry, RegistryUnreachable) as exc:
                if attempt == self.attempts:
                    raise (exc if isinstance(exc, ShoalError) else ShoalError(str(exc))) from None
                delay = int(self.retry_delay(attempt))
                if retry_notice is not None:
                    retry_notice(delay)
                await asyncio.sleep(delay)
        os.replace(partial, dest)

    async def _download_once(self, ref: Reference, creds: Credentials, digest: str, size: int, partial: Path,
                             progress: Callable[[int], None] | None) -> None:
        have = partial.stat().st_size if partial.exists() else 0
        if have > size:
            partial.unlink()
            have = 0
        hasher = await asyncio.to_thread(_hash_file, partial) if have else hashlib.sha256()
        if have == size and size > 0:
            return _finish(hasher, digest, partial)
        ep = await self.pull_endpoint(ref)
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        resp = await self.send(ep, "GET", f"/v2/{ref.remote}/blobs/{digest}", (pull_scope(ref.remote),), creds,
                               headers=headers, stream=True)
        try:
            if resp.status_code == 200 and have:  # the registry ignored Range: start over
                have, hasher = 0, hashlib.sha256()
            elif resp.status_code == 416:
                partial.unlink(missing_ok=True)
                raise _Retry("range not satisfiable")
            elif resp.status_code not in (200, 206):
                err, after = await self.error_of(resp)
                failure = pull_error(err, ref.familiar_name, ref.familiar, after)
                if resp.status_code >= 500 or err.code not in DONT_RETRY and not isinstance(failure, TooManyRequests):
                    raise _Retry(str(failure))
                raise failure
            await self._stream_into(resp, partial, have, size, hasher, digest, progress)
        finally:
            await resp.aclose()
        _finish(hasher, digest, partial)

    async def _stream_into(self, resp: httpx.Response, partial: Path, have: int, size: int, hasher,
                           digest: str, progress: Callable[[int], None] | None) -> None:
        with partial.open("r+b" if have else "wb") as f:
            f.seek(have)
            f.truncate()
            try:
                async for chunk in resp.aiter_raw(READ_SIZE):
                    have += len(chunk)
                    if have > size:
                        break
                    f.write(chunk)
                    hasher.update(chunk)
                    if progress is not None:
                        progress(have)
            except httpx.TransportError:
                raise _Retry("unexpected EOF") from None  # what Go's reader says, and dockerd with it
        if have > size:
            partial.unlink(missing_ok=True)
            raise DigestMismatch(f"filesystem layer verification failed for digest {digest}")
        if have < size:
            raise _Retry("unexpected EOF")


def _hash_file(path: Path):
    """The running hash of a kept partial (off the event loop: it may be large)."""
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher


def _finish(hasher, digest: str, partial: Path) -> None:
    if "sha256:" + hasher.hexdigest() != digest:
        partial.unlink(missing_ok=True)
        raise DigestMismatch(f"filesystem layer verification failed for digest {digest}")
