"""shoal's drivers and IPAM served to a dockerd as libnetwork remote plugins (issue #10).

dockerd owns the containers, their sandboxes and (unless it asks `shoal-ipam`) the
addresses; shoal owns the networks' kernel objects and its firewall. A network made
through a plugin is an ordinary shoal network keyed by Docker's NetworkID (so the checker,
repair, restore and the firewall treat it like any other), with the subnets, gateways and
aux addresses dockerd chose: its IPAM driver is `GivenIpam`, which hands back exactly what
it is asked for, because the allocator that decided is dockerd's.

An endpoint is an endpoint of shoal's in an *external sandbox without a path* (a handoff,
`Sandbox.handoff`) whose id is Docker's EndpointID: at Join the driver makes the veth pair
as for any container, except that the container end stays in the host's namespace, down,
under a temporary name; libnetwork moves it into the container's namespace, renames it
`eth<N>` and configures it. CreateEndpoint only records what dockerd decided (address,
MAC), kept in the store so that a restart between it and Join loses nothing.

Every verb is idempotent (dockerd retries and rolls back with the inverse verb) and the
inverse verbs succeed for what is not, or no longer, there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from shoal.controller.firewalling import networks_here
from shoal.errors import Forbidden, InvalidParameter, NotFound
from shoal.ipam import Capabilities, DefaultIpam, NoAddressAvailable
from shoal.model import IPAMConfig, NetworkSpec

if TYPE_CHECKING:
    from shoal.controller.controller import Controller
    from shoal.model import PoolSpec

GIVEN = "docker"  # the IPAM driver name of networks whose addresses dockerd decided
KIND = "plugin-endpoint"  # CreateEndpoint's record, until DeleteEndpoint
LABEL_PLUGIN = "com.shoal.docker.plugin"  # which served plugin made the network
LABEL_SPACE = "com.shoal.docker.address-space"  # the address space dockerd's IPAM named
SERVED_LOCAL = "ShoalLocal"  # shoal-ipam's address spaces, as GetDefaultAddressSpaces names them
SERVED_GLOBAL = "ShoalGlobal"
OPT_GENERIC = "com.docker.network.generic"  # libnetwork: the `-o` options of network create
OPT_IPV6 = "com.docker.network.enable_ipv6"
PEER_PREFIX = "shp"  # the container end's name in the host's namespace, before libnetwork moves it
OVERLAP = "invalid pool request: Pool overlaps with other one on this address space"


class GivenIpam:
    """The IPAM of networks whose addresses another engine's allocator decided: every
    request is answered with what it names, releases are no-ops, nothing is listed (the
    checker compares only shoal's own allocator with its networks)."""

    capabilities = Capabilities()

    async def get_default_address_spaces(self) -> tuple[str, str]:
        return GIVEN, GIVEN

    async def request_pool(self, address_space: str, pool: str = "", sub_pool: str = "",
                           options: Mapping[str, str] | None = None, v6: bool = False,
                           exclude: Iterable[Any] = ()) -> tuple[str, str, dict[str, str]]:
        if not pool:
            raise InvalidParameter("a network made through a Docker plugin needs the subnet dockerd chose")
        subnet = str(ipaddress.ip_network(pool, strict=False))
        return (f"{GIVEN}/{subnet}/{sub_pool}" if sub_pool else f"{GIVEN}/{subnet}"), subnet, {}

    async def release_pool(self, pool_id: str, options: Mapping[str, str] | None = None) -> None:
        return None

    async def request_address(self, pool_id: str, address: str = "",
                              options: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        if not address:
            raise NoAddressAvailable("no address given: dockerd's IPAM allocates the addresses of this network")
        prefix = pool_id.split("/")[2]
        return f"{ipaddress.ip_address(address)}/{prefix}", {}

    async def release_address(self, pool_id: str, address: str) -> None:
        return None

    async def pool_status(self, pool_id: str) -> dict[str, int] | None:
        return None

    async def allocations(self, address_space: str) -> dict[str, list[str]] | None:
        return None


def _cidr_ip(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).ip) if cidr else ""


def _configs(data: Any, family: str) -> list[IPAMConfig]:
    """IPv4Data/IPv6Data entries -> IPAMConfig (gateway and aux addresses come as CIDRs)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise InvalidParameter(f"{family} must be a list")
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("Pool"), str):
            raise InvalidParameter(f"each {family} entry needs a Pool")
        try:
            subnet = str(ipaddress.ip_network(item["Pool"], strict=False))
            aux = {str(k): _cidr_ip(v) for k, v in (item.get("AuxAddresses") or {}).items()}
            out.append(IPAMConfig(subnet=subnet, gateway=_cidr_ip(item.get("Gateway") or ""),
                                  aux_addresses=aux))
        except (ValueError, AttributeError, TypeError):
            raise InvalidParameter(f"invalid {family} entry {item!r}") from None
    return out


def _generic(options: Any) -> dict[str, str]:
    """The user's `-o` options (libnetwork passes them under com.docker.network.generic)."""
    generic = (options or {}).get(OPT_GENERIC) if isinstance(options, dict) else None
    if generic is None:
        return {}
    if not isinstance(generic, dict):
        raise InvalidParameter(f"{OPT_GENERIC} must be an object")
    return {str(k): v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in generic.items()}


class ForwardRules(Protocol):
    """dockerd's FORWARD chain lets a bridge of ours through (firewall.dockeruser)."""

    async def allow(self, bridge: str, mark: str) -> list[str]: ...

    async def revoke(self, bridge: str, mark: str) -> None: ...

    async def present(self, bridge: str, mark: str) -> bool | None: ...


class ServedPlugins:
    """The verbs behind `api.pluginserver`; `drivers` maps a served plugin name to the
    shoal driver it stands for (shoal-bridge -> bridge, shoal-overlay -> overlay)."""

    def __init__(self, ctl: Controller, drivers: Mapping[str, str], pools: Iterable[PoolSpec],
                 rules: ForwardRules | None = None) -> None:
        self.ctl = ctl
        self.drivers = dict(drivers)
        self.allocator = DefaultIpam(list(pools), space=SERVED_LOCAL)
        self.rules = rules
        ctl.ipam_drivers.setdefault(GIVEN, GivenIpam())
        if rules is not None:
            ctl.side_watchers.append(self)

    def _bridge(self, network: Any) -> str:
        opts = self.ctl.driver(network.driver).bridge_of(network)
        return opts.bridge_name if opts is not None else ""

    # -- networks --------------------------------------------------------------------
    async def create_network(self, plugin: str, network_id: str, options: Any,
                             ipv4: Any, ipv6: Any) -> None:
        ctl = self.ctl
        if not isinstance(network_id, str) or len(network_id) < 12:
            raise InvalidParameter("NetworkID is required")
        existing = ctl.networks.get(network_id)
        if existing is not None:  # a retry of a create that got through
            if existing.labels.get(LABEL_PLUGIN) != plugin:
                raise Forbidden(f"network {network_id[:12]} exists and was not made by {plugin}")
            return
        v4, v6 = _configs(ipv4, "IPv4Data"), _configs(ipv6, "IPv6Data")
        if not v4 and not v6:
            raise InvalidParameter("the network has no IPv4Data: dockerd's IPAM gave it no subnet")
        space = next((d.get("AddressSpace", "") for d in (ipv4 or []) + (ipv6 or []) if isinstance(d, dict)), "")
        enable_v6 = bool(v6) or (isinstance(options, dict) and options.get(OPT_IPV6) is True)
        spec = NetworkSpec(
            name=f"docker-{network_id[:12]}", driver=self.drivers[plugin], enable_ipv4=bool(v4),
            enable_ipv6=enable_v6, ipam_driver=GIVEN, ipam_configs=tuple(v4 + v6), options=_generic(options),
            labels={LABEL_PLUGIN: plugin, LABEL_SPACE: str(space)},
        )
        network = await ctl.create_network(spec, network_id=network_id)
        bridge = self._bridge(network)  # a global network's bridge exists only once built here (side_built)
        if self.rules is not None and bridge and network.scope != "global":
            try:
                await self.rules.allow(bridge, network_id[:12])
            except BaseException:
                await ctl.delete_network(network_id)
                raise

    async def delete_network(self, network_id: str) -> None:
        """Idempotent. Endpoints dockerd forgot to delete (it restarted meanwhile) go first:
        dockerd deletes a network only once it holds no endpoint there."""
        ctl = self.ctl
        network = await self._find(network_id)  # (a `network rm` quicker than shoal's watch)
        if network is None:
            return
        for ep in [e for e in ctl.endpoints_of(network_id) if self._ours(e.sandbox_id)]:
            await ctl.delete_sandbox(ep.sandbox_id)
        try:
            await ctl.delete_network(network_id)
        except NotFound:  # a global network removed from another host meanwhile
            return
        bridge = self._bridge(network)
        if self.rules is not None and bridge and network.scope != "global":  # (global: side_gone)
            await self.rules.revoke(bridge, network_id[:12])

    # -- a global network's side on this host (Controller.side_watchers) ---------------
    # Only the host whose dockerd made a global network hears CreateNetwork and only the
    # one where `network rm` runs hears DeleteNetwork (libnetwork's controller.addNetwork
    # and network.delete); every other host's dockerd sends CreateEndpoint and Join for a
    # network shoal's cluster store brought here. So the DOCKER-USER rules follow the
    # bridge: added when this host's side is built (the first endpoint here), removed
    # when it is taken down (the network removed, wherever that was done).
    async def side_built(self, network: Any) -> None:
        bridge = self._bridge(network)
        if self.rules is not None and bridge and LABEL_PLUGIN in network.labels:
            await self.rules.allow(bridge, network.id[:12])

    async def side_gone(self, network: Any) -> None:
        bridge = self._bridge(network)
        if self.rules is not None and bridge and LABEL_PLUGIN in network.labels:
            await self.rules.revoke(bridge, network.id[:12])

    def _served_here(self) -> list[tuple[Any, str]]:
        """(network, bridge) for each network made through the plugins whose bridge is on
        this host (a global one only once built here)."""
        nets = [n for n in networks_here(self.ctl) if LABEL_PLUGIN in n.labels]
        return [(n, b) for n in nets if (b := self._bridge(n))]

    async def findings(self) -> list[tuple[str, str]]:
        """A rule deleted from DOCKER-USER (`iptables -F DOCKER-USER`, a firewall script)
        drops the network's traffic again: the checker says so."""
        out = []
        for network, bridge in self._served_here() if self.rules is not None else ():
            if await self.rules.present(bridge, network.id[:12]) is False:
                out.append((f"network {network.name} ({network.id[:12]})",
                            f"dockerd's DOCKER-USER chain lacks shoal's accept rules for {bridge}: "
                            "dockerd's FORWARD policy drops its traffic"))
        return out

    async def repair(self) -> list[str]:
        done = []
        for network, bridge in self._served_here() if self.rules is not None else ():
            if await self.rules.present(bridge, network.id[:12]) is False:
                await self.rules.allow(bridge, network.id[:12])
                done.append(f"put shoal's accept rules for {bridge} back into DOCKER-USER")
        return done

    # -- endpoints -------------------------------------------------------------------
    async def create_endpoint(self, network_id: str, endpoint_id: str, iface: Any) -> dict[str, str]:
        """Records the endpoint; returns the Interface fields shoal fills (the MAC, when
        dockerd gave none: 02:42 + the IPv4 address, as shoal's and Docker's bridges)."""
        from shoal.controller.endpoints import mac_for

        network = await self._network(network_id)
        iface = iface if isinstance(iface, dict) else {}
        v4, v6, mac = (str(iface.get(k) or "") for k in ("Address", "AddressIPv6", "MacAddress"))
        for cidr in (v4, v6):
            if cidr and network.config_for(cidr) is None:
                raise InvalidParameter(f"address {cidr} is in no subnet of network {network_id[:12]}")
        record = {"endpoint_id": endpoint_id, "network_id": network_id, "ipv4": v4, "ipv6": v6, "mac": mac or mac_for(v4)}
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND, endpoint_id, record)
        return {} if mac else {"MacAddress": record["mac"]}

    async def join(self, network_id: str, endpoint_id: str) -> dict[str, Any]:
        ctl = self.ctl
        network = await self._network(network_id)
        record = ctl.store.get(KIND, endpoint_id)
        if record is None or record.get("network_id") != network_id:
            raise NotFound(f"endpoint {endpoint_id[:12]} was not created on network {network_id[:12]}")
        ep = next(iter(ctl.endpoints_in(endpoint_id)), None)
        if ep is None:
            known = endpoint_id in ctl.sandboxes
            await ctl.create_sandbox(endpoint_id, handoff=True)
            try:
                ep = await ctl.connect(network_id, endpoint_id, name=endpoint_id,
                                       ipv4=_cidr_ip(record["ipv4"]), ipv6=_cidr_ip(record["ipv6"]),
                                       mac=record["mac"], ifname=PEER_PREFIX + endpoint_id[:11])
            except BaseException:
                if not known:
                    await ctl.delete_sandbox(endpoint_id)
                raise
        answer: dict[str, Any] = {"InterfaceName": {"SrcName": ep.ifname, "DstPrefix": "eth"}}
        for cidr, key in ((ep.ipv4, "Gateway"), (ep.ipv6, "GatewayIPv6")):
            gw = network.gateway_for(cidr) if cidr and not network.internal else ""
            if gw:
                answer[key] = gw
        if network.internal:
            answer["DisableGatewayService"] = True
        return answer

    async def leave(self, network_id: str, endpoint_id: str) -> None:
        """Idempotent: the veth pair goes (wherever libnetwork put the container's end)."""
        if self._ours(endpoint_id):
            await self.ctl.delete_sandbox(endpoint_id)

    async def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        await self.leave(network_id, endpoint_id)
        async with self.ctl.store.transaction() as tx:
            tx.delete(KIND, endpoint_id)

    def endpoint_info(self, network_id: str, endpoint_id: str) -> dict[str, Any]:
        ep = next(iter(self.ctl.endpoints_in(endpoint_id)), None)
        return {} if ep is None else {"HostInterface": ep.host_ifname, "ShoalEndpoint": ep.id}

    def _ours(self, sandbox_id: str) -> bool:
        sb = self.ctl.sandboxes.get(sandbox_id)
        return sb is not None and sb.handoff

    async def _find(self, network_id: str) -> Any:
        """A network here or (global) made on another host; one shoal's watch has not
        brought yet is read from the cluster store (dockerd learns of it from its own)."""
        network = self.ctl.networks.get(network_id) if isinstance(network_id, str) else None
        cluster = self.ctl.cluster
        if network is None and isinstance(network_id, str) and cluster is not None and cluster.joined:
            network = await cluster.fetch_network(network_id)
        return network

    async def _network(self, network_id: str) -> Any:
        network = await self._find(network_id)
        if network is None or LABEL_PLUGIN not in network.labels:
            raise NotFound(f"network {str(network_id)[:12]} not found (not made through shoal's plugins)")
        return network

    async def cleanup(self) -> None:
        """`shoald --cleanup`: our DOCKER-USER rules go with the bridges (the networks stay)."""
        for network in [n for n in self.ctl.networks.values() if LABEL_PLUGIN in n.labels]:
            bridge = self._bridge(network)
            if self.rules is not None and bridge:
                await self.rules.revoke(bridge, network.id[:12])

    # -- IPAM (shoal-ipam) -----------------------------------------------------------
    # Its own allocator over shoal's default pools, in address spaces of its own, so that
    # dockerd's pools never clash with shoal's allocator's (a network made with it is
    # a GivenIpam network like any other made through a plugin). It skips every subnet of
    # shoal's other networks and the host's routes. Nothing is kept: at start `restore`
    # asks again for what the stored networks and endpoints hold.
    async def ipam_request_pool(self, space: str, pool: str, sub_pool: str, options: Any, v6: bool) -> tuple[str, str]:
        if space == SERVED_GLOBAL:
            raise InvalidParameter(
                "shoal-ipam does not serve global networks (shoal-overlay): leave --ipam-driver out; dockerd's "
                "default IPAM allocates them in its cluster store, the same pools and addresses on every host")
        if space != SERVED_LOCAL:
            raise InvalidParameter(f"shoal-ipam serves the address space {SERVED_LOCAL}, not {space!r}")
        others = [ipaddress.ip_network(c.subnet) for n in self.ctl.networks.values()
                  if n.labels.get(LABEL_SPACE) != SERVED_LOCAL for c in n.ipam_configs]
        if pool:
            wanted = ipaddress.ip_network(pool, strict=False)
            if any(wanted.overlaps(o) for o in others if o.version == wanted.version):
                raise Forbidden(OVERLAP)
            pool = str(wanted)
        routes = [ipaddress.ip_network(r) for r in await self.ctl.kernel.routes()]
        pool_id, subnet, _ = await self.allocator.request_pool(SERVED_LOCAL, pool, sub_pool or "",
                                                               _strs(options), bool(v6), others + routes)
        return pool_id, subnet

    async def ipam_release_pool(self, pool_id: str) -> None:
        await self.allocator.release_pool(pool_id)

    async def ipam_request_address(self, pool_id: str, address: str, options: Any) -> str:
        cidr, _ = await self.allocator.request_address(pool_id, address or "", _strs(options))
        return cidr

    async def ipam_release_address(self, pool_id: str, address: str) -> None:
        await self.allocator.release_address(pool_id, address)

    async def restore(self) -> None:
        """After a start: the pools, gateways and aux addresses of the networks made with
        shoal-ipam, and the addresses of their endpoints (made or only created)."""
        for network, bridge in self._served_here() if self.rules is not None else ():
            await self.rules.allow(bridge, network.id[:12])  # a reboot, or rules deleted by hand
        mine = {n.id: n for n in self.ctl.networks.values() if n.labels.get(LABEL_SPACE) == SERVED_LOCAL}
        pools: dict[str, str] = {}
        for network in mine.values():
            for cfg in network.ipam_configs:
                pool_id, _, _ = await self.allocator.request_pool(SERVED_LOCAL, cfg.subnet, cfg.ip_range, {}, cfg.is_v6)
                pools[cfg.subnet] = pool_id
                for addr in (cfg.gateway, *cfg.aux_addresses.values()):
                    if addr:
                        await self.allocator.request_address(pool_id, addr, {})
        held = [(e.network_id, e.ipv4, e.ipv6) for e in self.ctl.endpoints.values()]
        held += [(r["network_id"], r["ipv4"], r["ipv6"]) for r in self.ctl.store.list(KIND)
                 if not self.ctl.endpoints_in(r.get("endpoint_id", ""))]
        taken: set[tuple[str, str]] = set()
        for network_id, *cidrs in held:
            network = mine.get(network_id)
            for cidr in cidrs if network is not None else ():
                cfg = network.config_for(cidr) if cidr else None
                if cfg is not None and (cfg.subnet, cidr) not in taken:
                    taken.add((cfg.subnet, cidr))
                    await self.allocator.request_address(pools[cfg.subnet], _cidr_ip(cidr), {})


def _strs(options: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}
