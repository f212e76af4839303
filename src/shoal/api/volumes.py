"""/volumes: create, list, inspect, remove, prune (the local driver), as dockerd answers."""

from __future__ import annotations

import json

from shoal.api.app import Route, version_tuple
from shoal.api.checks import no_nul
from shoal.api.filters import match_labels, match_text, parse_filters, prune_keeper
from shoal.api.http import Request, Response, json_response
from shoal.api.schemas import VOLUME_CREATE
from shoal.controller.volumes import Volumes
from shoal.errors import InvalidParameter

LIST_FILTERS = {"dangling", "driver", "label", "name"}


def _bool_filter(key: str, values: list[str]) -> set[bool]:
    out = set()
    for v in values:
        if v.lower() not in ("true", "1", "false", "0"):
            raise InvalidParameter(f"invalid filter '{key}={v}'")
        out.add(v.lower() in ("true", "1"))
    return out


class VolumeRoutes:
    def __init__(self, volumes: Volumes) -> None:
        self.v = volumes

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/volumes", self.list),
            Route("POST", "/volumes/create", self.create),
            Route("POST", "/volumes/prune", self.prune),
            Route("GET", "/volumes/{name}", self.inspect),
            Route("DELETE", "/volumes/{name}", self.remove),
        ]

    async def list(self, req: Request) -> Response:
        f = parse_filters(req.arg("filters"), LIST_FILTERS)
        dangling = _bool_filter("dangling", f["dangling"]) if "dangling" in f else None
        out = []
        for rec in self.v.list():
            if dangling is not None and (not self.v.users(rec["name"])) not in dangling:
                continue
            if "name" in f and not match_text(f["name"], rec["name"]):
                continue
            if "driver" in f and rec.get("driver", "local") not in f["driver"]:
                continue
            if "label" in f and not match_labels(f["label"], rec.get("labels") or {}):
                continue
            out.append(self.v.json(rec))
        return json_response({"Volumes": out, "Warnings": None})

    async def create(self, req: Request) -> Response:
        body = req.json() or {}
        VOLUME_CREATE.check(body)
        no_nul(body)
        rec = await self.v.create(body.get("Name") or "", body.get("Driver") or "", body.get("DriverOpts"),
                                  body.get("Labels"))
        return json_response(self.v.json(rec), 201)

    async def inspect(self, req: Request) -> Response:
        return json_response(self.v.json(self.v.get(req.params["name"])))

    async def remove(self, req: Request) -> Response:
        await self.v.remove(req.params["name"], force=req.flag("force"))
        return Response(204)

    async def prune(self, req: Request) -> Response:
        """API < 1.42 (dockerd 20.10) prunes every unused volume; later ones only anonymous
        volumes unless the `all` filter says otherwise, as dockerd 23 does."""
        try:
            raw = json.loads(req.arg("filters")) if req.arg("filters") else {}
        except ValueError:
            raise InvalidParameter(f"invalid filter: {req.arg('filters')}") from None
        if not isinstance(raw, dict):
            raise InvalidParameter(f"invalid filter: {req.arg('filters')}")
        all_values = raw.pop("all", None)
        everything = version_tuple(req.version or "1.52") < (1, 42)
        if all_values is not None:
            values = list(all_values) if isinstance(all_values, (list, dict)) else [str(all_values)]
            everything = True in _bool_filter("all", [str(v) for v in values])
        keep = prune_keeper(json.dumps(raw) if raw else None)
        gone, space = await self.v.prune(keep, anonymous_only=not everything)
        return json_response({"VolumesDeleted": gone or None, "SpaceReclaimed": space})
