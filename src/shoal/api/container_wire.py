"""Container and image JSON for the Engine API: create requests in, inspect/ps out."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Any

from shoal.api.app import version_tuple
from shoal.runtime.resources import adapt
from shoal.api.checks import check_config, check_host_config, no_nul, port_range
from shoal.api.schemas import CONTAINER_CREATE
from shoal.humanize import human_duration
from shoal.controller.containers import CreateRequest
from shoal.errors import InvalidParameter
from shoal.model import Container, Endpoint, EndpointRequest, Network, validate

ZERO = "0001-01-01T00:00:00Z"


def _strs(value: str | list | None) -> tuple[str, ...] | None:
    """A strslice.StrSlice or []string, already type-checked: null stays None (unset)."""
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(v or "" for v in value)


def endpoint_request(name: str, cfg: dict | None) -> EndpointRequest:
    """From a type-checked network.EndpointSettings (api.schemas.ENDPOINT_SETTINGS)."""
    cfg = cfg or {}
    ipam = cfg.get("IPAMConfig") or {}
    return EndpointRequest(
        network=name,
        ipv4=ipam.get("IPv4Address") or "",
        ipv6=ipam.get("IPv6Address") or "",
        mac=validate.mac(cfg["MacAddress"]) if cfg.get("MacAddress") else "",
        aliases=_strs(cfg.get("Aliases")) or (),
        links=_strs(cfg.get("Links")) or (),
        driver_opts=tuple(sorted((cfg.get("DriverOpts") or {}).items())),
        link_local=_strs(ipam.get("LinkLocalIPs")) or (),
    )


def check_create(body: Any) -> None:
    """Everything dockerd would refuse, before anything is looked up or created."""
    if body is None:
        raise InvalidParameter("config cannot be empty in order to create a container")
    CONTAINER_CREATE.check(body)
    no_nul(body)
    check_config(body)
    check_host_config(body.get("HostConfig") or {}, body.get("ExposedPorts"))


def _endpoints(body: dict, mode: str) -> dict[str, EndpointRequest]:
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    requests = {k: endpoint_request(k, v) for k, v in endpoints.items()}
    legacy_mac = body.get("MacAddress") or ""
    if legacy_mac:  # API < 1.44 puts --mac-address on the container
        key = "bridge" if mode == "default" else mode
        base = requests.get(key) or EndpointRequest(key)
        requests[key] = dataclasses.replace(base, mac=validate.mac(legacy_mac))
    return requests


def parse_create(body: Any, name: str) -> CreateRequest:
    check_create(body)
    image = body.get("Image")
    if not image:
        raise InvalidParameter("No image was specified: give an image reference, e.g. busybox:latest")
    host = body.get("HostConfig") or {}
    mode = host.get("NetworkMode") or "default"
    return CreateRequest(
        image=image, name=name,
        cmd=_strs(body.get("Cmd")),
        entrypoint=_strs(body.get("Entrypoint")),
        env=_strs(body.get("Env")) or (),
        working_dir=body.get("WorkingDir") or "",
        hostname=body.get("Hostname") or "",
        user=body.get("User") or "",
        tty=bool(body.get("Tty")), open_stdin=bool(body.get("OpenStdin")), stdin_once=bool(body.get("StdinOnce")),
        labels=dict(body.get("Labels") or {}), network_mode=mode, auto_remove=bool(host.get("AutoRemove")),
        endpoints=_endpoints(body, mode),
        config={k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")},
        host_config=adapt(host),
    )


def rfc3339(ts: float | None) -> str:
    if not ts:
        return ZERO
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unix_time(created: str) -> int:
    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def endpoint_json(ep: Endpoint, net: Network, req: EndpointRequest | None, container: Container,
                  version: str) -> dict[str, Any]:
    v4 = ep.ipv4.split("/") if ep.ipv4 else ["", "0"]
    v6 = ep.ipv6.split("/") if ep.ipv6 else ["", "0"]
    gw4, gw6 = net.gateway_for(ep.ipv4), net.gateway_for(ep.ipv6)
    ipam = None
    if req and (req.ipv4 or req.ipv6 or req.link_local):
        ipam = {k: v for k, v in (("IPv4Address", req.ipv4), ("IPv6Address", req.ipv6),
                                  ("LinkLocalIPs", list(req.link_local))) if v}
    aliases = list(req.aliases) if req else []
    dns_names = [container.name, *aliases, container.id[:12]] if not net.predefined else None
    # the short id joins the aliases when the endpoint is made (dockerd: not while only created)
    with_id = version_tuple(version) < (1, 45) and dns_names and ep.id
    out = {
        "IPAMConfig": ipam, "Links": list(req.links) if req and req.links else None,
        "Aliases": aliases + ([container.id[:12]] if with_id else []) or None,
        "MacAddress": ep.mac or (req.mac if req else ""), "DriverOpts": dict(req.driver_opts) if req and req.driver_opts else None,
        "GwPriority": 0,
        "NetworkID": net.id, "EndpointID": ep.id, "Gateway": gw4, "IPAddress": v4[0],
        "IPPrefixLen": int(v4[1]), "IPv6Gateway": gw6, "GlobalIPv6Address": v6[0],
        "GlobalIPv6PrefixLen": int(v6[1]), "DNSNames": dns_names,
    }
    if version_tuple(version) < (1, 44):
        out.pop("DNSNames")
    if version_tuple(version) < (1, 48):  # API 1.48 added it
        out.pop("GwPriority")
    return out


def networks_json(container: Container, eps: list[Endpoint], nets: dict[str, Network], version: str,
                  running: bool) -> dict[str, Any]:
    """Attached endpoints while running; the requested networks (empty addresses) otherwise."""
    out: dict[str, Any] = {}
    by_net = {e.network_id: e for e in eps}
    for req in container.networks:
        net = next((n for n in nets.values() if n.name == req.network), None)
        if net is None:
            continue
        ep = by_net.get(net.id) or Endpoint(id="", network_id=net.id, name=container.name)
        entry = endpoint_json(ep, net, req, container, version)
        if net.id not in by_net:
            entry["NetworkID"] = net.id if running else entry["NetworkID"]
        out[net.name] = entry
    return out


def state_json(st: Any) -> dict[str, Any]:
    status = st.status
    return {
        "Status": "paused" if getattr(st, "paused", False) else status, "Running": st.running,
        "Paused": bool(getattr(st, "paused", False)), "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": st.pid, "ExitCode": st.exit_code, "Error": "",
        "StartedAt": rfc3339(st.started_at), "FinishedAt": rfc3339(st.finished_at),
    }


def status_text(st: Any, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if st.running:
        paused = " (Paused)" if getattr(st, "paused", False) else ""
        return f"Up {human_duration(now - (st.started_at or now))}{paused}"
    if st.status == "exited":
        return f"Exited ({st.exit_code}) {human_duration(now - (st.finished_at or now))} ago"
    return "Created"


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def port_keys(container: Container) -> list[str]:
    """Exposed and requested ports as `PORT/PROTO` keys. Records may predate the checks at
    create (api.checks), so a stored key that is not a port is left out: one bad record must
    not break every `docker ps`."""
    out: dict[str, None] = {}
    sources = (_mapping(container.config).get("ExposedPorts"), _mapping(container.host_config).get("PortBindings"))
    for source in sources:
        for key in _mapping(source):
            if isinstance(key, str) and port_range(key) is not None:
                out[key if "/" in key else f"{key}/tcp"] = None
    return list(out)


def ports_json(container: Container, running: bool) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed or requested port; bindings while running."""
    out: dict[str, Any] = dict.fromkeys(port_keys(container))
    if running:
        for b in container.ports:
            entries = out.get(b.key) or []
            entries.append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
            out[b.key] = entries
    return out


def ports_summary(container: Container, running: bool) -> list[dict[str, Any]]:
    """`GET /containers/json` Ports: bound ports with IP/PublicPort, exposed ones without
    (a range has no single PrivatePort, so it is left out here and shown by inspect)."""
    out = []
    bound = set()
    if running:
        for b in container.ports:
            out.append({"IP": b.host_ip, "PrivatePort": b.container_port, "PublicPort": b.host_port,
                        "Type": b.proto})
            bound.add(b.key)
    for key in port_keys(container):
        start, end, proto = port_range(key) or (0, 0, "")
        if key not in bound and start == end:
            out.append({"PrivatePort": start, "Type": proto})
    return out
