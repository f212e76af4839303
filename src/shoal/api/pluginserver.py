"""libnetwork's remote driver and IPAM protocols, served to a dockerd (`shoald --serve-plugins`).

dockerd finds a legacy plugin NAME as the socket `/run/docker/plugins/NAME.sock` (or a
`NAME.spec` file naming a URL in /etc/docker/plugins) and POSTs JSON to `/<Method>`.
One socket per plugin name, one App each, on shoal's HTTP server:

    shoal-bridge.sock   NetworkDriver  -> shoal's bridge driver
    shoal-overlay.sock  NetworkDriver  -> shoal's overlay driver, global scope (needs a cluster
                                          store for shoald and one for dockerd: controller.served)
    shoal-ipam.sock     IpamDriver     -> an allocator over shoal's default pools

Errors travel in the body of a 200 answer, `{"Err": ...}` for the network driver and
`{"Error": ...}` for IPAM (libnetwork's two response structs); a body that is not JSON is
a 400 with `{"Err": ...}`, which dockerd's plugin client reads for any non-200 answer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shoal.api.app import App, Route
from shoal.api.http import Request, Response, json_response, serve_unix
from shoal.controller.served import SERVED_GLOBAL, SERVED_LOCAL, ServedPlugins
from shoal.errors import InvalidParameter, ShoalError

log = logging.getLogger("shoal.plugins")
DEFAULT_DIR = "/run/docker/plugins"
DRIVERS = {"shoal-bridge": "bridge", "shoal-overlay": "overlay"}  # no routed driver yet
IPAM = "shoal-ipam"
MIME = "application/vnd.docker.plugins.v1+json"

Verb = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _answer(obj: dict[str, Any], status: int = 200) -> Response:
    out = json_response(obj, status)
    out.content_type = MIME
    return out


def _route(method: str, verb: Verb, err_key: str) -> Route:
    """POST /<method>: the body (possibly empty) as a dict into `verb`; a ShoalError is the
    protocol's error field, not an HTTP status (dockerd reads the field only on a 200)."""

    async def handler(req: Request) -> Response:
        log.debug("%s %s", method, req.body[:2000])  # (App has read it)
        try:
            body = json.loads(req.body) if req.body.strip() else {}
        except ValueError as exc:
            return _answer({"Err": f"invalid JSON: {exc}"}, 400)
        if not isinstance(body, dict):
            return _answer({"Err": "the body must be a JSON object"}, 400)
        try:
            return _answer(await verb(body))
        except ShoalError as exc:
            log.info("%s failed: %s", method, exc.message)
            return _answer({err_key: exc.message})
        except Exception as exc:  # noqa: BLE001 - dockerd shows the field; the log has the trace
            log.exception("%s failed", method)
            return _answer({err_key: f"shoal: internal error: {exc}"})

    return Route("POST", f"/{method}", handler)


