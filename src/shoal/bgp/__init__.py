"""shoal.bgp: BIRD for routed networks (drivers.routed), below the controller.

- config: BgpConfig, a host's BGP as pure data (router id, AS, peers or route
  reflectors, its blocks, the routed pools), and render(), BIRD's configuration text.
- supervisor: Bird, one BIRD per host: started, reconfigured (`birdc configure`),
  restarted with back-off when it dies, stopped gracefully.

Imports only shoal.errors (and the standard library).
"""

from shoal.bgp.config import DEFAULT_AS, BgpConfig, render
from shoal.bgp.supervisor import Bird

__all__ = ["DEFAULT_AS", "BgpConfig", "Bird", "render"]
