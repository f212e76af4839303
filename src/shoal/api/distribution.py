"""Registry verbs of the Engine API: pull (`POST /images/create?fromImage=`), push, `/auth`.

A pull resolves its manifest before the response starts, so that a missing tag or repository,
a wrong password or a registry that is down is the plain HTTP error the CLI prints as
"Error response from daemon: ..." (as dockerd: its first line goes out only after the
manifest came). From then on the work runs as its own task feeding a queue, the response
drains the queue, and an error travels in the stream as dockerd's `errorDetail`. A client
that goes away cancels the task: downloaded blobs and partial files stay for the next pull.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from shoal.api.app import Route
from shoal.api.http import Request, Response, StreamResponse, json_response
from shoal.api.schemas import AUTH_CONFIG
from shoal.errors import InvalidParameter, NotFound, ShoalError
from shoal.registry import (
    Credentials,
    decode_registry_auth,
    from_api,
    parse,
    parse_platform,
)
from shoal.runtime.progress import encode, error_message

MISS_WINDOW = 10.0  # seconds between a create's 404 and the CLI's pull
Work = Callable[[Callable[[dict], None]], Awaitable[Any]]


def stream_task(work: Work, first: list[dict] | None = None) -> StreamResponse:
    """Run `work(emit)` as a task; the response yields what it emits, then its error if any."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for msg in first or ():
        queue.put_nowait(msg)
    task = asyncio.ensure_future(work(queue.put_nowait))

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    # what else is queued goes in the same write: a layer's progress is ~100
                    # lines a MiB, and one HTTP chunk each would cost more than the bytes
                    batch = [encode(getter.result())]
                    while not queue.empty() and len(batch) < 256:
                        batch.append(encode(queue.get_nowait()))
                    yield b"".join(batch)
                    continue
                getter.cancel()
                while not queue.empty():
                    yield encode(queue.get_nowait())
                if not task.cancelled() and task.exception() is not None:
                    yield encode(error_message(_text(task.exception())))
                return
        finally:
            if not task.done():
                task.cancel()

    return StreamResponse(body())


def _text(exc: BaseException | None) -> str:
    return str(exc) if isinstance(exc, ShoalError) else f"{type(exc).__name__}: {exc}"


class DistributionRoutes:
    """Holds the daemon's Puller and Pusher (runtime.pull / runtime.push) and the registry."""

    def __init__(self, puller: Any, pusher: Any, registry: Any, images: Any) -> None:
        self.puller = puller
        self.pusher = pusher
        self.registry = registry
        self.images = images
        self._misses: dict[str, float] = {}  # image reference -> when a create with it met another 404

    def note_miss(self, image: str) -> None:
        """The docker CLI pulls the image after ANY 404 of a create (a missing network too)
        and then creates again; dockerd finds such networks only at start, so its 404 there
        is always the image's. The pull that follows is answered from the local image
        (`pull_instead`), so the retried create shows the user the real error, not a pull's."""
        now = time.monotonic()
        self._misses = {k: t for k, t in self._misses.items() if now - t < MISS_WINDOW}
        self._misses[image] = now

    def _answered_locally(self, ref: Any) -> StreamResponse | None:
        seen = next((t for k, t in self._misses.items() if self._same(k, ref)), None)
        if seen is None or time.monotonic() - seen >= MISS_WINDOW:
            return None
        try:
            self.images.get(ref.familiar)
        except NotFound:
            return None
        self._misses = {k: t for k, t in self._misses.items() if not self._same(k, ref)}
        status = f"Status: Image is up to date for {ref.familiar}"
        return stream_task(lambda emit: asyncio.sleep(0), [{"status": status}])

    @staticmethod
    def _same(text: str, ref: Any) -> bool:
        try:
            return from_api(text, None) == ref
        except ShoalError:
            return False

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/images/{name:path}/push", self.push),
            Route("POST", "/auth", self.auth),
        ]

    async def pull(self, req: Request) -> StreamResponse:
        ref = from_api(req.arg("fromImage"), req.arg("tag") or None)
        local = self._answered_locally(ref)
        if local is not None:
            return local
        creds = decode_registry_auth(req.headers.get("x-registry-auth", ""))
        platform = parse_platform(req.arg("platform")) if req.arg("platform") else None
        got = await self.puller.resolve(ref, creds, platform)
        return stream_task(lambda emit: self.puller.pull(got, emit))

    async def push(self, req: Request) -> StreamResponse:
        name = req.params["name"]
        base = parse(name, default_tag=False)
        if base.digest:
            raise InvalidParameter(f"cannot push a digest reference: {name}")
        creds = decode_registry_auth(req.headers.get("x-registry-auth", ""))
        tag = req.arg("tag") or base.tag or ""
        first = [{"status": f"The push refers to repository [{base.name}]"}]

        async def work(emit: Callable[[dict], None]) -> None:
            tags = [tag] if tag else self._tags_of(base.familiar_name)
            if not tags:
                raise NotFound(f"An image does not exist locally with the tag: {base.familiar_name}")
            for each in tags:
                ref = base.with_tag(each)
                try:
                    image = await asyncio.to_thread(self.images.get, ref.familiar)
                except NotFound:
                    raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") from None
                await self.pusher.push(ref, creds, image, emit)

        return stream_task(work, first)

    def _tags_of(self, familiar_name: str) -> list[str]:
        out = []
        for image in self.images.list():
            for name in image.repo_tags:
                repo, _, tag = name.rpartition(":")
                if repo == familiar_name:
                    out.append(tag)
        return sorted(out)

    async def auth(self, req: Request) -> Response:
        body = req.json()
        if body is not None:
            AUTH_CONFIG.check(body)
        if not isinstance(body, dict):
            raise InvalidParameter("invalid auth configuration: expected a JSON object")
        status = await self.registry.login(body.get("serveraddress") or "", Credentials.from_json(body))
        return json_response({"Status": status, "IdentityToken": ""})
