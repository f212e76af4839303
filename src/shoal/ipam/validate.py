"""Checks of user IPAM configs that need no state: run at the edge, all errors at once.

Docker collects these into one 400 starting with "invalid network config:", one line
per problem, so a user fixes everything in one go.
"""

from __future__ import annotations

import ipaddress

from shoal.errors import InvalidParameter
from shoal.model import IPAMConfig


def _subnet_errors(cfg: IPAMConfig) -> tuple[list[str], ipaddress.IPv4Network | ipaddress.IPv6Network | None]:
    try:
        net = ipaddress.ip_network(cfg.subnet, strict=False)
    except ValueError:
        return [f"invalid subnet {cfg.subnet}: invalid CIDR address"], None
    if str(net) != cfg.subnet and ipaddress.ip_interface(cfg.subnet).ip != net.network_address:
        return [f"invalid subnet {cfg.subnet}: it should be {net}"], None
    return [], net


def _member_errors(cfg: IPAMConfig, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    errors = []
    if cfg.ip_range:
        try:
            rng = ipaddress.ip_network(cfg.ip_range, strict=False)
            if ipaddress.ip_interface(cfg.ip_range).ip != rng.network_address:
                errors.append(f"invalid ip-range {cfg.ip_range}: it should be {rng}")
            elif rng.version != net.version or not rng.subnet_of(net):  # type: ignore[arg-type]
                errors.append(f"invalid ip-range {cfg.ip_range}: it should be within subnet {net}")
        except ValueError:
            errors.append(f"invalid ip-range {cfg.ip_range}: invalid CIDR address")
    for what, value in [("gateway", cfg.gateway)] + [
        (f"auxiliary address {k}=", v) for k, v in sorted(cfg.aux_addresses.items())
    ]:
        if not value:
            continue
        label = f"{what}{value}" if what.endswith("=") else f"{what} {value}"
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            errors.append(f"invalid {label}: invalid IP address")
            continue
        if ip not in net:
            errors.append(f"invalid {label}: it should be within subnet {net}")
    return errors


def check_ipam_configs(configs: tuple[IPAMConfig, ...]) -> None:
    errors: list[str] = []
    for cfg in configs:
        if not cfg.subnet:
            if cfg.gateway or cfg.ip_range or cfg.aux_addresses:
                errors.append("invalid ipam config: gateway, ip-range and aux addresses need a subnet")
            continue
        found, net = _subnet_errors(cfg)
        errors += found
        if net is not None:
            errors += _member_errors(cfg, net)
    if errors:
        raise InvalidParameter("invalid network config:\n" + "\n".join(errors))
