"""shoald's composition root: build every part, restore, serve, stop cleanly."""

from __future__ import annotations

import asyncio
import fcntl
import grp
import logging
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shoal.api.app import App, Route
from shoal.api.archive import ArchiveRoutes
from shoal.api.cni import CniRoutes
from shoal.api.containers import ContainerRoutes
from shoal.api.execs import ExecRoutes
from shoal.api.http import serve_unix
from shoal.api.distribution import DistributionRoutes
from shoal.api.imagefiles import ImageFileRoutes
from shoal.api.lifecycle import LifecycleRoutes
from shoal.api.stats import StatsRoutes
from shoal.api.images import ImageRoutes
from shoal.api import swarm
from shoal.api.networks import NetworkRoutes
from shoal.api.volumes import VolumeRoutes
from shoal.api import pluginserver
from shoal.api.selfcheck import CheckRoutes
from shoal.api.system import SystemRoutes
from shoal.api.timings import TimingRoutes
from shoal.controller import Controller
from shoal.controller.containers import Containers
from shoal.controller.etcfiles import EtcFiles, read_host_resolv_conf
from shoal.controller.foreign import ForeignAttachments
from shoal.dns import DnsRecords, DnsServer, embedded_upstreams
from shoal.controller.repair import SelfHeal
from shoal.controller.restore import restore
from shoal.controller.served import ServedPlugins
from shoal.daemon.clustering import attach_cluster, join_forever
from shoal.daemon.config import DaemonConfig, parse_args
from shoal.daemon.faults import FaultPlan, Steps, SteppedStore
from shoal.daemon.timings import Timed, TimedStore, Timings
from shoal.drivers import BridgeDriver, HostDriver, IpvlanDriver, MacvlanDriver, NullDriver
from shoal.drivers.overlay import OverlayDriver
from shoal.drivers.routed import RoutedDriver
from shoal.kernel.routed import RTPROT_BIRD
from shoal.errors import ShoalError
from shoal.firewall import NftFirewall, NoneFirewall, br_netfilter_sysctls
from shoal.firewall.dockeruser import DockerUser
from shoal.ipam import DefaultIpam, default_pools, ula_pool
from shoal.kernel import Kernel
from shoal.plugins import Dirs, PluginRegistry
from shoal.registry import Registry
from shoal.runtime import ImageStore, Runtime, remove_cgroup_parent
from shoal.runtime.pull import Puller
from shoal.runtime.push import Pusher
from shoal.store import SqliteStore

log = logging.getLogger("shoald")


class AlreadyRunning(ShoalError):
    pass


