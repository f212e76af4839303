"""/containers: create, start, stop, inspect, list, remove, wait, logs, resize."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from shoal.api.app import Route, version_tuple
from shoal.api.container_wire import (
    networks_json, parse_create, ports_json, ports_summary, rfc3339, state_json, status_text, unix_time,
)
from shoal.api.filters import match_labels, match_text, parse_filters, prune_keeper
from shoal.api.http import Request, Response, StreamResponse, json_response
from shoal.api.streams import attach_handler, stream_content_type
from shoal.controller import Controller
from shoal.controller.containers import Containers
from shoal.errors import InvalidParameter, NotFound
from shoal.model import Container
from shoal.runtime import frame
from shoal.runtime.resources import host_config_view
from shoal.runtime.volumes import mounts_json

log = logging.getLogger("shoal.api")

PS_FILTERS = {"id", "name", "status", "label", "network", "ancestor", "exited", "volume"}


def _log_config(given: dict | None) -> dict:
    """As dockerd stores it: the default driver filled in, the options as given."""
    return {"Type": (given or {}).get("Type") or "json-file", "Config": dict((given or {}).get("Config") or {})}


class ContainerRoutes:
    def __init__(self, ctl: Controller, containers: Containers, on_miss: Any = None) -> None:
        self.ctl = ctl
        self.c = containers
        self.on_miss = on_miss  # api.distribution: a create's 404 that was not about the image

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/containers/create", self.create),
            Route("GET", "/containers/json", self.list),
            Route("POST", "/containers/prune", self.prune),
            Route("GET", "/containers/{ref}/json", self.inspect),
            Route("POST", "/containers/{ref}/start", self.start),
            Route("POST", "/containers/{ref}/stop", self.stop),
            Route("POST", "/containers/{ref}/kill", self.kill),
            Route("POST", "/containers/{ref}/restart", self.restart),
            Route("POST", "/containers/{ref}/wait", self.wait),
            Route("POST", "/containers/{ref}/attach", self.attach),
            Route("POST", "/containers/{ref}/resize", self.resize),
            Route("GET", "/containers/{ref}/logs", self.logs),
            Route("DELETE", "/containers/{ref}", self.remove),
        ]

    # -- create/start/stop -------------------------------------------------------------
    async def create(self, req: Request) -> Response:
        spec = parse_create(req.json(), req.arg("name"))
        try:
            rec = await self.c.create(spec)
        except NotFound as exc:
            if self.on_miss is not None and not exc.message.startswith("No such image"):
                self.on_miss(spec.image)
            raise
        return json_response({"Id": rec.id, "Warnings": []}, 201)

    async def start(self, req: Request) -> Response:
        await self.c.start(req.params["ref"])
        return Response(204)

    def _timeout(self, req: Request) -> float | None:
        raw = req.arg("t") or req.arg("timeout")
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise InvalidParameter(f"invalid timeout {raw}: expected seconds") from None

    def _since(self, req: Request) -> float:
        raw = req.arg("since") or "0"
        try:
            return float(raw)
        except ValueError:
            raise InvalidParameter(f"invalid value for 'since': {raw!r} is not a Unix timestamp") from None

    async def stop(self, req: Request) -> Response:
        await self.c.stop(req.params["ref"], self._timeout(req))
        return Response(204)

    async def kill(self, req: Request) -> Response:
        await self.c.kill(req.params["ref"], req.arg("signal") or "KILL")
        return Response(204)

    async def restart(self, req: Request) -> Response:
        await self.c.restart(req.params["ref"], self._timeout(req))
        return Response(204)

    async def remove(self, req: Request) -> Response:
        await self.c.remove(req.params["ref"], force=req.flag("force"), volumes=req.flag("v"))
        return Response(204)

    async def wait(self, req: Request) -> StreamResponse:
        """Headers now, body at exit: the CLI issues this before start for `run -it`."""
        rec = self.c.find(req.params["ref"])
        condition = req.arg("condition")  # dockerd 20.10 takes any other as not-running (measured)
        condition = condition if condition in ("next-exit", "removed") else "not-running"

        async def body() -> AsyncIterator[bytes]:
            code = await self.c.wait(rec.id, condition)
            yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

        return StreamResponse(body())

    async def resize(self, req: Request) -> Response:
        rec = self.c.find(req.params["ref"])
        h, w = req.int_arg("h"), req.int_arg("w")
        await self.c.runtime.resize(rec.id, h, w)
        return Response(200)

    async def attach(self, req: Request):  # noqa: ANN201 - Hijack
        rec = self.c.find(req.params["ref"])
        return await attach_handler(req, self.c, rec)

    async def logs(self, req: Request) -> StreamResponse:
        rec = self.c.find(req.params["ref"])
        want_out, want_err = req.flag("stdout"), req.flag("stderr")
        if not (want_out or want_err):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        entries = self.c.runtime.logs(
            rec.id, follow=req.flag("follow"), since=self._since(req),
            tail=None if req.arg("tail") in ("", "all") else req.int_arg("tail"),
        )
        stamps = req.flag("timestamps")

        async def body() -> AsyncIterator[bytes]:
            async for e in entries:
                if (e.stream == 1 and not want_out) or (e.stream == 2 and not want_err):
                    continue
                data = (e.timestamp + " ").encode() + e.data if stamps else e.data
                yield data if rec.tty else frame(e.stream, data)

        return StreamResponse(body(), content_type=stream_content_type(req, rec.tty))

    # -- inspect/list ------------------------------------------------------------------
    def _netsettings(self, rec: Container, version: str, running: bool) -> dict[str, Any]:
        eps = self.ctl.endpoints_in(rec.id)
        nets = networks_json(rec, eps, self.ctl.networks, version, running)
        sb = self.ctl.sandboxes.get(rec.id)
        out: dict[str, Any] = {
            "SandboxID": rec.id if sb else "", "SandboxKey": (sb.path if sb else "") or "",
            "Ports": ports_json(rec, running), "Networks": nets,
        }
        if version_tuple(version) < (1, 52):
            first = nets.get(rec.network_mode) or next(iter(nets.values()), {})
            out.update({
                "Bridge": "", "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "EndpointID": first.get("EndpointID", ""), "Gateway": first.get("Gateway", ""),
                "GlobalIPv6Address": first.get("GlobalIPv6Address", ""),
                "GlobalIPv6PrefixLen": first.get("GlobalIPv6PrefixLen", 0),
                "IPAddress": first.get("IPAddress", ""), "IPPrefixLen": first.get("IPPrefixLen", 0),
                "IPv6Gateway": first.get("IPv6Gateway", ""), "MacAddress": first.get("MacAddress", ""),
            })
        return out

    def inspect_json(self, rec: Container, version: str) -> dict[str, Any]:
        st = self.c.state(rec.id)
        etc = self.c.etc_root / rec.id
        config = {
            "Hostname": rec.hostname, "Domainname": "", "User": rec.user, "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "Tty": rec.tty, "OpenStdin": rec.open_stdin,
            "StdinOnce": rec.stdin_once, "Env": list(rec.env), "Cmd": list(rec.args), "Image": rec.image,
            "Volumes": rec.config.get("Volumes") or None, "WorkingDir": rec.working_dir, "Entrypoint": None, "OnBuild": None,
            "Labels": dict(rec.labels),
        }
        config.update({k: v for k, v in rec.config.items() if k.startswith("Attach") or (
            k in ("StopSignal", "StopTimeout") and v is not None)})  # dockerd: omitted when unset
        host_config = {"NetworkMode": rec.network_mode, "AutoRemove": rec.auto_remove, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                       **{k: v for k, v in rec.host_config.items() if k not in ("NetworkMode", "AutoRemove")}}
        host_config["LogConfig"] = _log_config(rec.host_config.get("LogConfig"))
        host_config.setdefault("PortBindings", {})
        for key, empty in (("Binds", None), ("VolumesFrom", None), ("VolumeDriver", "")):  # dockerd fills these
            host_config.setdefault(key, empty)
        host_config.setdefault("Runtime", "runc")  # records from before the choice ran runc
        host_config.update(host_config_view(rec.host_config))
        return {
            "Id": rec.id, "Created": rec.created, "Path": rec.args[0], "Args": list(rec.args[1:]),
            "State": self.c.restarts.state_json(rec.id, state_json(st)), "Image": rec.image_id,
            "ResolvConfPath": str(etc / "resolv.conf"), "HostnamePath": str(etc / "hostname"),
            "HostsPath": str(etc / "hosts"), "LogPath": "", "Name": "/" + rec.name,
            "RestartCount": self.c.restarts.count(rec.id),
            "Driver": "overlay", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": "", "ExecIDs": None, "HostConfig": host_config,
            "GraphDriver": {"Name": "overlay", "Data": None}, "Mounts": mounts_json(rec), "Config": config,
            "NetworkSettings": self._netsettings(rec, version, st.running),
        }

    async def inspect(self, req: Request) -> Response:
        rec = self.c.find(req.params["ref"])
        version = req.version or "1.52"
        try:
            return json_response(self.inspect_json(rec, version))
        except Exception:  # noqa: BLE001 - a record from before validation must still show
            log.exception("container %s: stored config cannot be rendered; showing it without", rec.id[:12])
            return json_response(self.inspect_json(scrubbed(rec), version))

    def summary_json(self, rec: Container, version: str) -> dict[str, Any]:
        st = self.c.state(rec.id)
        nets = self._netsettings(rec, version, st.running)["Networks"]
        return {
            "Id": rec.id, "Names": ["/" + rec.name], "Image": rec.image, "ImageID": rec.image_id,
            "Command": " ".join(rec.args), "Created": unix_time(rec.created),
            "Ports": ports_summary(rec, st.running),
            "Labels": dict(rec.labels), "State": "paused" if getattr(st, "paused", False) else st.status,
            **self.c.restarts.summary(rec.id, status_text(st)),
            "HostConfig": {"NetworkMode": rec.network_mode}, "NetworkSettings": {"Networks": nets},
            "Mounts": mounts_json(rec),
        }

    def _summary_or_scrubbed(self, rec: Container, version: str) -> dict[str, Any]:
        """The last guard for `docker ps`: one record that cannot be rendered is logged and
        shown without its stored Config/HostConfig, and every other record still lists."""
        try:
            return self.summary_json(rec, version)
        except Exception:  # noqa: BLE001
            log.exception("container %s: stored config cannot be rendered; listing it without", rec.id[:12])
            return self.summary_json(scrubbed(rec), version)

    async def prune(self, req: Request) -> Response:
        """Every container that is not running, less those the filters keep (Docker's
        `until`, `label`, `label!`); each goes through the same removal as `docker rm`."""
        keep = prune_keeper(req.arg("filters"))
        removed = await self.c.prune(lambda rec: keep(rec.created, rec.labels))
        return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})

    async def list(self, req: Request) -> Response:
        f = parse_filters(req.arg("filters"), PS_FILTERS)
        show_all = req.flag("all")
        limit = req.int_arg("limit", -1)
        out = []
        for rec in sorted(self.c.records.values(), key=lambda r: r.created, reverse=True):
            st = self.c.state(rec.id)
            if not show_all and not st.running and "status" not in f and "exited" not in f:
                continue
            if self._ps_match(rec, st, f):
                out.append(self._summary_or_scrubbed(rec, req.version or "1.52"))
        return json_response(out[:limit] if limit > 0 else out)

    def _ps_match(self, rec: Container, st: Any, f: dict[str, list[str]]) -> bool:
        if "id" in f and not any(rec.id.startswith(v) for v in f["id"]):
            return False
        if "name" in f and not match_text(f["name"], rec.name):
            return False
        if "status" in f and ("paused" if getattr(st, "paused", False) else st.status) not in f["status"]:
            return False
        if "exited" in f and (st.status != "exited" or str(st.exit_code) not in f["exited"]):
            return False
        if "label" in f and not match_labels(f["label"], rec.labels):
            return False
        if "ancestor" in f and rec.image not in f["ancestor"] and rec.image_id not in f["ancestor"]:
            return False
        if "network" in f:
            names = {r.network for r in rec.networks}
            ids = {n.id for n in self.ctl.networks.values() if n.name in names}
            if not any(v in names or v in ids for v in f["network"]):
                return False
        if "volume" in f:  # dockerd: a mount's volume name, source or destination
            return any(v in (m.get("name"), m.get("source"), m.get("destination")) for m in rec.mounts for v in f["volume"])
        return True


def scrubbed(rec: Container) -> Container:
    """The record without what the client sent free-form (kept as given, so it may predate
    today's checks); everything else in a record was typed by the model at create."""
    return dataclasses.replace(rec, config={}, host_config={}, labels={
        str(k): str(v) for k, v in (rec.labels.items() if isinstance(rec.labels, dict) else ())})


__all__ = ["ContainerRoutes", "rfc3339", "scrubbed"]
