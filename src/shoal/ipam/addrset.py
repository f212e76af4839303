"""The set of taken addresses in one subnet.

Offsets from the network address are kept in a Python set.  Dynamic allocation scans
upward from the start of the range and stops at the first free offset, so it costs
O(addresses taken), never O(size of the subnet): an IPv6 /64 is as cheap as a /24.
That is the property libnetwork's old bitmap lacked in spirit (and got wrong in fact,
moby/libnetwork#2105); it is property-tested in tests/unit/test_ipam_props.py.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from shoal.errors import Forbidden, InvalidParameter
from shoal.ipam.api import NoAddressAvailable

IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address


class AddressSet:
    """Taken addresses of `subnet`; the reserved ones are taken from the start."""

    def __init__(self, subnet: IPNetwork) -> None:
        self.subnet = subnet
        self._base = int(subnet.network_address)
        self._size = subnet.num_addresses
        self._taken: set[int] = set()
        self._reserved: set[int] = set()
        if subnet.version == 4 and subnet.prefixlen < 31:
            self._reserved = {0, self._size - 1}  # network and broadcast
        elif subnet.version == 6 and subnet.prefixlen < 127:
            self._reserved = {0}  # subnet-router anycast

    def _offset(self, address: IPAddress) -> int:
        if address not in self.subnet:
            raise InvalidParameter(f"requested address {address} is out of range of subnet {self.subnet}")
        return int(address) - self._base

    def take(self, address: IPAddress) -> IPAddress:
        off = self._offset(address)
        if off in self._taken or off in self._reserved:
            raise Forbidden("Address already in use")
        self._taken.add(off)
        return address

    def take_any(self, within: IPNetwork | None = None) -> IPAddress:
        """Lowest free address, restricted to `within` (the network's ip-range)."""
        rng = within or self.subnet
        start = int(rng.network_address) - self._base
        end = start + rng.num_addresses  # exclusive
        off = start
        while off < end and (off in self._taken or off in self._reserved):
            off += 1
        if off >= end:
            raise NoAddressAvailable("no available addresses on this pool")
        self._taken.add(off)
        return ipaddress.ip_address(self._base + off)

    def release(self, address: IPAddress) -> None:
        self._taken.discard(int(address) - self._base)

    def is_taken(self, address: IPAddress) -> bool:
        off = int(address) - self._base
        return off in self._taken or off in self._reserved

    @property
    def in_use(self) -> int:
        """Docker counts reserved addresses (network, broadcast) as in use too."""
        return len(self._taken | self._reserved)

    def available(self, within: IPNetwork | None = None) -> int:
        rng = within or self.subnet
        start = int(rng.network_address) - self._base
        end = start + rng.num_addresses
        used = sum(1 for o in self._taken | self._reserved if start <= o < end)
        return rng.num_addresses - used

    def taken(self) -> list[IPAddress]:
        return [ipaddress.ip_address(self._base + o) for o in sorted(self._taken)]
