"""/containers/{id}/rename, /pause, /unpause: dockerd 20.10's statuses and messages.

Pause freezes the container's processes through its OCI runtime (`runc pause`: the freezer
cgroup); the container stays running (inspect: Running and Paused, Status "paused"), and a
stop or kill of a paused container works, as in dockerd (runtime.Runtime.kill thaws it).
"""

from __future__ import annotations

from shoal.api.app import Route
from shoal.api.http import Request, Response
from shoal.controller.containers import Containers


class LifecycleRoutes:
    def __init__(self, containers: Containers) -> None:
        self.c = containers

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/containers/{ref}/rename", self.rename),
            Route("POST", "/containers/{ref}/pause", self.pause),
            Route("POST", "/containers/{ref}/unpause", self.unpause),
        ]

    async def rename(self, req: Request) -> Response:
        await self.c.rename(req.params["ref"], req.arg("name"))
        return Response(204)

    async def pause(self, req: Request) -> Response:
        await self.c.runtime.pause(self.c.find(req.params["ref"]).id)
        return Response(204)

    async def unpause(self, req: Request) -> Response:
        await self.c.runtime.unpause(self.c.find(req.params["ref"]).id)
        return Response(204)
