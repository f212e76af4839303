"""/containers/{id}/rename, /pause, /unpause, /update: dockerd 20.10's statuses and messages.

Pause freezes the container's processes through its OCI runtime (`runc pause`: the freezer
cgroup); the container stays running (inspect: Running and Paused, Status "paused"), and a
stop or kill of a paused container works, as in dockerd (runtime.Runtime.kill thaws it).
Update takes a container.UpdateConfig (resources and restart policy, controller.updates).
"""

from __future__ import annotations

from shoal.api.app import Route
from shoal.api.checks import check_restart
from shoal.api.http import Request, Response, json_response
from shoal.api.schemas import UPDATE_CONFIG
from shoal.controller.containers import Containers
from shoal.controller.updates import update_container
from shoal.errors import InvalidParameter
from shoal.runtime import resources


class LifecycleRoutes:
    def __init__(self, containers: Containers) -> None:
        self.c = containers

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/containers/{ref}/rename", self.rename),
            Route("POST", "/containers/{ref}/pause", self.pause),
            Route("POST", "/containers/{ref}/unpause", self.unpause),
            Route("POST", "/containers/{ref}/update", self.update),
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

    async def update(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise InvalidParameter("invalid update config: expected a JSON object")
        UPDATE_CONFIG.check(body)
        self.c.find(req.params["ref"])  # 404 before the checks, as dockerd looks it up first
        if body.get("PidsLimit") is not None and body["PidsLimit"] <= 0:
            body["PidsLimit"] = 0  # 0 and below: unlimited (dockerd's update route)
        resources.check(body, update=True)
        if (body.get("RestartPolicy") or {}).get("Name"):
            check_restart(body["RestartPolicy"], False)
        warnings = await update_container(self.c, req.params["ref"], body)
        return json_response({"Warnings": warnings})
