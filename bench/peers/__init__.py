"""The things shoal is compared with, behind one small interface.

A peer runs inside its own throwaway host namespace. The cases time the verbs below; a peer
that cannot do one raises `Unsupported` with the reason, which the table prints as n/a.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Unsupported(Exception):
    """This peer has no such operation (or shoal does not have it yet)."""


@dataclass
class Ctr:
    """One running container: where to nsenter (its network namespace) and its address."""

    id: str
    net: str
    netns: str = ""
    ip: str = ""
    pid: int = 0
    publish: dict[int, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Peer:
    """Base: every verb is unsupported until a peer says otherwise."""

    name = "peer"
    host_ns = ""  # path of the throwaway host namespace (clients of published ports run here)

    def start(self, image_tar: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def timings(self) -> dict | None:
        """The daemon's cumulative time per layer (shoal's GET /shoal/timings); None: no such thing."""
        return None

    def network_create(self, name: str) -> str:
        raise Unsupported(f"{self.name} has no network create")

    def network_rm(self, ref: str) -> None:
        raise Unsupported(f"{self.name} has no network rm")

    def ensure_network(self, name: str) -> str:
        """A network that lives until the peer closes (containers are started on it)."""
        raise NotImplementedError

    def run(self, net: str, publish: dict[int, int] | None = None, runtime: str = "") -> Ctr:
        """Start one container on `net` and return once it runs (this is what is timed);
        `runtime`: its OCI runtime by name ("": the peer's default, runc everywhere)."""
        raise NotImplementedError

    def check_runtime(self, name: str) -> None:
        """Unsupported unless `run(..., runtime=name)` works here (not timed)."""
        raise Unsupported(f"{self.name}: runc only")

    def inspect(self, ctr: Ctr) -> Ctr:
        """Fill in pid, netns and address (not timed)."""
        return ctr

    def rm(self, ctr: Ctr) -> None:
        raise NotImplementedError

    def connect(self, ctr: Ctr, net: str) -> None:
        raise Unsupported(f"{self.name} cannot attach a running container")

    def disconnect(self, ctr: Ctr, net: str) -> None:
        raise Unsupported(f"{self.name} cannot detach a running container")

    def published(self, ctr: Ctr, container_port: int) -> tuple[str, int]:
        """Address and port a client in host_ns dials to reach container_port."""
        raise Unsupported(f"{self.name} does not publish ports")

    def daemon_rss_kib(self) -> int:
        raise Unsupported(f"{self.name} has no daemon")

    def monitor_pid(self, ctr: Ctr) -> int:
        """The process a peer keeps per container besides the container's own (after inspect)."""
        raise Unsupported(f"{self.name} has no per-container process")


PEER_NAMES = ("shoal", "docker", "netavark", "cni", "raw")


def make_peer(name: str, workdir: str) -> Peer:
    """Import lazily so a peer's missing dependency only affects that peer."""
    if name == "shoal":
        from peers.shoal import ShoalPeer
        return ShoalPeer(workdir)
    if name == "docker":
        from peers.docker import DockerPeer
        return DockerPeer(workdir)
    if name == "netavark":
        from peers.netavark import NetavarkPeer
        return NetavarkPeer(workdir)
    if name == "cni":
        from peers.cni import CniPeer
        return CniPeer(workdir)
    if name == "raw":
        from peers.raw import RawPeer
        return RawPeer(workdir)
    raise ValueError(f"unknown peer {name!r}: one of {', '.join(PEER_NAMES)}")
