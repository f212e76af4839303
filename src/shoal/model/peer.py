"""A remote endpoint: one endpoint of a global network that lives on another host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Peer:
    """What a host needs to reach it (its host's VTEP, MAC, addresses) and to name it (DNS)."""

    network_id: str
    endpoint_id: str
    host: str
    vtep: str
    mac: str
    ipv4: str = ""
    ipv6: str = ""
    name: str = ""
    aliases: tuple[str, ...] = ()
    sandbox_id: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Peer:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**data, "aliases": tuple(data.get("aliases", ()))})

    @property
    def ips(self) -> tuple[str, ...]:
        """Bare addresses, IPv4 first."""
        return tuple(ip.split("/")[0] for ip in (self.ipv4, self.ipv6) if ip)
