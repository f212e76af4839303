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
        self.sysctls: dict[str, str] = {}

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

    async def ensure_bridge(self, name: str, *, mtu: int, addresses: list[str], alias: str, mac: str = "") -> bool:
        self._maybe_fail("ensure_bridge", name)
        created = name not in self.links_by_name
        index = len(self.links_by_name) + 2
        if not created:
            mac = self.links_by_name[name].mac
        self.links_by_name[name] = LinkInfo(name, index, "bridge", alias, mtu, True, mac, tuple(addresses))
        return created

    async def delete_link(self, name: str) -> None:
        self._maybe_fail("delete_link", name)
        self.links_by_name.pop(name, None)

    async def set_hairpin(self, ifname: str) -> None:
        self._maybe_fail("set_hairpin", ifname)

    async def set_sysctls(self, values: dict[str, str]) -> None:
        self._maybe_fail("set_sysctls", ",".join(values))
        self.sysctls.update(values)

    def close(self) -> None:
        pass


class FakeSandboxKernel(FakeKernel):
    """FakeKernel plus namespaces and veths, kept as sets/dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: set[str] = set()
        self.ifaces: dict[str, dict[str, dict]] = {}

    async def create_netns(self, path: str) -> None:
        self._maybe_fail("create_netns", path)
        self.namespaces.add(path)
        self.ifaces[path] = {"lo": {"up": True}}  # the real kernel brings lo up as it creates

    async def delete_netns(self, path: str) -> None:
        self.namespaces.discard(path)
        self.ifaces.pop(path, None)

    async def netns_alive(self, path: str) -> bool:
        return path in self.namespaces

    async def add_veth(self, host_name, peer_name, netns_path, *, mac, mtu, bridge, alias) -> None:  # noqa: ANN001
        self._maybe_fail("add_veth", host_name)
        if bridge not in self.links_by_name:
            raise KernelError(f"bridge {bridge} not found")
        self.links_by_name[host_name] = LinkInfo(host_name, 100 + len(self.links_by_name), "veth", alias,
                                                 mtu, True, "")
        self.ifaces[netns_path][peer_name] = {"mac": mac, "mtu": mtu, "host": host_name, "addresses": []}

    async def configure_iface(self, netns_path, ifname, addresses, gateways, *, default_route) -> None:  # noqa: ANN001
        self._maybe_fail("configure_iface", ifname)
        self.ifaces[netns_path][ifname].update(addresses=list(addresses), up=True,
                                               gateways=list(gateways) if default_route else [])

    async def delete_link(self, name: str) -> None:
        await super().delete_link(name)
        for ifaces in self.ifaces.values():
            for peer, data in list(ifaces.items()):
                if data.get("host") == name:
                    del ifaces[peer]
