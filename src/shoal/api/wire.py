"""Engine API JSON <-> model.  PascalCase lives here and nowhere else.

Parsing checks types the way Go's JSON decoder would refuse them, so a label that is a
number gets a 400 naming the field instead of a stack trace deeper in.
"""

from __future__ import annotations

from typing import Any

from shoal.api.app import version_tuple
from shoal.errors import InvalidParameter
from shoal.model import IPAMConfig, Network, NetworkSpec


def _type_error(field: str, want: str, got: Any) -> InvalidParameter:
    kind = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(got), "value"
    )
    return InvalidParameter(f"json: cannot unmarshal {kind} into Go struct field {field} of type {want}")


def _str(body: dict, key: str, field: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _type_error(field, "string", value)
    return value


def _bool(body: dict, key: str, field: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _type_error(field, "bool", value)
    return value


def _str_map(body: dict, key: str, field: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error(field, "map[string]string", value)
    for v in value.values():
        if not isinstance(v, str):
            raise _type_error(field, "string", v)
    return dict(value)


def parse_ipam_config(item: Any) -> IPAMConfig:
    if not isinstance(item, dict):
        raise _type_error("IPAM.Config", "network.IPAMConfig", item)
    field = "NetworkCreateRequest.IPAM.Config"
    aux = _str_map(item, "AuxiliaryAddresses", field + ".AuxiliaryAddresses")
    if aux is None:
        aux = _str_map(item, "AuxAddress", field + ".AuxAddress")
    return IPAMConfig(
        subnet=_str(item, "Subnet", field + ".Subnet"),
        gateway=_str(item, "Gateway", field + ".Gateway"),
        ip_range=_str(item, "IPRange", field + ".IPRange"),
        aux_addresses=aux or {},
    )


def parse_network_create(body: Any) -> NetworkSpec:
    if not isinstance(body, dict):
        raise InvalidParameter("invalid network create request: expected a JSON object")
    f = "NetworkCreateRequest"
    name = _str(body, "Name", f + ".Name")
    if not name:
        raise InvalidParameter("network name is required: give the network a name")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise _type_error(f + ".IPAM", "network.IPAM", ipam)
    configs = ipam.get("Config") or []
    if not isinstance(configs, list):
        raise _type_error(f + ".IPAM.Config", "[]network.IPAMConfig", configs)
    options = _str_map(body, "Options", f + ".Options") or {}
    enable_v6 = body.get("EnableIPv6")
    if enable_v6 is None and "com.docker.network.enable_ipv6" in options:
        enable_v6 = options["com.docker.network.enable_ipv6"].lower() in ("1", "true", "t")
    enable_v4 = body.get("EnableIPv4")
    if enable_v4 is None and "com.docker.network.enable_ipv4" in options:
        enable_v4 = options["com.docker.network.enable_ipv4"].lower() in ("1", "true", "t")
    config_from = body.get("ConfigFrom") or {}
    return NetworkSpec(
        name=name,
        driver=_str(body, "Driver", f + ".Driver") or "bridge",
        scope=_str(body, "Scope", f + ".Scope") or "local",
        internal=_bool(body, "Internal", f + ".Internal"),
        attachable=_bool(body, "Attachable", f + ".Attachable"),
        ingress=_bool(body, "Ingress", f + ".Ingress"),
        config_only=_bool(body, "ConfigOnly", f + ".ConfigOnly"),
        config_from=_str(config_from, "Network", f + ".ConfigFrom.Network") if isinstance(config_from, dict) else "",
        enable_ipv4=_bool({"v": enable_v4}, "v", f + ".EnableIPv4", True),
        enable_ipv6=_bool({"v": enable_v6}, "v", f + ".EnableIPv6", False),
        ipam_driver=_str(ipam, "Driver", f + ".IPAM.Driver") or "default",
        ipam_options=_str_map(ipam, "Options", f + ".IPAM.Options"),
        ipam_configs=tuple(parse_ipam_config(c) for c in configs),
        options=options,
        labels=_str_map(body, "Labels", f + ".Labels") or {},
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
) -> dict[str, Any]:
    """The Network object; `containers` only for inspect, `Status` from API 1.52."""
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
    return out
