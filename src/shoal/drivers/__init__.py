"""Network drivers: libnetwork's verbs behind one small protocol.

- NetworkDriver, Capabilities (drivers.base): the protocol and what a driver needs;
  GlobalDriver adds the verbs a global-scope driver gets from the cluster (peers),
  ExternalConnectivity those of a driver told which endpoint is its sandbox's gateway.
- OverlayDriver (drivers.overlay): VXLAN across hosts (a bridge plus a VXLAN device).
- BridgeDriver, BridgeOptions (drivers.bridge): a Linux bridge per network.
- MacvlanDriver, MacvlanOptions (drivers.macvlan): containers as macvlan ports of a host
  interface; IpvlanDriver (drivers.ipvlan): says what the kernel lacks.
- HostDriver (drivers.host), NullDriver (drivers.null): the `host` and `none` networks.
- options (drivers.options): typed parsing of Docker's string-valued options.

Drivers get typed inputs and the kernel facade; they never see the store or the API.
"""

from shoal.drivers.base import Capabilities, ExternalConnectivity, GlobalDriver, NetworkDriver, Problem
from shoal.drivers.bridge import BridgeDriver
from shoal.drivers.l2 import BridgeOptions
from shoal.drivers.host import HostDriver
from shoal.drivers.ipvlan import IpvlanDriver
from shoal.drivers.macvlan import MacvlanDriver, MacvlanOptions
from shoal.drivers.null import NullDriver

__all__ = ["BridgeDriver", "BridgeOptions", "Capabilities", "ExternalConnectivity", "GlobalDriver", "HostDriver",
           "IpvlanDriver", "MacvlanDriver", "MacvlanOptions", "NetworkDriver", "NullDriver", "Problem"]
