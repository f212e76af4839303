"""`docker save`, `docker load` and `docker image prune`: images as files, and their clean-up.

A save is written by the store into a temporary file beside its data (the store's writer
is synchronous and seeks nowhere, but a tar of several GiB must not sit in memory), then
streamed out and removed; a load reads the request body to such a file first, for the same
reason and because a tar's manifest.json may come after the layers it names.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from shoal.api.app import Route
from shoal.api.filters import match_labels, parse_filters, parse_until
from shoal.api.http import Request, Response, StreamResponse, json_response
from shoal.errors import InvalidParameter

CHUNK = 1 << 20
IMAGE_PRUNE_FILTERS = {"dangling", "until", "label", "label!"}


class ImageFileRoutes:
    def __init__(self, images: Any, used_ids: Any) -> None:
        self.images = images
        self.used_ids = used_ids  # () -> set of image ids containers use

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/images/get", self.save_many),
            Route("GET", "/images/{name:path}/get", self.save_one),
            Route("POST", "/images/load", self.load, stream_body=True),
            Route("POST", "/images/prune", self.prune),
        ]

    async def save_many(self, req: Request) -> StreamResponse:
        names = req.query.get("names", [])
        if not names:
            raise InvalidParameter("no image names given: use names=IMAGE (repeatable)")
        return await self._save(names)

    async def save_one(self, req: Request) -> StreamResponse:
        return await self._save([req.params["name"]])

    async def _save(self, names: list[str]) -> StreamResponse:
        for name in names:  # a missing image is a 404 before the tar starts, as dockerd
            await asyncio.to_thread(self.images.get, name)
        out = tempfile.TemporaryFile(dir=self.images.root, prefix=".save-")  # noqa: SIM115 - closed by the body
        try:
            await asyncio.to_thread(self.images.save, names, out)
            out.seek(0)
        except BaseException:
            out.close()
            raise

        async def body() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(out.read, CHUNK):
                    yield chunk
            finally:
                out.close()

        return StreamResponse(body(), content_type="application/x-tar")

    async def load(self, req: Request) -> StreamResponse:
        with tempfile.TemporaryFile(dir=self.images.root, prefix=".load-") as src:
            async for chunk in req.chunks():
                await asyncio.to_thread(src.write, chunk)
            src.seek(0)
            lines = await asyncio.to_thread(self.images.load, src)

        async def body() -> AsyncIterator[bytes]:
            for line in lines:
                yield json.dumps({"stream": line + "\n"}).encode() + b"\n"

        return StreamResponse(body())

    async def prune(self, req: Request) -> Response:
        f = parse_filters(req.arg("filters"), IMAGE_PRUNE_FILTERS)
        dangling = (f.get("dangling") or ["true"])[0].lower()
        if dangling not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"Invalid filter 'dangling=[{dangling}]'")
        until = min((parse_until(v) for v in f.get("until", [])), default=None)

        def labels_pass(labels: dict[str, str]) -> bool:
            if "label" in f and not match_labels(f["label"], labels):
                return False
            return not ("label!" in f and any(match_labels([p], labels) for p in f["label!"]))

        used = self.used_ids()
        report = await asyncio.to_thread(
            self.images.prune, dangling in ("true", "1"), until=until, labels=labels_pass,
            in_use=lambda image: image.id in used)
        return json_response(report)
