"""The controller: sole owner of live networks (and later endpoints and sandboxes).

- Controller (controller.controller): create/delete/find networks with rollback.
- restore (controller.restore): startup: load the store, rebuild IPAM, repair the
  kernel, remove stale objects shoal owns.
- Undo (controller.undo): the rollback stack every multi-step operation uses.
"""

from shoal.controller.controller import Controller

__all__ = ["Controller"]
