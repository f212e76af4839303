"""The `none` network (driver `null`): a namespace with loopback only."""

from __future__ import annotations

from shoal.drivers.host import HostDriver
from shoal.drivers.base import Capabilities


class NullDriver(HostDriver):
    name = "null"
    capabilities = Capabilities(uses_ipam=False, singleton=True)
