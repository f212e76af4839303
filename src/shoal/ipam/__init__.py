"""Address management, kept out of the drivers as libnetwork does.

- AddressSet (ipam.addrset): which addresses of one subnet are taken; lowest-free allocation.
- Pool (ipam.pools): a subnet given to a network, with its range, gateway and aux addresses.
- DefaultIpam (ipam.pools): Docker's default allocator: predefined pools, first fit.
- default_pools / ula_pool (ipam.pools): Docker's default pool list and the host's ULA /48.

IPAM here is memory only and pure: the controller persists the networks and endpoints
that own the addresses, and rebuilds IPAM from them on restart.  That keeps one source
of truth (the store) and makes every allocation part of the same store transaction as
the object that owns it.
"""

from shoal.ipam.addrset import AddressSet
from shoal.ipam.pools import DefaultIpam, Pool, default_pools, ula_pool

__all__ = ["AddressSet", "DefaultIpam", "Pool", "default_pools", "ula_pool"]
