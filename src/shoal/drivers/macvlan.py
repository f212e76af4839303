"""The macvlan driver: containers as macvlan ports of a host interface, on its LAN.

As dockerd 20.10's (libnetwork/drivers/macvlan): `-o parent=IFACE` names the interface
(`-o macvlan_mode=bridge|private|vepa|passthru`, bridge by default); one network per
parent; a missing parent named `base.vid` is made as an 802.1q sub-interface of `base`
and removed with the network; no parent at all gives the network a parent of its own,
`dm-<id 12>`, which reaches nothing (containers only reach each other). The gateway is
the LAN's router: nothing on this host holds it, containers route through it; no
firewall rules, no NAT, and published ports are ignored (dockerd logs a warning).

Differences, and why (docs/compat.md): dockerd's own parent is a `dummy` link; on a
kernel without the dummy module (this machine's) shoal's is an `ifb`, as inert (up,
carrier on, drops whatever it is given); an empty bridge would not do: its carrier
goes off, and its macvlan ports' with it. What shoal
made is recorded as the link's alias (the network's ownership mark), so a restart, a
crash or a delete knows it without any state of the driver's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shoal.drivers.base import Capabilities, Problem
from shoal.errors import Forbidden, InvalidParameter
from shoal.kernel import Kernel, KernelError, KernelUnsupported, LinkInfo
from shoal.model import Endpoint, Network, NetworkSpec, validate

OPT_PARENT = "parent"
OPT_MODE = "macvlan_mode"
MODES = ("bridge", "private", "vepa", "passthru")
DUMMY_PREFIX = "dm-"


@dataclass(frozen=True)
class MacvlanOptions:
    """Docker's two macvlan options, parsed once; others are ignored, as dockerd does."""

    parent: str  # the interface the ports hang off: the one asked for, or dm-<id 12>
    mode: str = "bridge"
    given: bool = True  # False: no -o parent, shoal makes (and owns) `parent`

    @classmethod
    def parse(cls, options: Mapping[str, str], network_id: str = "") -> MacvlanOptions:
        mode = options.get(OPT_MODE) or "bridge"
        if mode not in MODES:
            raise InvalidParameter(f"requested macvlan mode '{mode}' is not valid, "
                                   "'bridge' mode is the macvlan driver default")
        parent = options.get(OPT_PARENT, "")
        if parent == "lo":
            raise InvalidParameter("loopback interface is not a valid macvlan parent link")
        if parent:
            return cls(validate.ifname(parent, "macvlan parent interface"), mode, True)
        return cls(f"{DUMMY_PREFIX}{network_id[:12]}", mode, False)


def parse_vlan(name: str) -> tuple[str, int]:
    """`eth0.10` -> ("eth0", 10), with dockerd's messages for a name that is not one."""
    if "." not in name:
        raise InvalidParameter(f"invalid subinterface vlan name {name}, example formatting is eth0.10")
    parts = name.split(".")
    if len(parts) != 2:
        raise InvalidParameter(f"required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, "
                               f"instead received {name}")
    base, vid = parts
    if not vid.isdigit():
        raise InvalidParameter(f"unable to parse a valid vlan id from: {vid} (ex. eth0.10 for vlan 10)")
    if not 1 <= int(vid) <= 4094:
        raise InvalidParameter(f"vlan id must be between 1-4094, received: {int(vid)}")
    return base, int(vid)


