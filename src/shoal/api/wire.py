"""Engine API JSON <-> model.  PascalCase lives here and nowhere else.

Parsing first checks the body against the Go type dockerd decodes it into (api.schemas), so
a label that is a number gets a 400 naming the field instead of a stack trace deeper in; the
readers below can then trust each value's JSON kind.
"""

from __future__ import annotations

from typing import Any

from shoal.api.app import version_tuple
from shoal.api.checks import no_nul
from shoal.api.schemas import NETWORK_CREATE
from shoal.errors import InvalidParameter
from shoal.model import IPAMConfig, Network, NetworkSpec


def _str(body: dict, key: str, default: str = "") -> str:
    """Only after NETWORK_CREATE.check: the value is a string or null."""
    value = body.get(key)
    return default if value is None else value


def parse_ipam_config(item: dict | None) -> IPAMConfig:
    item = item or {}
    return IPAMConfig(
        subnet=_str(item, "Subnet"),
        gateway=_str(item, "Gateway"),
        ip_range=_str(item, "IPRange"),
        aux_addresses=dict(item.get("AuxiliaryAddresses") or item.get("AuxAddress") or {}),
    )


def _enable(body: dict, options: dict[str, str], key: str, option: str, default: bool) -> bool:
    """`EnableIPv6` wins; else the older `com.docker.network.enable_ipv6` option."""
    value = body.get(key)
    if value is None and option in options:
        value = options[option].lower() in ("1", "true", "t")
    return default if value is None else value


def parse_network_create(body: Any) -> NetworkSpec:
    if body is None:
        raise InvalidParameter("invalid network create request: expected a JSON object")
    NETWORK_CREATE.check(body)
    no_nul(body)
    name = _str(body, "Name")
    if not name:
        raise InvalidParameter("network name is required: give the network a name")
    ipam = body.get("IPAM") or {}
    options = dict(body.get("Options") or {})
    return NetworkSpec(
        name=name,
        driver=_str(body, "Driver") or "bridge",
        scope=_str(body, "Scope") or "local",
        internal=bool(body.get("Internal")),
        attachable=bool(body.get("Attachable")),
        ingress=bool(body.get("Ingress")),
        config_only=bool(body.get("ConfigOnly")),
        config_from=_str(body.get("ConfigFrom") or {}, "Network"),
        enable_ipv4=_enable(body, options, "EnableIPv4", "com.docker.network.enable_ipv4", True),
        enable_ipv6=_enable(body, options, "EnableIPv6", "com.docker.network.enable_ipv6", False),
        ipam_driver=_str(ipam, "Driver") or "default",
        ipam_options=dict(ipam["Options"]) if ipam.get("Options") is not None else None,
        ipam_configs=tuple(parse_ipam_config(c) for c in ipam.get("Config") or ()),
        options=options,
        labels=dict(body.get("Labels") or {}),
    )


def ipam_config_json(cfg: IPAMConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"Subnet": cfg.subnet}
    if cfg.ip_range:
        out["IPRange"] = cfg.ip_range
    if cfg.gateway:
        out["Gateway"] = cfg.gateway
    if cfg.aux_addresses:
        out["AuxiliaryAddresses"] = dict(cfg.aux_addresses)
    return out


def network_json(
    net: Network,
    version: str,
    containers: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    blocks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Network object; `containers` only for inspect, `Status` from API 1.52;
    `Blocks` (shoal's own field, routed networks only): pool -> host -> its blocks."""
    out: dict[str, Any] = {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": net.scope,
        "Driver": net.driver,
    }
    if version_tuple(version) >= (1, 48):
        out["EnableIPv4"] = net.enable_ipv4
    out.update({
        "EnableIPv6": net.enable_ipv6,
        "IPAM": {
            "Driver": net.ipam_driver,
            "Options": net.ipam_options,
            "Config": [ipam_config_json(c) for c in net.ipam_configs],
        },
        "Internal": net.internal,
        "Attachable": net.attachable,
        "Ingress": net.ingress,
        "ConfigFrom": {"Network": net.config_from},
        "ConfigOnly": net.config_only,
        "Containers": containers if containers is not None else {},
        "Options": dict(net.options),
        "Labels": dict(net.labels),
    })
    if status is not None and version_tuple(version) >= (1, 52):
        out["Status"] = {"IPAM": {"Subnets": status}}
    if blocks is not None:
        out["Blocks"] = blocks
    return out