def lock_data_root(data_root: Path) -> int:
    """An flock on DATA_ROOT/shoald.lock: one daemon per data root, released on exit."""
    data_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_root / "shoald.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode().strip() or "?"
        os.close(fd)
        raise AlreadyRunning(
            f"another shoald (pid {pid}) is already running with data root {data_root}; "
            "stop it first, or give this one its own --data-root and -H"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def engine_id(store: SqliteStore) -> str:
    meta = store.get("meta", "engine")
    if meta is None:
        meta = {"id": os.urandom(32).hex()}
        store.write_now("meta", "engine", meta)
    return meta["id"]


@dataclass
class Parts:
    ctl: Controller
    containers: Containers
    app: App
    store: SqliteStore
    kernel: Kernel
    dns: DnsServer
    records: DnsRecords
    served: ServedPlugins
    registry: Registry


def build(cfg: DaemonConfig) -> Parts:
    timings = Timings()  # each layer's share of a request's time: GET /shoal/timings
    store: Any = SqliteStore(cfg.data_root / "shoal.db")
    eid = engine_id(store)
    kernel: Any = Kernel()
    plan = FaultPlan(cfg.fault_dir) if cfg.fault_dir else None
    if plan is not None:  # tests only: crash points (daemon.faults)
        store, kernel = SteppedStore(store, "store", plan), Steps(kernel, "kernel", plan)
    store, kernel = TimedStore(store, "store", timings), Timed(kernel, "kernel", timings)
    pools = list(cfg.pools) or default_pools()
    ipam = Timed(DefaultIpam(pools, [ula_pool(eid)]), "ipam", timings)
    drivers = {"bridge": BridgeDriver(kernel, cfg.mtu), "host": HostDriver(), "null": NullDriver(),
               "overlay": OverlayDriver(kernel),  # refuses networks until a cluster store is attached
               "routed": RoutedDriver(kernel, mtu=cfg.mtu),  # likewise
               "macvlan": MacvlanDriver(kernel, cfg.mtu), "ipvlan": IpvlanDriver(kernel)}
    firewall: Any = NftFirewall() if cfg.firewall == "nftables" else NoneFirewall()
    if plan is not None:
        firewall = Steps(firewall, "firewall", plan)
    firewall = Timed(firewall, "firewall", timings)
    served_names = frozenset([*pluginserver.DRIVERS, pluginserver.IPAM]) if cfg.serve_plugins else frozenset()
    plugins = PluginRegistry(kernel, Dirs(cfg.plugin_sockets, cfg.plugin_specs), cfg.plugin_retry,
                             cfg.plugin_timeout, own=served_names)
    ctl = Controller(store, kernel, ipam, drivers, eid, exec_root=str(cfg.exec_root),  # type: ignore[arg-type]
                     firewall=firewall, plugins=plugins)
    images: Any = ImageStore(cfg.data_root / "images")
    runtime: Any = Runtime(cfg.data_root / "runtime", images, runtimes=cfg.runtimes,
                            default_runtime=cfg.default_runtime)
    if plan is not None:
        runtime = Steps(runtime, "runtime", plan)
    runtime, images = Timed(runtime, "runtime", timings), Timed(images, "runtime", timings)
    host_resolv = read_host_resolv_conf(cfg.resolv_conf)
    records = DnsRecords()
    dns: Any = Timed(DnsServer(embedded_upstreams(host_resolv, cfg.dns), records), "dns", timings)
    containers = Containers(ctl, runtime, images, cfg.data_root / "etc", EtcFiles(host_resolv, cfg.dns),
                            dns, records)
    pool_json = [{"Base": p.base, "Size": p.size} for p in pools]
    registry = Registry(insecure_registries=cfg.insecure_registries, mirrors=cfg.registry_mirrors)
    distribution = DistributionRoutes(Puller(registry, images, concurrency=cfg.max_concurrent_downloads),
                                      Pusher(registry, images, concurrency=cfg.max_concurrent_uploads),
                                      registry, images)
    app = App(api_routes(cfg, ctl, containers, images, pool_json, timings, distribution), clock=timings)
    # always: networks made through the plugins need its IPAM at restore, served or not
    served = ServedPlugins(ctl, pluginserver.DRIVERS, pools,
                           DockerUser() if cfg.firewall == "nftables" else None)
    return Parts(ctl, containers, app, store, kernel, dns, records, served, registry)


def api_routes(cfg: DaemonConfig, ctl: Controller, containers: Containers, images: ImageStore,
               pool_json: list[dict], timings: Timings | None = None,
               distribution: DistributionRoutes | None = None) -> list[Route]:
    """Every route shoald serves; tests/unit/test_openapi.py holds the OpenAPI document to it."""
    distribution = distribution or DistributionRoutes(None, None, None, images)
    return (
        SystemRoutes(ctl, str(cfg.data_root), pool_json, containers.counts,
                     runtimes=cfg.runtimes, default_runtime=cfg.default_runtime).routes()
        + NetworkRoutes(ctl, containers).routes()
        + ContainerRoutes(ctl, containers, distribution.note_miss).routes()
        + VolumeRoutes(getattr(containers, "volumes", None)).routes()  # type: ignore[arg-type]
        + ArchiveRoutes(containers).routes()
        + StatsRoutes(containers).routes()
        + LifecycleRoutes(containers).routes()
        + ExecRoutes(containers).routes()
        + ImageRoutes(images, containers, distribution.pull).routes()
        + ImageFileRoutes(images, lambda: {c.image_id for c in containers.records.values()}).routes()
        + distribution.routes()
        + swarm.routes()
        + CheckRoutes(containers).routes()
        + CniRoutes(ForeignAttachments(ctl, containers.publisher)).routes()
        + TimingRoutes(timings.snapshot if timings is not None else None).routes()
    )


async def listen(app: App, cfg: DaemonConfig) -> list[tuple[asyncio.AbstractServer, str]]:
    servers = []
    gid = grp.getgrnam(cfg.socket_group).gr_gid if cfg.socket_group else -1
    for path in cfg.socket_paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # we hold the data-root lock: a leftover socket is ours
        server = await serve_unix(app, path)
        os.chmod(path, 0o660)
        if gid >= 0:
            os.chown(path, -1, gid)
        servers.append((server, path))
        log.info("API listening on unix://%s", path)
    return servers


async def run(cfg: DaemonConfig) -> None:
    cfg.exec_root.mkdir(parents=True, exist_ok=True)
    parts = build(cfg)
    ctl, app = parts.ctl, parts.app
    joining: asyncio.Task | None = None
    healer = SelfHeal(parts.containers, cfg.self_heal_interval)
    try:
        cluster = await attach_cluster(ctl, parts.kernel, cfg, parts.records)
        br_netfilter_off = await switch_br_netfilter(parts.kernel, cfg.br_netfilter)
        await restore(ctl, cfg.bridge_name, cfg.mtu)
        await parts.containers.restore()
        await healer.once()  # endpoints a crash left without their veth, orphans of a removal
        if cfg.cleanup:
            await cleanup(parts)
            if br_netfilter_off:  # back to the namespace's default
                await parts.kernel.set_sysctls(br_netfilter_sysctls(True), missing_ok=True)
            return
        servers = await listen(app, cfg)
        if cfg.serve_plugins:
            await parts.served.restore()
            servers += await pluginserver.serve(parts.served, cfg.serve_plugins)
        healer.start()
        if cluster is not None:
            joining = asyncio.get_running_loop().create_task(join_forever(cluster))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("shoald ready (engine %s, data root %s)", ctl.engine_id[:12], cfg.data_root)
        await stop.wait()
        log.info("shutting down")
        for server, path in servers:
            server.close()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    finally:
        await healer.stop()
        if joining is not None:
            joining.cancel()
        if ctl.cluster is not None:
            await ctl.cluster.stop()
        await parts.dns.close()
        await parts.registry.aclose()
        if ctl.plugins is not None:
            await ctl.plugins.close()
        parts.kernel.close()
        parts.store.close()


async def switch_br_netfilter(kernel: Kernel, mode: str) -> bool:
    """`--br-netfilter`; True when it was turned off here. Only where shoald has the
    namespace to itself by default: in the machine's namespace Docker's and kube-proxy's
    iptables rules need bridged frames in the IP hooks, and the switch is theirs too."""
    if mode == "leave" or (mode == "auto" and await kernel.in_initial_netns()):
        return False
    try:
        written = await kernel.set_sysctls(br_netfilter_sysctls(False), missing_ok=True)
    except ShoalError as exc:
        log.warning("br_netfilter left on (%s): bridged frames keep going through the IP hooks", exc)
        return False
    if not written:
        log.info("br_netfilter is not loaded: nothing to turn off (if it is loaded later, its switches are on)")
    return bool(written)


async def cleanup(parts: Parts) -> None:
    """`shoald --cleanup`: containers are removed, and nothing shoal made stays in the
    kernel; networks stay in the store (their bridges come back at the next start)."""
    for cid in list(parts.containers.records):
        await parts.containers.remove(cid, force=True)
    ctl = parts.ctl
    for sid in list(ctl.sandboxes):
        await ctl.delete_sandbox(sid)
    await ctl.kernel.settle()  # no link deleted twice: the reaper's first
    for link in await ctl.kernel.links():
        if link.alias.startswith(ctl.alias_prefix):
            await ctl.kernel.delete_link(link.name)
    await ctl.firewall.cleanup()
    await stop_routing(ctl)
    await parts.served.cleanup()
    await ctl.kernel.settle()  # the bridges deleted in the background are gone before we say so
    remove_cgroup_parent()
    log.info("cleaned up: containers stopped, namespaces, links, firewall tables and the empty cgroup parent removed")


async def stop_routing(ctl: Controller) -> None:
    """BIRD shut down for good, and what a graceful stop left in the kernel of its routes
    into routed pools (BGP-learned and our blackholes) removed."""
    if ctl.cluster is None or ctl.cluster.routing is None:
        return
    await ctl.cluster.routing.bird.stop(graceful=False)
    pools = [c.subnet for n in ctl.networks.values() if (d := ctl.drivers.get(n.driver)) is not None
             and d.capabilities.routed for c in n.v4_configs]
    if pools:
        gone = await ctl.kernel.delete_routes_inside(RTPROT_BIRD, pools)
        log.info("removed %d BIRD route(s) into routed pools", gone)


def _quiet_forked_child() -> None:
    """pyroute2 forks helpers to reach other namespaces; a forked child inherits asyncio's
    signal wake-up fd, so a SIGTERM meant for the child would stop *this* daemon."""
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("pyroute2", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        lock_fd = lock_data_root(cfg.data_root)
    except AlreadyRunning as exc:
        print(f"shoald: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    os.register_at_fork(after_in_child=_quiet_forked_child)
    try:
        asyncio.run(run(cfg))
    except ShoalError as exc:
        print(f"shoald: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        os.close(lock_fd)
    log.debug("config was %s", asdict(cfg))


if __name__ == "__main__":
    main()
