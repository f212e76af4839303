"""Joining a cluster store at start-up: resolve the advertise address, open etcd, make the
Cluster, and keep trying to join in the background while the store is unreachable (the
daemon serves its local networks meanwhile, and tears nothing down)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from shoal.controller import Controller
from shoal.bgp import Bird
from shoal.controller.cluster import Cluster
from shoal.controller.routing import Routing
from shoal.daemon.config import DaemonConfig
from shoal.dns import DnsRecords
from shoal.errors import InvalidParameter, ShoalError
from shoal.kernel import Kernel
from shoal.store.cluster import open_kv

log = logging.getLogger("shoal.daemon")
DEFAULT_PORT = "2376"
PREFIX = "/shoal/v2/"
# Layouts of earlier shoal versions: v1 kept subnets and addresses outside the IPAM's
# address space (`subnets/`, `addresses/<nid>/`); its networks are not read, only reported.
OLDER_PREFIXES = ("/shoal/v1/",)


async def resolve_advertise(kernel: Kernel, advertise: str) -> tuple[str, str]:
    """`IP`, `IP:PORT`, `IFACE` or `IFACE:PORT` -> (ip, "ip:port")."""
    head, sep, port = advertise.rpartition(":")
    if not sep or not port.isdigit():
        head, port = advertise, DEFAULT_PORT
    try:
        ip = str(ipaddress.ip_address(head))
    except ValueError:
        ip = await kernel.address_of_device(head)
        if not ip:
            raise InvalidParameter(f"--cluster-advertise {advertise}: no interface {head} with an IPv4 address "
                                   "in this namespace") from None
    return ip, f"{ip}:{port}"


async def attach_cluster(ctl: Controller, kernel: Kernel, cfg: DaemonConfig, records: DnsRecords) -> Cluster | None:
    if not cfg.cluster_store:
        return None
    ip, advertise = await resolve_advertise(kernel, cfg.cluster_advertise)
    link = await kernel.device_of_address(ip)
    if link is None:
        raise InvalidParameter(f"--cluster-advertise {cfg.cluster_advertise}: {ip} is not an address of this host")
    # a path in the URL goes in front of every key (the KV does it), as Docker put it in
    # front of its own root chain
    kv = open_kv(cfg.cluster_store, {k: v for k, v in cfg.cluster_store_opts.items() if k.startswith("kv.")})
    overlay = ctl.drivers.get("overlay")
    if overlay is not None:
        overlay.vtep, overlay.underlay_mtu = ip, link.mtu
    routed = ctl.drivers.get("routed")
    if routed is not None:
        routed.clustered, routed.mtu = True, link.mtu
    opts = cfg.cluster_store_opts
    ctl.cluster = Cluster(ctl, kv, advertise=advertise, vtep=ip, prefix=PREFIX, older_prefixes=OLDER_PREFIXES,
                          ttl=int(opts.get("discovery.ttl", 15)), resync=float(opts.get("discovery.resync", 30)),
                          records=records)
    ctl.cluster.attach_routing(Routing(Bird(cfg.exec_root / "bird"), router_id=ip, local_as=cfg.bgp_as,
                                       route_reflectors=cfg.bgp_route_reflectors))
    return ctl.cluster


async def join_forever(cluster: Cluster) -> None:
    """Join now, or keep trying every 2 s with a line in the log."""
    while True:
        try:
            await cluster.start()
            log.info("joined the cluster store %s as %s", cluster.kv.url, cluster.advertise)
            return
        except ShoalError as exc:
            log.warning("cannot join the cluster store yet: %s", exc)
            await asyncio.sleep(2.0)
