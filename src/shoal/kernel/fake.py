"""A kernel that keeps links in a dict, for controller and driver unit tests."""

from __future__ import annotations

from shoal.kernel.netlink import KernelError, LinkInfo


class FakeKernel:
    """Same async surface as Kernel; `fail_on` names an operation to refuse once."""

    def __init__(self) -> None:
        self.links_by_name: dict[str, LinkInfo] = {}
        self.host_routes: list[str] = []
        self.fail_on: str | None = None
        self.calls: list[tuple[str, str]] = []

    def _maybe_fail(self, op: str, name: str) -> None:
        self.calls.append((op, name))
        if self.fail_on == op:
            self.fail_on = None
            raise KernelError(f"{op} {name}: refused (injected)")

    async def link(self, name: str) -> LinkInfo | None:
        return self.links_by_name.get(name)

    async def links(self) -> list[LinkInfo]:
        return list(self.links_by_name.values())

    async def routes(self) -> list[str]:
        return list(self.host_routes)

    async def ensure_bridge(self, name: str, *, mtu: int, addresses: list[str], alias: str) -> bool:
        self._maybe_fail("ensure_bridge", name)
        created = name not in self.links_by_name
        index = len(self.links_by_name) + 2
        self.links_by_name[name] = LinkInfo(name, index, "bridge", alias, mtu, True, "", tuple(addresses))
        return created

    async def delete_link(self, name: str) -> None:
        self._maybe_fail("delete_link", name)
        self.links_by_name.pop(name, None)

    def close(self) -> None:
        pass
