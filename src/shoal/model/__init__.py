"""Pure data: the nouns of shoal, with no I/O and no imports from other shoal packages.

- Network, IPAMConfig, NetworkSpec (model.network): a group of endpoints that talk directly.
- Endpoint (model.endpoint): one sandbox's attachment to one network.
"""

from shoal.model.endpoint import Endpoint
from shoal.model.network import IPAMConfig, Network, NetworkSpec, PoolSpec

__all__ = ["Endpoint", "IPAMConfig", "Network", "NetworkSpec", "PoolSpec"]
