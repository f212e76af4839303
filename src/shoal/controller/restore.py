"""Startup: make the kernel match the store, and the store hold the predefined networks.

Order matters: IPAM is rebuilt from every stored network before anything new is
allocated (the local allocator keeps nothing, so every pool and address is replayed, as
Docker does for an allocator with RequiresRequestReplay), so a predefined network
created on first start can never take a subnet a stored network already owns.  Kernel objects are repaired (after a reboot they are
simply missing) and links carrying this engine's alias that the store does not know
are removed; links without the alias are never touched.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from shoal.controller.controller import KIND_NETWORK, Controller
from shoal.controller.endpoints import KIND_ENDPOINT, KIND_SANDBOX
from shoal.controller.firewalling import state_of
from shoal.firewall import required_sysctls
from shoal.ipam import GATEWAY, OPT_HOST_BOUND, OPT_OWNER, REQUEST_ADDRESS_TYPE
from shoal.kernel import KernelError
from shoal.model import Endpoint, Network, NetworkSpec, Sandbox

log = logging.getLogger("shoal.restore")

DEFAULT_BRIDGE = "shoal0"


def default_bridge_spec(bridge_name: str = DEFAULT_BRIDGE, mtu: int = 1500) -> NetworkSpec:
    prefix = "com.docker.network.bridge."
    return NetworkSpec(
        name="bridge",
        driver="bridge",
        options={
            prefix + "default_bridge": "true",
            prefix + "enable_icc": "true",
            prefix + "enable_ip_masquerade": "true",
            prefix + "host_binding_ipv4": "0.0.0.0",
            prefix + "name": bridge_name,
            "com.docker.network.driver.mtu": str(mtu),
        },
    )


async def restore(ctl: Controller, bridge_name: str = DEFAULT_BRIDGE, mtu: int = 1500) -> None:
    stored = [Network.from_dict(d) for d in ctl.store.list(KIND_NETWORK)]
    await _warm_plugins(ctl, stored)
    replayed: set[str] = set()
    for i, network in enumerate(stored):
        if network.scope != "global" and ctl.ipam_of(network).capabilities.requires_request_replay:
            try:
                stored[i] = network = await _replay_network(ctl, network)
                replayed.add(network.id)
            except Exception:  # noqa: BLE001 - a plugin gone meanwhile: the network stays stored
                log.exception("could not replay the pools of network %s (%s)", network.name, network.id[:12])
        ctl.networks[network.id] = network
    if ctl.cluster is not None:  # the global networks this host knew; the store may be down
        used = {d.get("network_id") for d in ctl.store.list(KIND_ENDPOINT)}
        for network in ctl.cluster.load_cache():
            ctl.networks[network.id] = network
            if network.id in used:  # built here before: repair it; the others stay unbuilt
                ctl.built.add(network.id)
                stored.append(network)
    for network in stored:
        try:
            await ctl.driver(network.driver).restore_network(network, ctl.alias("net", network.id))
        except Exception:  # noqa: BLE001 - one broken network must not stop the daemon
            log.exception("could not restore network %s (%s)", network.name, network.id[:12])
    await _restore_endpoints(ctl, replayed)
    await apply_firewall(ctl)  # the table must exist before incremental changes
    names = {n.name for n in ctl.networks.values()}
    for name, spec in (
        ("bridge", default_bridge_spec(bridge_name, mtu)),
        ("host", NetworkSpec(name="host", driver="host")),
        ("none", NetworkSpec(name="none", driver="null")),
    ):
        if name not in names:
            await ctl.create_network(spec, predefined=True)
            log.info("created predefined network %s", name)
    await remove_stale(ctl)


async def apply_firewall(ctl: Controller) -> None:
    """The whole ruleset rebuilt from the store in one batch: no duplicates, nothing stale."""
    state = state_of(ctl)
    await ctl.kernel.set_sysctls(required_sysctls(state))
    await ctl.firewall.apply_state(state)
    for ep in ctl.endpoints.values():
        if ep.host_ifname:
            try:
                await ctl.kernel.set_hairpin(ep.host_ifname)
            except KernelError:  # its container stopped while shoald was away: released next
                pass


async def _warm_plugins(ctl: Controller, stored: list[Network]) -> None:
    """One quick try at each plugin the stored networks name, so an IPAM plugin that wants
    its pools replayed gets them (dockerd asks at start, waiting ~15 s per missing plugin;
    shoal does not wait: a plugin that is not there yet is looked up at the next use)."""
    if ctl.plugins is None:
        return
    names = {("NetworkDriver", n.driver) for n in stored if n.driver not in ctl.drivers}
    names |= {("IpamDriver", n.ipam_driver) for n in stored if (n.ipam_driver or "default") not in ctl.ipam_drivers}
    for kind, name in sorted(names):
        await ctl.plugins.warm(name, kind)


async def _replay_network(ctl: Controller, network: Network) -> Network:
    """The network's pools, gateways and aux addresses asked for again. The answer's pool
    id replaces the stored one (a record from before pool ids were kept has none); a
    global network is never replayed here: its pools live in the cluster store."""
    ipam = ctl.ipam_of(network)
    local, _ = await ipam.get_default_address_spaces()
    configs = []
    for cfg in network.ipam_configs:
        owner = {OPT_OWNER: network.id}
        pool_id, _, _ = await ipam.request_pool(local, cfg.subnet, cfg.ip_range, owner, cfg.is_v6)
        if cfg.gateway:
            await ipam.request_address(pool_id, cfg.gateway, {REQUEST_ADDRESS_TYPE: GATEWAY, **owner})
        for aux in cfg.aux_addresses.values():
            await ipam.request_address(pool_id, aux, owner)
        configs.append(dataclasses.replace(cfg, pool_id=pool_id, address_space=local))
    return network.with_changes(ipam_configs=tuple(configs))


async def _restore_endpoints(ctl: Controller, replayed: set[str]) -> None:
    """Sandboxes and endpoints come back as stored; the container layer then releases the
    ones whose container stopped while the daemon was away."""
    for data in ctl.store.list(KIND_SANDBOX):
        sb = Sandbox.from_dict(data)
        ctl.sandboxes[sb.id] = sb
    for data in ctl.store.list(KIND_ENDPOINT):
        ep = Endpoint.from_dict(data)
        network = ctl.networks.get(ep.network_id)
        if network is None:
            continue
        ctl.endpoints[ep.id] = ep
        if network.id not in replayed:
            continue  # global: allocated in the cluster store, replayed when the host joins it
        for cidr in (ep.ipv4, ep.ipv6):
            cfg = network.config_for(cidr)
            if cfg is not None:
                await ctl.ipam_of(network).request_address(cfg.pool_id, cidr.split("/")[0],
                                                           {OPT_OWNER: ep.id, OPT_HOST_BOUND: "true"})


async def remove_stale_netns(ctl: Controller) -> list[str]:
    """Namespace files under our exec root that no stored sandbox owns: a sandbox create cut
    short between making the namespace and writing its record (the mount would leak)."""
    owned = {sb.path for sb in ctl.sandboxes.values() if sb.path}
    folder = Path(ctl.exec_root) / "netns"
    stale = [str(p) for p in sorted(folder.iterdir())] if folder.is_dir() else []
    stale = [p for p in stale if p not in owned]
    for path in stale:
        await ctl.kernel.delete_netns(path)
        log.info("removed stale network namespace %s", path)
    return stale


async def remove_stale(ctl: Controller) -> list[str]:
    """Delete links marked as this engine's whose object the store does not know."""
    await remove_stale_netns(ctl)
    known = set(ctl.networks) | set(ctl.endpoints)
    retiring = ctl.kernel.retiring()
    removed = []
    for link in await ctl.kernel.links():
        if not link.alias.startswith(ctl.alias_prefix) or link.name in retiring:
            continue
        object_id = link.alias.rsplit(":", 1)[-1]
        if object_id not in known:
            await ctl.kernel.delete_link(link.name)
            removed.append(link.name)
            log.info("removed stale link %s (%s)", link.name, link.alias)
    return removed

