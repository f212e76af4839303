"""A network driver that is a remote plugin: libnetwork's NetworkDriver.* protocol.

shoal's `join` is libnetwork's CreateEndpoint and Join in one verb, so it sends both
and then does what libnetwork's sandbox code does with the answer: it moves the
plugin's interface (SrcName, made in shoald's namespace) into the sandbox, names it
DstPrefix + N, gives it the endpoint's MAC and addresses, and routes it: the Join's
Gateway as the default route when this endpoint gives the sandbox its default route,
its StaticRoutes (RouteType 0 through NextHop, 1 connected). Every step taken is undone
when a later one fails, in the plugin too (Leave, DeleteEndpoint), as dockerd does.

Replies are checked as Go's decoder and libnetwork check them; a plugin's `Err` is an
error `remote: <Err>`. Leave, DeleteEndpoint and DeleteNetwork errors are logged and
the removal goes on (dockerd's rule: a dead plugin must not pin networks forever).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from shoal.drivers.base import Capabilities, Problem
from shoal.errors import Forbidden, ShoalError
from shoal.model import Endpoint, Network, NetworkSpec
from shoal.plugins.client import Adaptor, Plugin, PluginError, string_field

if TYPE_CHECKING:
    from shoal.drivers.l2 import BridgeOptions
    from shoal.kernel import Kernel, LinkInfo

NETWORK_DRIVER = "NetworkDriver"
EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"
PORT_MAP = "com.docker.network.portmap"
MAC_OPTION = "com.docker.network.endpoint.macaddress"
log = logging.getLogger("shoal.plugins")


def _str(data: Mapping[str, Any], key: str, verb: str) -> str:
    return string_field(data, key, f"NetworkDriver.{verb}")


def _cidr(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise PluginError(f"invalid CIDR address: {value} (the plugin's {what})") from None


def ipam_data(network: Network, v6: bool) -> list[dict[str, Any]]:
    """IPv4Data / IPv6Data as libnetwork marshals IPAMData: CIDR strings, AuxAddresses only when set."""
    out = []
    for cfg in network.v6_configs if v6 else network.v4_configs:
        length = cfg.subnet.split("/")[1]
        item: dict[str, Any] = {"AddressSpace": cfg.address_space, "Pool": cfg.subnet}
        if cfg.gateway:
            item["Gateway"] = f"{cfg.gateway}/{length}"
        if cfg.aux_addresses:
            item["AuxAddresses"] = {k: f"{v}/{length}" for k, v in cfg.aux_addresses.items()}
        out.append(item)
    return out


def network_options(network: Network) -> dict[str, Any]:
    """libnetwork's generic options of a network, what dockerd sends in CreateNetwork."""
    opts: dict[str, Any] = {"com.docker.network.enable_ipv6": network.enable_ipv6,
                            "com.docker.network.generic": dict(network.options)}
    if network.internal:
        opts["com.docker.network.internal"] = True
    return opts


def sandbox_options() -> dict[str, Any]:
    """The sandbox's labels, sent with Join and ProgramExternalConnectivity. shoal does not
    pass a container's port mappings to plugins (yet): both lists are empty, as dockerd
    sends them for a container without ports."""
    return {EXPOSED_PORTS: [], PORT_MAP: []}


def endpoint_options(network: Network, ep: Endpoint) -> dict[str, Any] | None:
    if network.internal:  # dockerd adds no port options on an internal network
        return None
    opts: dict[str, Any] = sandbox_options()
    if ep.mac:  # Go marshals a net.HardwareAddr as base64
        opts[MAC_OPTION] = base64.b64encode(bytes.fromhex(ep.mac.replace(":", ""))).decode()
    return opts


def discovery(host: Mapping[str, str]) -> dict[str, Any]:
    """libnetwork's NodeDiscovery notification (DiscoveryType 1) for a host of the cluster:
    its address without the port, as discoverapi.NodeDiscoveryData."""
    address = host.get("vtep") or host.get("advertise", "").rsplit(":", 1)[0]
    return {"DiscoveryType": 1, "DiscoveryData": {"Address": address, "BindAddress": "", "Self": False}}


