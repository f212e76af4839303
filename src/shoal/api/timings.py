"""GET /shoal/timings (shoal only, not Docker's API): where the daemon's time went.

Cumulative totals since the start, never reset, so any number of readers take
differences (bench/ does, around each timed operation). The numbers come from
daemon.timings; this route only serves them and is itself left out of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.api.app import Route
from shoal.api.http import Request, Response, json_response


class TimingRoutes:
    def __init__(self, snapshot: Callable[[], dict[str, Any]] | None) -> None:
        self.snapshot = snapshot

    def routes(self) -> list[Route]:
        return [Route("GET", "/shoal/timings", self.timings, timed=False)]

    async def timings(self, req: Request) -> Response:
        return json_response(self.snapshot() if self.snapshot is not None else {})
