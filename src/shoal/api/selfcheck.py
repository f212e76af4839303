"""shoal's own routes for the invariant checker (not Docker's API): `shoal system check`.

GET  /shoal/check          every difference between the store and the other sides
POST /shoal/check/repair   make the kernel, firewall, ports and DNS match the store, then
                           check again; the answer lists what was done and what is left
"""

from __future__ import annotations

from shoal.api.app import Route
from shoal.api.http import Request, Response, json_response
from shoal.controller.containers import Containers
from shoal.controller.invariants import areas, check
from shoal.controller.repair import repair


class CheckRoutes:
    def __init__(self, containers: Containers) -> None:
        self.containers = containers

    def routes(self) -> list[Route]:
        return [Route("GET", "/shoal/check", self.check), Route("POST", "/shoal/check/repair", self.repair)]

    async def check(self, req: Request) -> Response:
        found = await check(self.containers)
        return json_response({"Findings": [f.to_json() for f in found], "Areas": areas(found)})

    async def repair(self, req: Request) -> Response:
        done = await repair(self.containers)
        left = await check(self.containers)
        return json_response({"Repaired": done, "Findings": [f.to_json() for f in left], "Areas": areas(left)})
