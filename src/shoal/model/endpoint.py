"""Endpoints: one sandbox's attachment to one network (a veth pair on a bridge)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """Addresses are CIDR strings ("172.18.0.2/16"); empty when the family is off."""

    id: str
    network_id: str
    name: str
    sandbox_id: str = ""
    ipv4: str = ""
    ipv6: str = ""
    mac: str = ""
    ifname: str = ""
    host_ifname: str = ""
    aliases: tuple[str, ...] = ()
    static_ipv4: bool = False
    static_ipv6: bool = False
    options: dict[str, str] = field(default_factory=dict)
    gateways: tuple[str, ...] | None = None
    """The sandbox's gateways through this endpoint when its driver chose them (a remote
    plugin's Join); None: the network's gateways (built-in drivers). An empty tuple: none,
    so the endpoint never gives the default route."""
    src_name: str = ""
    """The name the driver gave the interface before it was moved into the sandbox (a
    remote plugin's SrcName); it gets it back when it leaves, as in libnetwork."""

    @property
    def ips(self) -> tuple[str, ...]:
        """Its addresses without prefix lengths (what port mappings and DNS name)."""
        return tuple(a.split("/")[0] for a in (self.ipv4, self.ipv6) if a)

    def with_changes(self, **changes: Any) -> Endpoint:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        if self.gateways is not None:
            data["gateways"] = list(self.gateways)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        data = dict(data)
        data["aliases"] = tuple(data.get("aliases", ()))
        if data.get("gateways") is not None:
            data["gateways"] = tuple(data["gateways"])
        return cls(**data)