@dataclasses.dataclass(frozen=True)
class JoinAnswer:
    src: str
    prefix: str
    gateways: tuple[str, ...]
    routes: tuple[tuple[str, str], ...]  # (destination, next hop) for RouteType 0
    connected: tuple[str, ...]  # destinations of RouteType 1
    disable_gateway_service: bool


def parse_join(data: Mapping[str, Any]) -> JoinAnswer:
    names = data.get("InterfaceName") or {}
    if not isinstance(names, dict):
        raise PluginError(f"NetworkDriver.Join: InterfaceName must be an object, the plugin sent {names!r}")
    src, prefix = _str(names, "SrcName", "Join"), _str(names, "DstPrefix", "Join")
    if not src or not prefix:
        raise PluginError("NetworkDriver.Join: the plugin named no interface (InterfaceName.SrcName and "
                          "DstPrefix) to move into the container")
    gateways = []
    for key in ("Gateway", "GatewayIPv6"):
        gw = _str(data, key, "Join")
        if gw:
            try:
                gateways.append(str(ipaddress.ip_address(gw)))
            except ValueError:
                raise PluginError(f'unable to parse {key} "{gw}"') from None
    routes, connected = [], []
    for r in data.get("StaticRoutes") or []:
        if not isinstance(r, dict) or r.get("RouteType", 0) not in (0, 1):
            raise PluginError(f"NetworkDriver.Join: bad static route {r!r}")
        dst = str(ipaddress.ip_network(_cidr(_str(r, "Destination", "Join"), "static route"), strict=False))
        hop = _str(r, "NextHop", "Join")
        if hop:
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                raise PluginError(f"failed to parse nexthop IP {hop}") from None
        if r.get("RouteType", 0) == 1:
            connected.append(dst)
        else:
            routes.append((dst, hop))
    return JoinAnswer(src, prefix, tuple(gateways), tuple(routes), tuple(connected),
                      bool(data.get("DisableGatewayService")))


