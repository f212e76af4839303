"""The driver protocol: validate once at the edge, then create/delete/restore.

Endpoint verbs (create/delete endpoint, join/leave) join this protocol with containers.
One protocol plus a Capabilities record, instead of libnetwork's optional side
interfaces, so the controller never type-checks a driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shoal.model import Endpoint, Network, NetworkSpec, Peer

if TYPE_CHECKING:
    from shoal.drivers.l2 import BridgeOptions
    from shoal.kernel import LinkInfo


@dataclass(frozen=True)
class Problem:
    """A kernel object of a network (or of one of its endpoints) that is not as the driver
    made it: missing, down, off its bridge. `endpoint_id` is "" for the network's own."""

    message: str
    endpoint_id: str = ""


@dataclass(frozen=True)
class Capabilities:
    scope: str = "local"
    uses_ipam: bool = True  # host and null have no addresses of their own
    singleton: bool = False  # only one network of this driver may exist
    derives_mac: bool = True
    """The controller gives an endpoint without a user-chosen MAC one derived from its
    IPv4 (Docker's bridge rule); False: only the user's goes to the driver, which may
    choose one itself (a remote plugin, in CreateEndpoint)."""
    rebuilds_endpoints: bool = True
    """Repair may take an endpoint's kernel objects down and make them again (the driver
    made them); False: its `repair_endpoint` mends in place (a plugin's interface is the
    plugin's: a leave would delete its endpoint there)."""
    needs_gateway: bool = True
    """Each pool gets a gateway address (the bridge's); False: the driver routes its
    endpoints without one in the pool (routed: a link-local next hop)."""
    routed: bool = False
    """Endpoints are routed /32s on host veths of their own, no bridge (drivers.routed):
    the firewall isolates them by pool and host veth, and their addresses come from the
    host's address blocks."""
    external_connectivity: bool = False
    """The driver implements `ExternalConnectivity`: it is told when one of its endpoints
    becomes, or stops being, its sandbox's gateway endpoint (libnetwork's
    Program/RevokeExternalConnectivity)."""


class NetworkDriver(Protocol):
    name: str
    capabilities: Capabilities

    def validate(self, spec: NetworkSpec) -> None:
        """Raise InvalidParameter for options this driver cannot accept."""

    def bridge_of(self, network: Network) -> BridgeOptions | None:
        """The Linux bridge the network's endpoints hang off, with the policy the firewall
        enforces on it (ICC, masquerade, host binding); None: nothing to isolate or
        publish. The controller asks this instead of knowing which drivers use bridges."""

    async def create_network(self, network: Network, alias: str) -> None:
        """Make the kernel objects; undo own partial work on failure."""

    async def delete_network(self, network: Network) -> None:
        """Remove the kernel objects; idempotent."""

    async def restore_network(self, network: Network, alias: str) -> None:
        """Recreate or repair the kernel objects after a restart."""

    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        """Plumb `ep` into the sandbox at `netns_path`; returns it with host-side names set.
        `gateway`: this endpoint provides the sandbox's default route."""

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        """Remove the endpoint's kernel objects from the host and from the sandbox at
        `netns_path` (which may be gone already); idempotent."""

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        """What differs between `links` (one dump of the host's links) and what this driver
        made for `network` and the host sides of `endpoints`; pure, so a check is one dump."""

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        """Make an endpoint whose kernel objects were changed from outside whole again (after
        `restore_network` repaired the network's own); returns it as `join` does."""


class ExternalConnectivity(NetworkDriver, Protocol):
    """A driver with `capabilities.external_connectivity`: it programs the sandbox's way
    out (port mappings, NAT) itself, on the one endpoint that gives the default route, and
    is asked about each endpoint after its connect."""

    async def program_external(self, network: Network, ep: Endpoint) -> None:
        """`ep` now gives its sandbox's default route."""

    async def revoke_external(self, network: Network, ep: Endpoint) -> None:
        """`ep` no longer does (another took over, or it leaves); idempotent."""

    async def endpoint_info(self, network: Network, ep: Endpoint) -> dict[str, object]:
        """What the driver says about a joined endpoint (libnetwork's EndpointOperInfo),
        asked after each connect as dockerd does; never raises."""


class GlobalDriver(NetworkDriver, Protocol):
    """A driver with `capabilities.scope == "global"`: its networks span hosts, and the
    cluster tells it about the endpoints that live on other hosts."""

    async def peer_added(self, network: Network, peer: Peer) -> None:
        """Make `peer` reachable from this host's endpoints; replace semantics."""

    async def peer_removed(self, network: Network, peer: Peer) -> None:
        """Forget `peer`; idempotent."""

    async def reconcile_peers(self, network: Network, peers: list[Peer]) -> None:
        """Make the kernel hold exactly `peers` for `network` (run periodically)."""

    async def discover_new(self, host: dict[str, str]) -> None:
        """A host joined the cluster (`advertise`, `vtep`): libnetwork's DiscoverNew."""

    async def discover_delete(self, host: dict[str, str]) -> None:
        """A host left (its lease expired or it was removed): libnetwork's DiscoverDelete."""
