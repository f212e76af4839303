"""A kernel that keeps links in a dict, for controller and driver unit tests."""

from __future__ import annotations

import dataclasses

from shoal.kernel.macvlan import KernelUnsupported
from shoal.kernel.netlink import KernelError, LinkInfo


class FakeKernel:
    """Same async surface as Kernel; `fail_on` names an operation to refuse once."""

    def __init__(self) -> None:
        self.links_by_name: dict[str, LinkInfo] = {}
        self.host_routes: list[str] = []
        self.fail_on: str | None = None
        self.calls: list[tuple[str, str]] = []
        self.sysctls: dict[str, str] = {}
        self.initial_netns = False
        self.vxlans: dict[str, dict] = {}
        """name -> the settings ensure_vxlan was given (vni, local, port, mtu, bridge, alias, mac)"""
        self.fdb: dict[str, dict[str, str]] = {}
        """vxlan dev -> {mac: remote VTEP}"""
        self.neighbours: dict[str, dict[str, str]] = {}
        """dev -> {ip: mac}"""
        self.local_addresses: dict[str, str] = {}
        """ip -> link name, for device_of_address; when not empty, ensure_vxlan refuses a
        local address missing from it, as the real kernel layer does"""
        self.device_addresses: dict[str, str] = {}
        """link name -> first global IPv4, for address_of_device"""
        self.link_kinds: set[str] = {"bridge", "veth", "vxlan", "macvlan", "ifb"}
        """what this kernel can make (this machine's 6.18 has no dummy, vlan or ipvlan)"""

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
        for table in (self.vxlans, self.fdb, self.neighbours):
            table.pop(name, None)

    async def retire_link(self, name: str, object_id: str, addresses=()) -> None:  # noqa: ANN001
        link = self.links_by_name.get(name)
        if link is not None and link.alias.endswith(object_id):
            await self.delete_link(name)

    async def retire_veth(self, host: str, netns_path: str, peer: str, object_id: str) -> None:
        await self.retire_link(host, object_id)
        self.ifaces.get(netns_path, {}).pop(peer, None)

    def retiring(self) -> set[str]:
        return set()

    async def settle(self) -> None:
        pass

    async def set_hairpin(self, ifname: str) -> None:
        self._maybe_fail("set_hairpin", ifname)

    async def set_sysctls(self, values: dict[str, str], missing_ok: bool = False) -> list[str]:
        self._maybe_fail("set_sysctls", ",".join(values))
        self.sysctls.update(values)
        return list(values)

    async def in_initial_netns(self) -> bool:
        return self.initial_netns

    # -- overlay data plane --------------------------------------------------------------
    async def ensure_vxlan(self, name: str, *, vni: int, local: str, port: int = 4789, mtu: int, bridge: str,
                           alias: str, mac: str = "") -> bool:
        """As the real one: a device with other VNI, local, port or MAC is made again, and
        then its tables are empty (True)."""
        self._maybe_fail("ensure_vxlan", name)
        if bridge not in self.links_by_name:
            raise KernelError(f"bridge {bridge} not found: cannot attach vxlan {name}")
        if self.local_addresses and local not in self.local_addresses:
            raise KernelError(f"cannot make vxlan {name}: local address {local} is not on any link of this host")
        old = self.vxlans.get(name)
        if not mac:  # the kernel picks a random one; a fixed one keeps assertions simple
            mac = old["mac"] if old else f"02:00:00:{vni >> 16 & 255:02x}:{vni >> 8 & 255:02x}:{vni & 255:02x}"
        mac = mac.lower()
        created = old is None or (old["vni"], old["local"], old["port"], old["mac"]) != (vni, local, port, mac)
        if created:
            self.fdb[name], self.neighbours[name] = {}, {}
        self.vxlans[name] = dict(vni=vni, local=local, port=port, mtu=mtu, bridge=bridge, alias=alias, mac=mac)
        index = self.links_by_name[name].index if name in self.links_by_name else len(self.links_by_name) + 2
        self.links_by_name[name] = LinkInfo(name, index, "vxlan", alias, mtu, True, mac)
        return created

    def _table(self, tables: dict[str, dict[str, str]], dev: str) -> dict[str, str]:
        if dev not in self.links_by_name:
            raise KernelError(f"link {dev} not found")
        return tables.setdefault(dev, {})

    async def fdb_replace(self, dev: str, mac: str, dst: str) -> None:
        self._maybe_fail("fdb_replace", f"{dev} {mac} {dst}")
        self._table(self.fdb, dev)[mac.lower()] = dst

    async def fdb_delete(self, dev: str, mac: str, dst: str = "") -> None:
        self._maybe_fail("fdb_delete", f"{dev} {mac} {dst}".rstrip())
        entries = self.fdb.get(dev, {})
        if not dst or entries.get(mac.lower()) == dst:
            entries.pop(mac.lower(), None)

    async def fdb_entries(self, dev: str) -> list[tuple[str, str]]:
        return sorted(self.fdb.get(dev, {}).items())

    async def neigh_replace(self, dev: str, ip: str, mac: str) -> None:
        self._maybe_fail("neigh_replace", f"{dev} {ip} {mac}")
        self._table(self.neighbours, dev)[ip] = mac.lower()

    async def neigh_delete(self, dev: str, ip: str) -> None:
        self._maybe_fail("neigh_delete", f"{dev} {ip}")
        self.neighbours.get(dev, {}).pop(ip, None)

    async def neigh_entries(self, dev: str) -> list[tuple[str, str]]:
        return sorted(self.neighbours.get(dev, {}).items())

    async def device_of_address(self, ip: str) -> LinkInfo | None:
        name = self.local_addresses.get(ip)
        if name is None:
            return None
        return self.links_by_name.get(name) or LinkInfo(name, 1, "", "", 1500, True, "")

    async def address_of_device(self, name: str) -> str:
        if name not in self.device_addresses and name not in self.links_by_name:
            raise KernelError(f"link {name} not found")
        return self.device_addresses.get(name, "")

    async def has_link_kind(self, kind: str) -> bool:
        return kind in self.link_kinds

    async def ensure_stub_parent(self, name: str, *, alias: str, mtu: int) -> str:
        self._maybe_fail("ensure_stub_parent", name)
        old = self.links_by_name.get(name)
        kind = old.kind if old else next(k for k in ("dummy", "ifb") if k in self.link_kinds)
        index = old.index if old else len(self.links_by_name) + 2
        self.links_by_name[name] = LinkInfo(name, index, kind, alias, mtu, True, "02:00:00:00:00:02")
        return kind

    async def add_vlan(self, name: str, *, base: str, vlan_id: int, alias: str) -> None:
        self._maybe_fail("add_vlan", name)
        if base not in self.links_by_name:
            raise KernelError(f"-o parent interface was not found on the host: {base}")
        if "vlan" not in self.link_kinds:
            raise KernelUnsupported(f"cannot create the 802.1q sub-interface {name}: this kernel has no 8021q "
                                    "(VLAN) support")
        if name in self.links_by_name:
            raise KernelError(f"failed to create {name} vlan link: exists (EEXIST)")
        self.links_by_name[name] = LinkInfo(name, len(self.links_by_name) + 2, "vlan", alias, 1500, True, "")

    def close(self) -> None:
        pass


