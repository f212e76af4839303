"""The route table in one place, API version handling and the common headers.

Routes are served bare and under `/v{version}`; a version outside [MIN, MAX] is a 400
with Docker's wording.  Handlers are thin: parse, call the controller, render.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from shoal import __version__
from shoal.api.errors import error_response
from shoal.api.http import MAX_JSON_BODY, Hijack, Request, Response, StreamResponse, json_response
from shoal.errors import InvalidParameter, ShoalError

log = logging.getLogger("shoal.api")
MIN_API_VERSION = "1.24"
MAX_API_VERSION = "1.52"
VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)$")

Result = Response | StreamResponse | Hijack
Handler = Callable[[Request], Awaitable[Result]]


def version_tuple(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    stream_body: bool = False  # the handler reads the body itself (Request.chunks), unbounded
    timed: bool = True  # counted in the request clock (not the route that reads the clock)

    def compile(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", self.pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        return re.compile(f"^{regex}/?$")


class RequestClock(Protocol):
    """Times a request from its route's match to its answer (daemon.timings.Timings)."""

    def start(self, category: str) -> Any: ...

    def stop(self, frame: Any) -> None: ...


class App:
    """Dispatches a Request to the first matching route; all errors via api.errors."""

    def __init__(self, routes: list[Route], clock: RequestClock | None = None) -> None:
        self._routes = [(r, r.compile()) for r in routes]
        self._clock = clock

    @staticmethod
    def response_headers() -> list[tuple[str, str]]:
        return [
            ("Api-Version", MAX_API_VERSION),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            ("Server", f"Docker/{__version__} (linux; shoal)"),
        ]

    async def __call__(self, req: Request) -> Result:
        result = await self._dispatch(req)
        if log.isEnabledFor(logging.DEBUG):
            status = getattr(result, "status", 101)
            log.debug("%s %s?%s -> %s", req.method, req.path, "&".join(req.query), status)
            if isinstance(result, Response) and status >= 400:
                log.debug("  %s", result.body[:300])
        return result

    async def _dispatch(self, req: Request) -> Result:
        try:
            self._strip_version(req)
            route = self._match(req)
            if route is None:
                return json_response({"message": "page not found"}, 404)
            if self._clock is None or not route.timed:
                return await self._handle(route, req)
            frame = self._clock.start("api")
            try:
                return await self._handle(route, req)
            finally:
                self._clock.stop(frame)
        except ShoalError as exc:
            return error_response(exc)
        except ConnectionError:
            raise  # the client went away mid-request: nobody to answer
        except Exception as exc:  # noqa: BLE001 - mapped to 500 in one place
            return error_response(exc)

    @staticmethod
    async def _handle(route: Route, req: Request) -> Result:
        if not route.stream_body:
            await req.read_body(MAX_JSON_BODY)
        return await route.handler(req)

    def _strip_version(self, req: Request) -> None:
        m = VERSION_RE.match(req.path)
        if not m:
            req.version = MAX_API_VERSION
            return
        version, req.path = m.group(1), m.group(2)
        if version_tuple(version) < version_tuple(MIN_API_VERSION):
            raise InvalidParameter(
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
        if version_tuple(version) > version_tuple(MAX_API_VERSION):
            raise InvalidParameter(
                f"client version {version} is too new. Maximum supported API version is {MAX_API_VERSION}"
            )
        req.version = version

    def _match(self, req: Request) -> Route | None:
        method = "GET" if req.method == "HEAD" else req.method
        for route, regex in self._routes:
            m = regex.match(req.path)
            if m and (route.method == req.method or route.method == method):
                req.params = m.groupdict()
                return route
        return None
