"""Swarm's endpoints, answered as dockerd 20.10 answers them on a node in no swarm.

Clients' set-up and clean-up code asks `/swarm`, `/services`, `/nodes`... and takes
dockerd's 503 ("not a swarm manager", "not part of a swarm") to mean "no swarm here, go
on"; a 404 reads as a broken daemon. shoal never joins a swarm, so these are constant.
Joining one (`swarm init`, `swarm join`) is out of scope: a 501 saying so. Messages and
codes measured against dockerd 20.10.24 (Debian docker.io), 2026-12-01.
"""

from __future__ import annotations

from shoal.api.app import Route
from shoal.api.http import Request, Response, json_response
from shoal.errors import NotImplementedYet

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
               "this node to swarm and try again.")
NOT_IN_SWARM = "This node is not part of a swarm"

# the swarm object routes dockerd 20.10 has (api/server/router/swarm)
_ROUTES = [
    *[("GET", f"/{k}") for k in ("nodes", "services", "tasks", "secrets", "configs")],
    *[("GET", f"/{k}/{{id}}") for k in ("nodes", "services", "tasks", "secrets", "configs")],
    *[("DELETE", f"/{k}/{{id}}") for k in ("nodes", "services", "secrets", "configs")],
    *[("POST", f"/{k}/create") for k in ("services", "secrets", "configs")],
    *[("POST", f"/{k}/{{id}}/update") for k in ("nodes", "services", "secrets", "configs")],
    ("GET", "/services/{id}/logs"), ("GET", "/tasks/{id}/logs"),
]


async def not_manager(req: Request) -> Response:
    return json_response({"message": NOT_MANAGER}, 503)


async def not_in_swarm(req: Request) -> Response:
    return json_response({"message": NOT_IN_SWARM}, 503)


async def not_supported(req: Request) -> Response:
    raise NotImplementedYet("swarm mode is not supported by shoal: it runs single engines and clusters "
                            "through --cluster-store (overlay networks) instead")


def routes() -> list[Route]:
    out = [Route("GET", "/swarm", not_manager), Route("POST", "/swarm/leave", not_in_swarm),
           Route("POST", "/swarm/init", not_supported), Route("POST", "/swarm/join", not_supported),
           Route("POST", "/swarm/update", not_manager), Route("GET", "/swarm/unlockkey", not_manager),
           Route("POST", "/swarm/unlock", not_manager)]
    return out + [Route(method, path, not_manager) for method, path in _ROUTES]
