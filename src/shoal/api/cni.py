"""shoal's own routes behind the `shoal-cni` plugin (not Docker's API).

POST /shoal/cni/add     {Network, ContainerID, Netns, IfName, Mac?, IPs?,
                         PortMappings?: [{hostPort, containerPort, protocol?, hostIP?}]}
                                                                       -> a CNI result
POST /shoal/cni/del     {ContainerID, IfName, Network?}                -> {Detached}
POST /shoal/cni/check   {Network, ContainerID, IfName}                 -> {Problems}
POST /shoal/cni/gc      {Network, Valid: [{ContainerID, IfName}]}      -> {Detached}
GET  /shoal/cni/status?network=NAME                                    -> {Network}

The plugin speaks CNI (environment, stdin, exit codes) and turns each command into one
of these; everything that needs the daemon's state is decided here and in
controller.foreign, so the plugin stays a thin, quick-starting process.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shoal.api.app import Route
from shoal.api.http import Request, Response, json_response
from shoal.controller.foreign import ForeignAttachments
from shoal.errors import InvalidParameter
from shoal.model.ports import PortRequest


def _fields(req: Request, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object")
    unknown = set(body) - set(required) - set(optional)
    if unknown:
        raise InvalidParameter(f"unknown field(s): {', '.join(sorted(unknown))}")
    for name in required:
        if not isinstance(body.get(name), str) or not body[name]:
            raise InvalidParameter(f"{name} is required (a string)")
    return body


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"{what} must be a list of strings")
    return tuple(value)


def _port(value: Any, what: str) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise InvalidParameter(f"{what} must be a port number (an integer from 1 to 65535)")
    return value


def port_mappings(value: Any) -> tuple[PortRequest, ...]:
    """CNI's `portMappings` capability, in CNI's spelling, checked whole before anything
    is held: a bad entry is a 400 and nothing changes."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidParameter("PortMappings must be a list of {hostPort, containerPort, protocol, hostIP}")
    out = []
    for i, entry in enumerate(value):
        what = f"PortMappings[{i}]"
        if not isinstance(entry, dict):
            raise InvalidParameter(f"{what} must be an object")
        unknown = set(entry) - {"hostPort", "containerPort", "protocol", "hostIP"}
        if unknown:
            raise InvalidParameter(f"{what}: unknown field(s): {', '.join(sorted(unknown))}")
        host = _port(entry.get("hostPort"), f"{what}.hostPort")
        container = _port(entry.get("containerPort"), f"{what}.containerPort")
        proto, host_ip = entry.get("protocol") or "tcp", entry.get("hostIP") or ""
        if not isinstance(proto, str) or proto.lower() not in ("tcp", "udp"):
            raise InvalidParameter(f"{what}.protocol must be tcp or udp (shoal does not publish sctp)")
        if not isinstance(host_ip, str):
            raise InvalidParameter(f"{what}.hostIP must be a string")
        if host_ip:
            try:
                host_ip = str(ipaddress.ip_address(host_ip.strip("[]")))
            except ValueError:
                raise InvalidParameter(f"{what}.hostIP: invalid IP address {host_ip!r}") from None
        out.append(PortRequest(container, proto.lower(), host_ip, host))
    return tuple(out)


class CniRoutes:
    def __init__(self, attachments: ForeignAttachments) -> None:
        self.attachments = attachments

    def routes(self) -> list[Route]:
        return [Route("POST", "/shoal/cni/add", self.add), Route("POST", "/shoal/cni/del", self.delete),
                Route("POST", "/shoal/cni/check", self.check), Route("POST", "/shoal/cni/gc", self.gc),
                Route("GET", "/shoal/cni/status", self.status)]

    async def add(self, req: Request) -> Response:
        b = _fields(req, ("Network", "ContainerID", "Netns", "IfName"), ("Mac", "IPs", "PortMappings"))
        mac = b.get("Mac") or ""
        if not isinstance(mac, str):
            raise InvalidParameter("Mac must be a string")
        result = await self.attachments.attach(b["Network"], b["ContainerID"], b["Netns"], b["IfName"],
                                               mac=mac, ips=_strings(b.get("IPs"), "IPs"),
                                               ports=port_mappings(b.get("PortMappings")))
        return json_response(result)

    async def delete(self, req: Request) -> Response:
        b = _fields(req, ("ContainerID", "IfName"), ("Network",))
        network = b.get("Network") or ""
        if not isinstance(network, str):
            raise InvalidParameter("Network must be a string")
        return json_response({"Detached": await self.attachments.detach(b["ContainerID"], b["IfName"], network)})

    async def check(self, req: Request) -> Response:
        b = _fields(req, ("Network", "ContainerID", "IfName"))
        return json_response({"Problems": await self.attachments.check(b["Network"], b["ContainerID"], b["IfName"])})

    async def gc(self, req: Request) -> Response:
        b = _fields(req, ("Network",), ("Valid",))
        valid = b.get("Valid") or []
        if not isinstance(valid, list) or not all(
                isinstance(v, dict) and isinstance(v.get("ContainerID"), str) and isinstance(v.get("IfName"), str)
                for v in valid):
            raise InvalidParameter("Valid must be a list of {ContainerID, IfName}")
        keep = {(v["ContainerID"], v["IfName"]) for v in valid}
        return json_response({"Detached": await self.attachments.collect(b["Network"], keep)})

    async def status(self, req: Request) -> Response:
        network = self.attachments.status(req.arg("network"))
        return json_response({"Network": network.name})
