"""Address management, kept out of the drivers as libnetwork does.

- Ipam (ipam.api): the protocol, libnetwork's ipamapi verbs, async; address spaces
  LocalDefault and GlobalDefault, opaque pool ids, capability flags.
- AddressSet (ipam.addrset): which addresses of one subnet are taken; lowest-free allocation.
- Pool, DefaultIpam (ipam.pools): Docker's default allocator for LocalDefault: predefined
  pools, first fit, in memory.
- AddressSpaces (ipam.spaces): the "default" IPAM driver, routing each space to its allocator.
- default_pools / ula_pool (ipam.pools): Docker's default pool list and the host's ULA /48.

The local allocator is memory only and pure: the controller persists the networks and
endpoints that own the addresses, and replays them on restart. That keeps one source of
truth (the store) and makes every allocation part of the same store transaction as the
object that owns it. The GlobalDefault allocator keeps its claims in the cluster store
(controller.kvipam; it needs the store's compare-and-swap, which this package may not
import).
"""

from shoal.ipam.addrset import AddressSet
from shoal.ipam.api import (
    GATEWAY,
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    OPT_HOST_BOUND,
    OPT_OWNER,
    REQUEST_ADDRESS_TYPE,
    Capabilities,
    Ipam,
    NoAddressAvailable,
)
from shoal.ipam.pools import DefaultIpam, Pool, default_pools, ula_pool
from shoal.ipam.spaces import AddressSpaces

__all__ = ["GATEWAY", "GLOBAL_DEFAULT", "LOCAL_DEFAULT", "OPT_HOST_BOUND", "OPT_OWNER", "REQUEST_ADDRESS_TYPE",
           "AddressSet", "AddressSpaces", "Capabilities", "DefaultIpam", "Ipam", "NoAddressAvailable", "Pool",
           "default_pools", "ula_pool"]
