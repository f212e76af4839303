"""shoal.firewall: Docker's bridge isolation, masquerade and port publishing in nftables.

- config: NetworkConfig, EndpointConfig, PortMapping, State (typed, validated inputs).
- elements: what each set and map holds for a State; diffs between two States.
- ruleset: nft text: the fixed chains, the full ruleset, incremental and cleanup batches.
- settings: the sysctls and bridge-port flags the ruleset needs (the kernel layer sets them).
- nft: running `nft -f -` with a batch; NftError with the failing line numbers.
- libnft: the same surface over libnftables in-process (ctypes): what the daemon uses.
- readback: the kernel's tables read back (`nft -j list table`) and compared (drift).
- base: the Firewall protocol and TrackedFirewall, the state bookkeeping of every backend.
- nftables: NftFirewall, the real backend.
- none: NoneFirewall, a backend that touches nothing.
- fake: FakeFirewall, in memory with failure injection, for unit tests of higher layers.
- dockeruser: DockerUser, shoal's accept rules in a dockerd's iptables DOCKER-USER chain
  (for the networks served to it as plugins: its FORWARD policy is DROP).

Imports only shoal.errors, shoal.model and the standard library.
"""

from shoal.firewall.base import Firewall, TrackedFirewall
from shoal.firewall.config import EndpointConfig, NetworkConfig, PortMapping, State
from shoal.firewall.fake import FakeFirewall
from shoal.firewall.nft import Nft, NftError
from shoal.firewall.nftables import NftFirewall
from shoal.firewall.none import NoneFirewall
from shoal.firewall.ruleset import cleanup_batch, diff_batch, full_batch
from shoal.firewall.settings import br_netfilter_sysctls, bridge_port_flags, network_sysctls, required_sysctls

__all__ = [
    "EndpointConfig", "FakeFirewall", "Firewall", "NetworkConfig", "Nft", "NftError", "NftFirewall",
    "NoneFirewall", "PortMapping", "State", "TrackedFirewall", "cleanup_batch", "diff_batch", "full_batch",
    "br_netfilter_sysctls", "bridge_port_flags", "network_sysctls", "required_sysctls",
]
