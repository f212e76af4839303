"""Docker's remote network-driver and IPAM plugins, used as dockerd 20.10 uses them.

- client: discovery (sockets, .spec and .json files) and the HTTP transport, with
  dockerd's retry rules; PluginNotFound (404) and PluginError (500).
- registry: PluginRegistry, plugins by name, activated once at first use; what the
  controller resolves driver and IPAM names it does not know through.
- driver: RemoteDriver, the NetworkDriver.* verbs behind shoal's driver protocol.
- ipam: RemoteIpam, the IpamDriver.* verbs behind shoal's Ipam protocol.

Below the controller: it needs the kernel (to move a plugin's interface into a sandbox),
the driver and IPAM protocols it implements, nothing above.
"""

from shoal.plugins.client import Dirs, PluginError, PluginNotFound
from shoal.plugins.driver import RemoteDriver
from shoal.plugins.ipam import RemoteIpam
from shoal.plugins.registry import IPAM_DRIVER, NETWORK_DRIVER, PluginRegistry

__all__ = ["IPAM_DRIVER", "NETWORK_DRIVER", "Dirs", "PluginError", "PluginNotFound", "PluginRegistry",
           "RemoteDriver", "RemoteIpam"]