class FakeSandboxKernel(FakeKernel):
    """FakeKernel plus namespaces and veths, kept as sets/dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: set[str] = set()
        self.ifaces: dict[str, dict[str, dict]] = {}
        self.routed_routes: dict[str, list[str]] = {}  # routed veth -> the addresses routed to it

    async def create_netns(self, path: str) -> None:
        self._maybe_fail("create_netns", path)
        self.namespaces.add(path)
        self.ifaces[path] = {"lo": {"up": True}}  # the real kernel brings lo up as it creates

    async def delete_netns(self, path: str) -> None:
        self.namespaces.discard(path)
        self.ifaces.pop(path, None)

    async def netns_alive(self, path: str) -> bool:
        return path in self.namespaces

    async def is_netns(self, path: str) -> bool:
        return path in self.namespaces

    async def add_veth(self, host_name, peer_name, netns_path, *, mac, mtu, bridge, alias) -> None:  # noqa: ANN001
        self._maybe_fail("add_veth", host_name)
        if bridge not in self.links_by_name:
            raise KernelError(f"bridge {bridge} not found")
        self.links_by_name[host_name] = LinkInfo(host_name, 100 + len(self.links_by_name), "veth", alias,
                                                 mtu, True, "", master=self.links_by_name[bridge].index)
        # no netns_path: the peer stays in the host's namespace (kept under "")
        place = self.ifaces.setdefault("", {}) if not netns_path else self.ifaces[netns_path]
        place[peer_name] = {"mac": mac, "mtu": mtu, "host": host_name, "addresses": []}

    async def add_routed_veth(self, host, peer, netns_path, *, mac, mtu, alias, addresses, default_route,  # noqa: ANN001
                              routes) -> None:  # noqa: ANN001
        self._maybe_fail("add_routed_veth", host)
        self.links_by_name[host] = LinkInfo(host, 100 + len(self.links_by_name), "veth", alias, mtu, True,
                                            "ee:ee:ee:ee:ee:ee")
        self.ifaces[netns_path][peer] = {"mac": mac, "mtu": mtu, "host": host, "addresses": list(addresses),
                                         "default_route": default_route, "routes": list(routes)}
        self.routed_routes[host] = list(addresses)

    async def routed_host_routes(self, host: str, addresses: list[str]) -> None:
        self.routed_routes[host] = list(addresses)

    async def attach_port(self, ifname: str, bridge: str) -> None:
        self._maybe_fail("attach_port", ifname)
        if ifname not in self.links_by_name or bridge not in self.links_by_name:
            raise KernelError(f"cannot attach {ifname} to {bridge}")
        link = self.links_by_name[ifname]
        self.links_by_name[ifname] = dataclasses.replace(link, master=self.links_by_name[bridge].index, up=True)

    async def sandbox_addresses(self, path: str) -> dict[str, tuple[str, ...]]:
        if path not in self.namespaces:
            raise KernelError(f"namespace {path} not found")
        return {name: tuple(data.get("addresses", ())) for name, data in self.ifaces[path].items()}

    async def sandbox_counters(self, path: str) -> dict[str, dict[str, int]]:
        return {name: dict(data.get("counters", {})) for name, data in self.ifaces.get(path, {}).items()}

    async def sandbox_gateways(self, path: str) -> set[str]:
        return {gw for data in self.ifaces.get(path, {}).values() for gw in data.get("gateways", ())}

    async def configure_iface(self, netns_path, ifname, addresses, gateways, *, default_route) -> None:  # noqa: ANN001
        self._maybe_fail("configure_iface", ifname)
        iface = self.ifaces[netns_path][ifname]
        iface.update(addresses=list(iface.get("addresses", [])) + [a for a in addresses if a not in iface.get("addresses", [])],
                     up=True, gateways=list(gateways) if default_route else iface.get("gateways", []))

    async def adopt_iface(self, src, netns_path, dst, *, mac, addresses, gateways, default_route,  # noqa: ANN001
                          routes) -> None:
        """Any `src` is taken (the plugin made it in another process); `adopted` records it."""
        self._maybe_fail("adopt_iface", src)
        if netns_path not in self.namespaces:
            raise KernelError(f"namespace {netns_path} not found")
        self.links_by_name.pop(src, None)
        self.ifaces[netns_path][dst] = {"mac": mac, "src": src, "addresses": list(addresses), "up": True,
                                        "gateways": list(gateways) if default_route else [], "routes": list(routes)}

    async def release_iface(self, netns_path: str, ifname: str, src: str) -> None:
        self._maybe_fail("release_iface", ifname)
        iface = self.ifaces.get(netns_path, {}).pop(ifname, None)
        if iface is not None:
            self.links_by_name[src] = LinkInfo(src, 200 + len(self.links_by_name), "veth", "", 1500, False,
                                               iface.get("mac", ""))

    async def delete_link(self, name: str) -> None:
        """A veth's peer goes with it, and a parent's macvlan ports, wherever they live."""
        await super().delete_link(name)
        for ifaces in self.ifaces.values():
            for peer, data in list(ifaces.items()):
                if name in (data.get("host"), data.get("parent")):
                    del ifaces[peer]

    async def add_macvlan(self, ifname: str, netns_path: str, *, parent: str, mode: str, mac: str = "") -> str:
        self._maybe_fail("add_macvlan", ifname)
        if parent not in self.links_by_name:
            raise KernelError(f"the requested parent interface {parent} was not found on the host")
        ports = [d for ifaces in self.ifaces.values() for d in ifaces.values() if d.get("parent") == parent]
        if ports and (mode == "passthru" or any(d["mode"] == "passthru" for d in ports)):
            raise KernelError(f"failed to create the macvlan port {ifname} on {parent}: Invalid argument (EINVAL)")
        if ifname in self.ifaces[netns_path]:
            raise KernelError(f"failed to create the macvlan port {ifname} on {parent}: exists (EEXIST)")
        mac = mac or self.links_by_name[parent].mac or "02:00:00:00:00:01"
        self.ifaces[netns_path][ifname] = {"mac": mac, "parent": parent, "mode": mode, "addresses": []}
        return mac

    async def retire_sandbox_iface(self, netns_path: str, ifname: str) -> None:
        self.calls.append(("retire_sandbox_iface", ifname))
        self.ifaces.get(netns_path, {}).pop(ifname, None)

    async def delete_sandbox_iface(self, netns_path: str, ifname: str) -> None:
        self.ifaces.get(netns_path, {}).pop(ifname, None)