class RemoteDriver(Adaptor):
    """NAME's network driver; it asks the plugin nothing until first used."""

    KIND, ERROR_FIELD = NETWORK_DRIVER, "Err"

    def __init__(self, name: str, get: Callable[[str, str], Awaitable[Plugin]], kernel: Kernel) -> None:
        self.name = name
        self.capabilities = Capabilities(derives_mac=False, external_connectivity=True, rebuilds_endpoints=False)
        self._get = get
        self._kernel = kernel
        self._plugin: Plugin | None = None

    async def handshake(self, plugin: Plugin) -> None:
        caps = await self._raw(plugin, "GetCapabilities", None)
        scope = caps.get("Scope")
        if scope not in ("local", "global"):
            raise PluginError(f"invalid capability: expecting 'local' or 'global', got {scope}")
        if caps.get("ConnectivityScope", "") not in ("", "local", "global"):
            raise PluginError(f"invalid capability: expecting 'local' or 'global', got {caps['ConnectivityScope']}")
        self.capabilities = dataclasses.replace(self.capabilities, scope=scope)
        self._plugin = plugin

    async def _quiet(self, verb: str, body: Any) -> None:
        """A removal step whose failure must not stop the removal (dockerd warns)."""
        try:
            await self._call(verb, body)
        except ShoalError as exc:
            log.warning("plugin %s: %s failed: %s", self.name, verb, exc.message)

    # -- networks ---------------------------------------------------------------------
    def validate(self, spec: NetworkSpec) -> None:
        """The options are the plugin's to judge, in CreateNetwork. A global-scope plugin
        would need CreateNetwork on every host of a cluster: not done yet, said clearly."""
        if self.capabilities.scope == "global":
            raise Forbidden(f"plugin {self.name} is a global-scope network driver: shoal runs only local-scope "
                            "plugin networks so far")

    def bridge_of(self, network: Network) -> BridgeOptions | None:
        return None  # a plugin's traffic is its own: no bridge for shoal's firewall to police

    async def create_network(self, network: Network, alias: str) -> None:
        await self._call("CreateNetwork", {
            "NetworkID": network.id, "Options": network_options(network),
            "IPv4Data": ipam_data(network, False), "IPv6Data": ipam_data(network, True),
        })

    async def delete_network(self, network: Network) -> None:
        await self._quiet("DeleteNetwork", {"NetworkID": network.id})

    async def restore_network(self, network: Network, alias: str) -> None:
        """Nothing: the plugin keeps its own networks (dockerd asks it nothing at start, and
        looks the plugin up again only when the network is used)."""

    def verify(self, network: Network, alias: str, endpoints: list[Endpoint],
               links: Mapping[str, LinkInfo]) -> list[Problem]:
        return []  # the plugin's kernel objects are its own

    async def repair_endpoint(self, network: Network, ep: Endpoint, netns_path: str, alias: str,
                              gateway: bool) -> Endpoint:
        """What shoal put on the plugin's interface (addresses, the default route) is put
        back in place; an interface that is gone only the plugin could make again."""
        if not netns_path or not ep.ifname:
            return ep
        inside = await self._kernel.sandbox_addresses(netns_path)
        if ep.ifname not in inside:
            log.warning("endpoint %s: the plugin's interface %s is gone from its container; reconnect it",
                        ep.name, ep.ifname)
            return ep
        missing = [a for a in (ep.ipv4, ep.ipv6) if a and a not in inside[ep.ifname]]
        await self._kernel.configure_iface(netns_path, ep.ifname, missing, list(ep.gateways or ()),
                                           default_route=gateway and bool(ep.gateways) and not network.internal)
        return ep

    # -- endpoints --------------------------------------------------------------------
    async def join(self, network: Network, ep: Endpoint, netns_path: str, alias: str, gateway: bool) -> Endpoint:
        ids = {"NetworkID": network.id, "EndpointID": ep.id}
        ep = await self._create_endpoint(network, ep)
        try:
            answer = parse_join(await self._call("Join", {**ids, "SandboxKey": netns_path,
                                                          "Options": sandbox_options()}))
        except BaseException:
            await self._quiet("DeleteEndpoint", ids)
            raise
        try:
            ep = await self._plumb(network, ep, netns_path, answer, gateway)
        except BaseException:
            await self._quiet("Leave", ids)
            await self._quiet("DeleteEndpoint", ids)
            raise
        return ep

    async def _create_endpoint(self, network: Network, ep: Endpoint) -> Endpoint:
        """CreateEndpoint with the addresses shoal's IPAM gave; the plugin may choose the
        MAC when shoal has none and an address of a family shoal left empty, nothing else."""
        ids = {"NetworkID": network.id, "EndpointID": ep.id}
        iface = {"Address": ep.ipv4, "AddressIPv6": ep.ipv6, "MacAddress": ep.mac}
        try:
            data = await self._call("CreateEndpoint", {**ids, "Interface": iface,
                                                       "Options": endpoint_options(network, ep)})
        except ShoalError as exc:
            raise PluginError(f"failed to create endpoint {ep.name} on network {network.name}: {exc.message}") from None
        try:
            return self._merge_interface(ep, data.get("Interface"))
        except ShoalError as exc:
            rolled = await self._rollback(ids)
            raise PluginError(f"failed to create endpoint {ep.name} on network {network.name}: "
                              f"{exc.message}; {rolled}") from None

    async def _rollback(self, ids: dict[str, str]) -> str:
        try:
            await self._call("DeleteEndpoint", ids)
        except ShoalError as exc:
            return f"failed to roll back: {exc.message}"
        return "rolled back"

    @staticmethod
    def _merge_interface(ep: Endpoint, got: Any) -> Endpoint:
        if not got:
            return ep
        if not isinstance(got, dict):
            raise PluginError(f"the plugin's Interface must be an object, it sent {got!r}")
        changes = {}
        mac = _str(got, "MacAddress", "CreateEndpoint")
        if mac:
            if ep.mac:
                raise PluginError(f"driver modified interface MAC address: endpoint interface MAC address present "
                                  f"({ep.mac}). Cannot be modified with {mac}.")
            try:
                raw = bytes.fromhex(mac.replace(":", ""))
            except ValueError:
                raw = b""
            if len(raw) != 6 or mac.count(":") != 5:
                raise PluginError(f"address {mac}: invalid MAC address")
            changes["mac"] = mac.lower()
        for key, field in (("Address", "ipv4"), ("AddressIPv6", "ipv6")):
            addr = _str(got, key, "CreateEndpoint")
            if not addr:
                continue
            addr = _cidr(addr, key)
            if getattr(ep, field):
                raise PluginError(f"driver modified interface address: endpoint interface IP present "
                                  f"({getattr(ep, field)}). Cannot be modified with ({addr}).")
            if (":" in addr) != (field == "ipv6"):
                raise PluginError(f"driver modified interface address: {addr} is not an {key}")
            changes[field] = addr
        return ep.with_changes(**changes)

    async def _plumb(self, network: Network, ep: Endpoint, netns_path: str, answer: JoinAnswer,
                     gateway: bool) -> Endpoint:
        ifname = ep.ifname if ep.ifname.startswith(answer.prefix) and ep.ifname[len(answer.prefix):].isdigit() \
            else await self._next_name(netns_path, answer.prefix)
        routes = [(dst, "") for dst in answer.connected] + list(answer.routes)
        default = gateway and bool(answer.gateways) and not network.internal
        await self._kernel.adopt_iface(
            answer.src, netns_path, ifname, mac=ep.mac, addresses=[a for a in (ep.ipv4, ep.ipv6) if a],
            gateways=list(answer.gateways), default_route=default, routes=routes,
        )
        return ep.with_changes(ifname=ifname, gateways=answer.gateways, src_name=answer.src, host_ifname="")

    async def _next_name(self, netns_path: str, prefix: str) -> str:
        taken = set(await self._kernel.sandbox_addresses(netns_path))
        return next(f"{prefix}{i}" for i in range(len(taken) + 1) if f"{prefix}{i}" not in taken)

    async def leave(self, network: Network, ep: Endpoint, netns_path: str) -> None:
        """Leave, the interface back to the host under its SrcName, DeleteEndpoint (the
        plugin deletes its link there); a plugin error is logged and the leave goes on."""
        ids = {"NetworkID": network.id, "EndpointID": ep.id}
        await self._quiet("Leave", ids)
        if netns_path and ep.ifname and ep.src_name:
            await self._kernel.release_iface(netns_path, ep.ifname, ep.src_name)
        await self._quiet("DeleteEndpoint", ids)

    async def program_external(self, network: Network, ep: Endpoint) -> None:
        try:
            await self._call("ProgramExternalConnectivity", {"NetworkID": network.id, "EndpointID": ep.id,
                                                             "Options": sandbox_options()})
        except PluginError as exc:
            if exc.plugin_status != 404:  # not implemented: fine (libnetwork)
                raise PluginError(f"driver failed programming external connectivity on endpoint {ep.name} "
                                  f"({ep.id}): {exc.message}") from None

    async def revoke_external(self, network: Network, ep: Endpoint) -> None:
        try:
            await self._call("RevokeExternalConnectivity", {"NetworkID": network.id, "EndpointID": ep.id})
        except PluginError as exc:
            if exc.plugin_status != 404:
                raise PluginError(f"driver failed revoking external connectivity on endpoint {ep.name} "
                                  f"({ep.id}): {exc.message}") from None

    async def discover_new(self, host: dict[str, str]) -> None:
        await self._quiet("DiscoverNew", discovery(host))  # dockerd logs a failure, nothing more

    async def discover_delete(self, host: dict[str, str]) -> None:
        await self._quiet("DiscoverDelete", discovery(host))

    async def endpoint_info(self, network: Network, ep: Endpoint) -> dict[str, Any]:
        """EndpointOperInfo, which dockerd asks after every connect (to read the exposed
        ports back); shoal keeps those itself, so a failure is only logged."""
        try:
            data = await self._call("EndpointOperInfo", {"NetworkID": network.id, "EndpointID": ep.id})
        except ShoalError as exc:
            log.warning("plugin %s: EndpointOperInfo failed: %s", self.name, exc.message)
            return {}
        value = data.get("Value")
        return value if isinstance(value, dict) else {}
