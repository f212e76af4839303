"""Published ports: what a container asked for (`-p`) and what it got."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PortRequest:
    """One `-p [host_ip:][host_port]:container_port[/proto]`; host_port 0 = ephemeral."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PortBinding:
    """A port as published: host side (`host_ip` "0.0.0.0" or "::" for any) to container."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"
