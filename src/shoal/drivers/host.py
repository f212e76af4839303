"""The `host` network: containers share the daemon's host namespace; nothing to build."""

from __future__ import annotations

from collections.abc import Mapping

from shoal.drivers.base import Capabilities, Problem
from shoal.kernel import LinkInfo
from shoal.model import Endpoint, Network, NetworkSpec


class HostDriver:
    name = "host"
    capabilities = Capabilities(uses_ipam=False, singleton=True)

    def validate(self, spec: NetworkSpec) -> None:
        pass

    def bridge_of(self, network: Network) -> None:
        return None

    async def create_network(self, network: Network, alias: str) -> None:
        pass

    async def delete_network(self, network: Network) -> None:
        pass

    async def restore_network(self, network: Network, alias: str) -> None:
        pass

    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        return ep

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        pass

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        return []

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        return ep
