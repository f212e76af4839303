"""The only code that touches netlink, sysctl and network namespaces.

- Netlink (kernel.netlink): synchronous pyroute2 calls, one IPRoute on one thread;
  the overlay's vxlan devices, FDB and neighbour entries come from kernel.vxlan, and
  per-device reads from kernel.nldump (kernel-filtered dumps read with struct).
- Kernel (kernel.facade): the async facade the rest of shoal awaits; it runs Netlink on
  a dedicated single thread, so the event loop never blocks on netlink and never
  calls setns (pyroute2 opens sockets in other namespaces from a helper process).
- FakeKernel (kernel.fake): records calls and fails on demand, for unit tests.
- macvlan ports and 802.1q parents come from kernel.macvlan; KernelUnsupported says
  the kernel lacks a link kind (no module), not that it refused.
- LinkInfo, KernelError: what the facade returns and raises.

Objects shoal creates carry an interface alias `shoal:<owner>:<object id>`, so restore
can tell its own leftovers from everything else and never touches what it does not own.
"""

from shoal.kernel.facade import Kernel
from shoal.kernel.fake import FakeKernel, FakeSandboxKernel
from shoal.kernel.macvlan import KernelUnsupported
from shoal.kernel.netlink import KernelError, LinkInfo, Netlink

__all__ = ["FakeKernel", "FakeSandboxKernel", "Kernel", "KernelError", "KernelUnsupported", "LinkInfo", "Netlink"]
