"""Networks as the store keeps them and the controller owns them.

A Network is the resolved form (subnets and gateways decided by IPAM); a NetworkSpec
is what a user asked for, already parsed from the wire but not yet validated against
the rest of the world (other networks, the host's routes, the driver).
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, replace
from typing import Any

PREDEFINED = ("bridge", "host", "none")
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class PoolSpec:
    """One entry of the default address pools: cut `base` into subnets of `size` bits."""

    base: str
    size: int


@dataclass(frozen=True)
class IPAMConfig:
    """One subnet of a network. Strings in CIDR/IP form; `gateway` has no prefix length.
    `pool_id` is what IPAM answered for it (opaque; empty in a request), kept with the
    network because the addresses of its endpoints are requested from that pool."""

    subnet: str
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)
    pool_id: str = ""
    address_space: str = ""  # the IPAM address space the pool came from (a remote driver is told)

    @property
    def is_v6(self) -> bool:
        return ":" in self.subnet


@dataclass(frozen=True, kw_only=True)
class NetworkSpec:
    """A create request after wire parsing; IPAM configs may lack subnet (pool wanted)."""

    name: str
    driver: str = "bridge"
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    config_only: bool = False
    config_from: str = ""
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] | None = None
    ipam_configs: tuple[IPAMConfig, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Network(NetworkSpec):
    """A network as it exists: the spec with ids decided, subnets allocated, options validated."""

    id: str
    created: str
    predefined: bool = False

    @property
    def v4_configs(self) -> tuple[IPAMConfig, ...]:
        return tuple(c for c in self.ipam_configs if not c.is_v6)

    @property
    def v6_configs(self) -> tuple[IPAMConfig, ...]:
        return tuple(c for c in self.ipam_configs if c.is_v6)

    def gateway_for(self, address: str) -> str:
        """The gateway of the subnet holding `address` ("ip" or "ip/len"): with several
        subnets of one family, another subnet's gateway is not on-link for it (the
        kernel refuses such a route: "Network is unreachable")."""
        cfg = self.config_for(address)
        return cfg.gateway if cfg is not None else ""

    def config_for(self, address: str) -> IPAMConfig | None:
        """The subnet holding `address` ("ip" or "ip/len"), so its pool."""
        if not address:
            return None
        ip = ipaddress.ip_interface(address).ip
        return next((c for c in self.ipam_configs if ip in ipaddress.ip_network(c.subnet)), None)

    def with_changes(self, **changes: Any) -> Network:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ipam_configs"] = [asdict(c) for c in self.ipam_configs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Network:
        data = dict(data)
        data["ipam_configs"] = tuple(IPAMConfig(**c) for c in data.get("ipam_configs", ()))
        return cls(**data)