def _s(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidParameter(f"{key} must be a string")
    return value


class DriverPlugin:
    """One served network driver: `NetworkDriver.*` for the plugin `name`."""

    def __init__(self, served: ServedPlugins, name: str) -> None:
        self.served, self.name = served, name

    def routes(self) -> list[Route]:
        verbs: dict[str, Verb] = {
            "Plugin.Activate": self.activate, "NetworkDriver.GetCapabilities": self.capabilities,
            "NetworkDriver.CreateNetwork": self.create_network, "NetworkDriver.DeleteNetwork": self.delete_network,
            "NetworkDriver.CreateEndpoint": self.create_endpoint,
            "NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "NetworkDriver.EndpointOperInfo": self.oper_info, "NetworkDriver.Join": self.join,
            "NetworkDriver.Leave": self.leave,
            "NetworkDriver.AllocateNetwork": self.swarm_only, "NetworkDriver.FreeNetwork": self.nothing,
            "NetworkDriver.ProgramExternalConnectivity": self.nothing,
            "NetworkDriver.RevokeExternalConnectivity": self.nothing,
            "NetworkDriver.DiscoverNew": self.nothing, "NetworkDriver.DiscoverDelete": self.nothing,
        }
        return [_route(m, v, "Err") for m, v in verbs.items()]

    async def activate(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Implements": ["NetworkDriver"]}

    async def capabilities(self, body: dict[str, Any]) -> dict[str, Any]:
        """An overlay is global-scope data for dockerd: it keeps the network in its cluster
        store (`--cluster-store`), so every host's dockerd knows it by one NetworkID, which
        is the id of one global network in shoal's cluster store (controller.served)."""
        scope = "global" if DRIVERS[self.name] == "overlay" else "local"
        return {"Scope": scope, "ConnectivityScope": scope}

    async def create_network(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.served.create_network(self.name, _s(body, "NetworkID"), body.get("Options"),
                                         body.get("IPv4Data"), body.get("IPv6Data"))
        return {}

    async def delete_network(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.served.delete_network(_s(body, "NetworkID"))
        return {}

    async def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        filled = await self.served.create_endpoint(_s(body, "NetworkID"), _s(body, "EndpointID"),
                                                   body.get("Interface"))
        return {"Interface": filled} if filled else {}

    async def delete_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.served.delete_endpoint(_s(body, "NetworkID"), _s(body, "EndpointID"))
        return {}

    async def oper_info(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Value": self.served.endpoint_info(_s(body, "NetworkID"), _s(body, "EndpointID"))}

    async def join(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.served.join(_s(body, "NetworkID"), _s(body, "EndpointID"))

    async def leave(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.served.leave(_s(body, "NetworkID"), _s(body, "EndpointID"))
        return {}

    async def swarm_only(self, body: dict[str, Any]) -> dict[str, Any]:
        raise InvalidParameter(f"{self.name} does not serve swarm-scope networks")

    async def nothing(self, body: dict[str, Any]) -> dict[str, Any]:
        return {}


class IpamPlugin:
    """`IpamDriver.*` for the plugin shoal-ipam."""

    def __init__(self, served: ServedPlugins) -> None:
        self.served = served

    def routes(self) -> list[Route]:
        verbs: dict[str, Verb] = {
            "Plugin.Activate": self.activate, "IpamDriver.GetCapabilities": self.capabilities,
            "IpamDriver.GetDefaultAddressSpaces": self.spaces, "IpamDriver.RequestPool": self.request_pool,
            "IpamDriver.ReleasePool": self.release_pool, "IpamDriver.RequestAddress": self.request_address,
            "IpamDriver.ReleaseAddress": self.release_address,
        }
        return [_route(m, v, "Error") for m, v in verbs.items()]

    async def activate(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Implements": ["IpamDriver"]}

    async def capabilities(self, body: dict[str, Any]) -> dict[str, Any]:
        """No replay: shoald replays from its own store at start (ServedPlugins.restore)."""
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    async def spaces(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": SERVED_LOCAL, "GlobalDefaultAddressSpace": SERVED_GLOBAL}

    async def request_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        pool_id, subnet = await self.served.ipam_request_pool(
            _s(body, "AddressSpace"), _s(body, "Pool"), _s(body, "SubPool"), body.get("Options"),
            body.get("V6") is True)
        return {"PoolID": pool_id, "Pool": subnet, "Data": {}}

    async def release_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.served.ipam_release_pool(_s(body, "PoolID"))
        return {}

    async def request_address(self, body: dict[str, Any]) -> dict[str, Any]:
        cidr = await self.served.ipam_request_address(_s(body, "PoolID"), _s(body, "Address"), body.get("Options"))
        return {"Address": cidr, "Data": {}}

    async def release_address(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.served.ipam_release_address(_s(body, "PoolID"), _s(body, "Address"))
        return {}


def plugin_apps(served: ServedPlugins) -> dict[str, App]:
    """Plugin name -> its App (what `serve` listens with; tests call them directly)."""
    apps = {name: App(DriverPlugin(served, name).routes()) for name in DRIVERS}
    apps[IPAM] = App(IpamPlugin(served).routes())
    return apps


async def serve(served: ServedPlugins, directory: str) -> list[tuple[Any, str]]:
    """Listen on DIRECTORY/NAME.sock for each plugin; -> (server, path) pairs to close."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    out = []
    for name, app in plugin_apps(served).items():
        path = os.path.join(directory, f"{name}.sock")
        if os.path.exists(path):
            os.unlink(path)  # we hold the data-root lock; a plugin socket of that name is a leftover
        out.append((await serve_unix(app, path), path))
        os.chmod(path, 0o660)
        log.info("plugin %s listening on unix://%s", name, path)
    return out
