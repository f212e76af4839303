"""Push: blob checks, cross-repository mounts, uploads, the manifest last (distribution-spec
"Push"; moby's push_v2). Uploads stream from files in bounded pieces: a layer is never held
in memory, and a body is a callable so a 401 retry can send it again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from shoal.errors import InvalidParameter

from . import manifest as mf
from .auth import Credentials, pull_scope, push_scope
from .errors import push_error
from .reference import Reference

if TYPE_CHECKING:
    from .client import Endpoint

PIECE = 1 << 18


class PushMixin:
    if TYPE_CHECKING:
        chunk_size: int

        async def endpoint(self, domain: str, *, mirrors: bool = False) -> Endpoint: ...
        async def send(self, ep: Endpoint, method: str, url: str, scopes: tuple[str, ...], creds: Credentials,
                       **kw) -> httpx.Response: ...
        async def error_of(self, resp: httpx.Response) -> tuple: ...

    async def _push_ep(self, ref: Reference) -> tuple[Endpoint, tuple[str, ...]]:
        return await self.endpoint(ref.domain, mirrors=False), (push_scope(ref.remote),)

    async def _fail(self, resp: httpx.Response) -> None:
        err, after = await self.error_of(resp)
        raise push_error(err, after)

    async def blob_exists(self, ref: Reference, creds: Credentials, digest: str) -> bool:
        """HEAD the blob: "Layer already exists" when the registry has it."""
        ep, scopes = await self._push_ep(ref)
        resp = await self.send(ep, "HEAD", f"/v2/{ref.remote}/blobs/{digest}", scopes, creds)
        await resp.aclose()
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        await self._fail(resp)
        return False

    async def mount_blob(self, ref: Reference, creds: Credentials, digest: str, from_repo: str) -> bool:
        """Cross-repository mount from `from_repo` (a path on the same registry, e.g.
        "library/alpine"). True: mounted (201). False: the registry started an upload session
        instead (202), which is cancelled; the caller uploads."""
        ep = await self.endpoint(ref.domain, mirrors=False)
        scopes = (push_scope(ref.remote), pull_scope(from_repo))
        resp = await self.send(ep, "POST", f"/v2/{ref.remote}/blobs/uploads/", scopes, creds,
                               params={"mount": digest, "from": from_repo})
        await resp.aclose()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:
            if location := resp.headers.get("location"):
                cancel = await self.send(ep, "DELETE", _absolute(ep, location), scopes, creds)
                await cancel.aclose()
            return False
        await self._fail(resp)
        return False

    async def upload_blob(self, ref: Reference, creds: Credentials, digest: str, size: int, source: Path,
                          progress: Callable[[int], None] | None = None) -> None:
        """Upload `source` (the exact blob bytes) as `digest`: one PUT up to `chunk_size`,
        PATCH chunks with Content-Range above it, then the closing PUT ?digest=.
        progress(n) gets the bytes sent so far."""
        ep, scopes = await self._push_ep(ref)
        resp = await self.send(ep, "POST", f"/v2/{ref.remote}/blobs/uploads/", scopes, creds)
        await resp.aclose()
        if resp.status_code != 202 or not resp.headers.get("location"):
            await self._fail(resp)
        location = _absolute(ep, resp.headers["location"])
        if size <= self.chunk_size:
            resp = await self.send(ep, "PUT", _with_digest(location, digest), scopes, creds,
                                   headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                                   body=lambda: _read(source, 0, size, progress))
        else:
            for start in range(0, size, self.chunk_size):
                end = min(start + self.chunk_size, size)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                           "Content-Range": f"{start}-{end - 1}"}
                resp = await self.send(ep, "PATCH", location, scopes, creds, headers=headers,
                                       body=lambda s=start, e=end: _read(source, s, e, progress))
                await resp.aclose()
                if resp.status_code != 202:
                    await self._fail(resp)
                location = _absolute(ep, resp.headers.get("location") or location)
            resp = await self.send(ep, "PUT", _with_digest(location, digest), scopes, creds,
                                   headers={"Content-Length": "0"}, body=b"")
        await resp.aclose()
        if resp.status_code not in (201, 204):
            await self._fail(resp)
        stated = resp.headers.get("docker-content-digest")
        if stated and stated != digest:
            raise InvalidParameter(f"registry stored {stated} for blob {digest}")

    async def put_manifest(self, ref: Reference, creds: Credentials, body: bytes, media_type: str) -> str:
        """PUT the manifest under the ref's tag (or digest); returns its digest, checked
        against what the registry says it stored."""
        ep, scopes = await self._push_ep(ref)
        digest = mf.sha256(body)
        resp = await self.send(ep, "PUT", f"/v2/{ref.remote}/manifests/{ref.tag or digest}", scopes, creds,
                               headers={"Content-Type": media_type}, body=body)
        await resp.aclose()
        if resp.status_code not in (200, 201):
            await self._fail(resp)
        stated = resp.headers.get("docker-content-digest")
        if stated and stated != digest:
            raise InvalidParameter(f"registry stored manifest as {stated}, expected {digest}")
        return digest


def _absolute(ep: Endpoint, location: str) -> str:
    """A Location as given: absolute, or relative to the endpoint (its query kept)."""
    return str(httpx.URL(ep.base + "/").join(location))


def _with_digest(location: str, digest: str) -> str:
    url = httpx.URL(location)
    return str(url.copy_merge_params({"digest": digest}))


async def _read(path: Path, start: int, end: int, progress: Callable[[int], None] | None) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            chunk = f.read(min(PIECE, end - pos))
            if not chunk:
                raise InvalidParameter(f"{path}: shorter than its stated size")
            pos += len(chunk)
            yield chunk
            if progress is not None:
                progress(pos)