class MacvlanDriver:
    name = "macvlan"
    capabilities = Capabilities()

    def __init__(self, kernel: Kernel, default_mtu: int = 1500) -> None:
        self._kernel = kernel
        self._default_mtu = default_mtu
        self._parents: dict[str, str] = {}  # network id -> parent, for "one network per parent"

    def options(self, network: Network) -> MacvlanOptions:
        return MacvlanOptions.parse(network.options, network.id)

    def validate(self, spec: NetworkSpec) -> None:
        MacvlanOptions.parse(spec.options, "x")

    def bridge_of(self, network: Network) -> None:
        return None  # nothing to isolate, masquerade or publish: the LAN's router does it

    # -- network objects ---------------------------------------------------------------
    async def create_network(self, network: Network, alias: str) -> None:
        opts = self.options(network)
        for other_id, parent in self._parents.items():
            if parent == opts.parent and other_id != network.id:
                raise Forbidden(f"network {DUMMY_PREFIX}{other_id[:12]} is already using parent interface {parent}")
        if await self._kernel.link(opts.parent) is None:
            await self._make_parent(network, opts, alias)
        self._parents[network.id] = opts.parent

    async def _make_parent(self, network: Network, opts: MacvlanOptions, alias: str) -> None:
        """dm-<id> for a network without a parent; `base.vid` as an 802.1q sub-interface.
        Both carry the network's mark: that is how delete and restore know they are ours."""
        if not opts.given:
            try:
                await self._kernel.ensure_stub_parent(opts.parent, alias=alias, mtu=self._default_mtu)
            except KernelUnsupported as exc:
                raise Forbidden(str(exc)) from exc
            return
        base, vid = parse_vlan(opts.parent)
        if await self._kernel.link(base) is None:
            raise InvalidParameter(f"-o parent interface was not found on the host: {base}")
        try:
            await self._kernel.add_vlan(opts.parent, base=base, vlan_id=vid, alias=alias)
        except KernelUnsupported as exc:
            raise Forbidden(str(exc)) from exc

    async def restore_network(self, network: Network, alias: str) -> None:
        """Ours (dm-, or a sub-interface shoal made) is made again or brought up; a parent
        of the user's is only checked: shoal never changes what it does not own."""
        opts = self.options(network)
        self._parents[network.id] = opts.parent
        link = await self._kernel.link(opts.parent)
        if link is None and (not opts.given or "." in opts.parent):
            await self._make_parent(network, opts, alias)
        elif link is None:
            raise Forbidden(f"parent interface {opts.parent} of macvlan network {network.name} is missing "
                            "(shoal did not make it, so it cannot make it again)")
        elif not opts.given:
            await self._make_parent(network, opts, alias)  # ensure: up again, marked
        elif not link.up and link.alias != alias:
            raise Forbidden(f"parent interface {opts.parent} of macvlan network {network.name} is down "
                            f"(shoal does not manage it: ip link set {opts.parent} up)")

    async def delete_network(self, network: Network) -> None:
        """The parent goes only when shoal made it (its alias names this network); retired,
        so the name is free at once and the slow unregistration runs in the background."""
        name = self._parents.pop(network.id, None) or self.options(network).parent
        await self._kernel.retire_link(name, network.id)

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        """The parent only: the ports live in the sandboxes (the invariant checker looks at
        each container's interfaces), and a parent's delete takes all its ports with it."""
        opts = self.options(network)
        parent = links.get(opts.parent)
        if parent is None:
            return [Problem(f"parent interface {opts.parent} is missing")] + [
                Problem(f"endpoint {ep.name}: its macvlan port went with parent {opts.parent}", ep.id)
                for ep in endpoints]
        out = []
        if not parent.up:
            out.append(Problem(f"parent interface {opts.parent} is down"))
        if not opts.given and parent.alias != alias:
            out.append(Problem(f"parent interface {opts.parent} is not marked as this network's ({parent.alias!r})"))
        return out

    # -- endpoints -----------------------------------------------------------------------
    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        """A macvlan port born inside the sandbox as its ifname, with the endpoint's MAC
        (dockerd's: derived from the IPv4 address), except in passthru mode, where the
        port is its parent's sole user and keeps the parent's MAC: setting another would
        change the parent's own."""
        opts = self.options(network)
        passthru = opts.mode == "passthru"
        try:
            mac = await self._kernel.add_macvlan(ep.ifname, netns_path, parent=opts.parent, mode=opts.mode,
                                                 mac="" if passthru else ep.mac)
        except KernelUnsupported as exc:
            raise Forbidden(str(exc)) from exc
        except KernelError as exc:
            if passthru and "EINVAL" in str(exc):
                raise Forbidden(f"macvlan network {network.name} is in passthru mode: its parent "
                                f"{opts.parent} takes one container only") from exc
            raise
        try:
            gws = [gw for addr in (ep.ipv4, ep.ipv6) if (gw := network.gateway_for(addr))]
            addrs = [a for a in (ep.ipv4, ep.ipv6) if a]
            await self._kernel.configure_iface(netns_path, ep.ifname, addrs, gws,
                                               default_route=gateway and not network.internal)
        except BaseException:
            await self._kernel.delete_sandbox_iface(netns_path, ep.ifname)
            raise
        return ep.with_changes(mac=mac) if mac and mac != ep.mac else ep

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        """Retired (down, no addresses, renamed) and deleted in the background: a
        macvlan's delete waits ~16 ms for RCU."""
        if netns_path and ep.ifname:
            await self._kernel.retire_sandbox_iface(netns_path, ep.ifname)

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        """A port that is gone (deleted, or with its parent) is made again."""
        if ep.ifname in await self._kernel.sandbox_addresses(netns_path):
            return ep
        return await self.join(network, ep, netns_path, alias, gateway)
