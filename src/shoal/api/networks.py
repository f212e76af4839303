"""/networks: thin handlers over the controller."""

from __future__ import annotations

from typing import Any

from shoal.api.app import Route
from shoal.api.filters import match_labels, match_text, parse_filters, prune_keeper
from shoal.api.http import Request, Response, json_response
from shoal.api.checks import no_nul
from shoal.api.container_wire import endpoint_request
from shoal.api.gotypes import Struct
from shoal.api.schemas import NETWORK_CONNECT, NETWORK_DISCONNECT
from shoal.api.wire import network_json, parse_network_create
from shoal.controller import Controller
from shoal.errors import InvalidParameter, NotFound
from shoal.model import Network

LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


class NetworkRoutes:
    def __init__(self, ctl: Controller, containers: Any = None) -> None:
        self.ctl = ctl
        self.containers = containers

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/networks", self.list),
            Route("POST", "/networks/create", self.create),
            Route("POST", "/networks/prune", self.prune),
            Route("GET", "/networks/{ref}", self.inspect),
            Route("DELETE", "/networks/{ref}", self.remove),
            Route("POST", "/networks/{ref}/connect", self.connect),
            Route("POST", "/networks/{ref}/disconnect", self.disconnect),
        ]

    def containers_of(self, net: Network) -> dict[str, Any]:
        return self.ctl.network_containers(net)

    async def list(self, req: Request) -> Response:
        filters = parse_filters(req.arg("filters"), LIST_FILTERS)
        nets = [n for n in self.ctl.list_networks() if self._matches(n, filters)]
        return json_response([network_json(n, req.version or "1.52") for n in nets])

    def _matches(self, net: Network, f: dict[str, list[str]]) -> bool:
        if "driver" in f and net.driver not in f["driver"]:
            return False
        if "name" in f and not match_text(f["name"], net.name):
            return False
        if "id" in f and not match_text(f["id"], net.id):
            return False
        if "label" in f and not match_labels(f["label"], net.labels):
            return False
        if "scope" in f and net.scope not in f["scope"]:
            return False
        if "type" in f:
            for t in f["type"]:
                if t not in ("custom", "builtin"):
                    raise InvalidParameter(f"invalid filter: 'type'='{t}'")
            kind = "builtin" if net.predefined else "custom"
            if kind not in f["type"]:
                return False
        if "dangling" in f:
            return self._dangling_ok(net, f["dangling"])
        return True

    def _dangling_ok(self, net: Network, values: list[str]) -> bool:
        wanted = set()
        for v in values:
            if v.lower() in ("true", "1"):
                wanted.add(True)
            elif v.lower() in ("false", "0"):
                wanted.add(False)
            else:
                raise InvalidParameter(f"invalid filter: 'dangling'='{v}'")
        dangling = not net.predefined and not self.ctl.endpoints_of(net.id)
        return dangling in wanted

    async def inspect(self, req: Request) -> Response:
        net = self.ctl.find_network(req.params["ref"])
        scope = req.arg("scope")
        if scope and scope != net.scope:
            raise NotFound(f"network {req.params['ref']} not found")
        status = await self.ctl.ipam_status(net)
        body = network_json(net, req.version or "1.52", self.containers_of(net), status,
                            await self.ctl.blocks_of(net))
        return json_response(body)

    async def create(self, req: Request) -> Response:
        spec = parse_network_create(req.json())
        net = await self.ctl.create_network(spec)
        return json_response({"Id": net.id, "Warning": ""}, 201)

    async def remove(self, req: Request) -> Response:
        await self.ctl.delete_network(req.params["ref"])
        return Response(204)

    def _container_ref(self, body: Any, schema: Struct) -> str:
        """Type-checked like dockerd's decoder would, so the handler never meets a wrong kind."""
        if body is not None:
            schema.check(body)
            no_nul(body)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidParameter("a container name or id is required in the request body (\"Container\")")
        if self.containers is None:
            raise InvalidParameter("containers are not available on this daemon")
        return body["Container"]

    async def connect(self, req: Request) -> Response:
        body = req.json()
        ref = self._container_ref(body, NETWORK_CONNECT)
        cfg = endpoint_request(req.params["ref"], body.get("EndpointConfig"))
        await self.containers.connect(ref, req.params["ref"], cfg)
        return Response(200)

    async def disconnect(self, req: Request) -> Response:
        body = req.json()
        ref = self._container_ref(body, NETWORK_DISCONNECT)
        await self.containers.disconnect(ref, req.params["ref"], force=bool(body.get("Force")))
        return Response(200)

    async def prune(self, req: Request) -> Response:
        keep = prune_keeper(req.arg("filters"))
        removed = await self.ctl.prune(lambda net: keep(net.created, net.labels))
        return json_response({"NetworksDeleted": removed})
