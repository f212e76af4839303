"""Containers as shoal records them: what was asked for, decided once at create."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shoal.model.ports import PortBinding


@dataclass(frozen=True)
class EndpointRequest:
    """One network a container asked for (`--network`, `network connect`)."""

    network: str  # name or id as given; resolved at start
    ipv4: str = ""
    ipv6: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = ()
    links: tuple[str, ...] = ()  # "container:alias", visible to this container only
    driver_opts: tuple[tuple[str, str], ...] = ()  # EndpointSettings.DriverOpts, kept and shown
    link_local: tuple[str, ...] = ()  # IPAMConfig.LinkLocalIPs, kept and shown (not yet applied)


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    created: str
    image: str  # the reference the user gave
    image_id: str
    args: tuple[str, ...]  # entrypoint + cmd, resolved
    env: tuple[str, ...] = ()
    working_dir: str = ""
    hostname: str = ""
    user: str = ""  # as given (name|uid[:group|gid]); the runtime resolves it in the container
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    network_mode: str = "bridge"
    auto_remove: bool = False
    networks: tuple[EndpointRequest, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # Docker's Config, echoed by inspect
    host_config: dict[str, Any] = field(default_factory=dict)
    ports: tuple[PortBinding, ...] = ()  # published while running
    mounts: tuple[dict[str, Any], ...] = ()  # runtime.volumes.MountPoint.to_dict, decided at create

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["networks"] = [asdict(n) for n in self.networks]
        data["ports"] = [asdict(p) for p in self.ports]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Container:
        data = dict(data)
        data["args"] = tuple(data["args"])
        data["env"] = tuple(data.get("env", ()))
        data["networks"] = tuple(
            EndpointRequest(**{**n, "aliases": tuple(n.get("aliases", ())), "links": tuple(n.get("links", ())),
                               "driver_opts": tuple(tuple(kv) for kv in n.get("driver_opts", ())),
                               "link_local": tuple(n.get("link_local", ()))})
            for n in data.get("networks", ())
        )
        data["ports"] = tuple(PortBinding(**p) for p in data.get("ports", ()))
        data["mounts"] = tuple(data.get("mounts", ()))
        return cls(**data)
