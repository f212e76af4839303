"""Pure data: the nouns of shoal, with no I/O and no imports from other shoal packages
but shoal.errors (model.validate raises InvalidParameter).

- Network, IPAMConfig, NetworkSpec (model.network): a group of endpoints that talk directly.
- Endpoint (model.endpoint): one sandbox's attachment to one network.
- Sandbox (model.sandbox): a container's network namespace.
- Container, EndpointRequest (model.container): a container record and its networks.
- Peer (model.peer): an endpoint of a global network on another host.
"""

from shoal.model.container import Container, EndpointRequest
from shoal.model.endpoint import Endpoint
from shoal.model.network import IPAMConfig, Network, NetworkSpec, PoolSpec
from shoal.model.peer import Peer
from shoal.model.sandbox import Sandbox

__all__ = ["Container", "Endpoint", "EndpointRequest", "IPAMConfig", "Network", "NetworkSpec", "Peer", "PoolSpec", "Sandbox"]
