"""Sandboxes: a container's network stack, i.e. a network namespace bind-mounted on a file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shoal.model.ports import PortBinding


@dataclass(frozen=True)
class Sandbox:
    """`path` is the netns file (Docker's SandboxKey); empty for `--network host`.
    `external`: the namespace is another runtime's (a CNI attachment): shoal plumbs
    endpoints into it but never creates or deletes it, and no container of ours owns it.
    `ports`: an external sandbox's published ports (CNI's `portMappings`), kept here
    because no container record of ours exists to hold them."""

    id: str
    path: str
    external: bool = False
    ports: tuple[PortBinding, ...] = ()

    @property
    def is_host(self) -> bool:
        return not self.path

    @property
    def handoff(self) -> bool:
        """Another engine's namespace that shoal never sees (a Docker remote-driver
        endpoint): drivers leave the interface in the host's namespace, and that engine
        moves it into its sandbox, renames and configures it."""
        return self.external and not self.path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sandbox:
        data = dict(data)
        data["ports"] = tuple(PortBinding(**p) for p in data.get("ports", ()))
        return cls(**data)
