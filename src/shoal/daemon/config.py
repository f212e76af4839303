"""shoald's command line, parsed once into a typed DaemonConfig."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from shoal import __version__
from shoal.errors import InvalidParameter
from shoal.model import PoolSpec, validate

DEFAULT_SOCKET = "unix:///run/shoal/shoal.sock"
DEFAULT_DATA_ROOT = "/var/lib/shoal"
RUNC_PATH = "/usr/sbin/runc"
CRUN_PATH = "/usr/bin/crun"
RUNTIME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # it names a state directory too


STORE_OPTS = {"kv.cacertfile", "kv.certfile", "kv.keyfile", "discovery.ttl", "discovery.resync"}


def parse_store_opt(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or key not in STORE_OPTS:
        raise argparse.ArgumentTypeError(
            f"invalid --cluster-store-opt {text!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(STORE_OPTS))}")
    if key.startswith("discovery.") and not (value.isdigit() and int(value) > 0):
        raise argparse.ArgumentTypeError(f"invalid --cluster-store-opt {text!r}: expected a number of seconds")
    return key, value


def parse_runtime(text: str) -> tuple[str, str]:
    """`NAME=PATH`, as dockerd's --add-runtime."""
    name, sep, path = text.partition("=")
    if not sep or not RUNTIME_NAME.match(name) or not path.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"invalid runtime {text!r}: expected NAME=PATH, NAME of letters, digits, '_.-', with an absolute "
            "path (e.g. myrunc=/usr/local/bin/runc)"
        )
    if name == "runc":
        raise argparse.ArgumentTypeError("runtime name 'runc' is reserved")  # dockerd's words
    return name, path


# dockerd 20.10 also answers to its containerd shims' names, both runc (daemon/runtime_unix.go)
RUNC_ALIASES = ("io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


def builtin_runtimes() -> dict[str, str]:
    """runc always (and under dockerd's other names for it); crun too once it is installed, so
    that `--runtime crun` works without flags (dockerd 20.10 needs --add-runtime for it: a
    deliberate difference, docs/compat.md)."""
    found = {"runc": RUNC_PATH, **{alias: RUNC_PATH for alias in RUNC_ALIASES}}
    if os.access(CRUN_PATH, os.X_OK):
        found["crun"] = CRUN_PATH
    return found


@dataclass(frozen=True)
class DaemonConfig:
    data_root: Path
    exec_root: Path
    hosts: tuple[str, ...]
    log_level: str = "info"
    pools: tuple[PoolSpec, ...] = ()  # empty: Docker's defaults
    mtu: int = 1500
    bridge_name: str = "shoal0"
    socket_group: str = ""
    dns: tuple[str, ...] = ()
    firewall: str = "nftables"
    cleanup: bool = False
    br_netfilter: str = "auto"
    resolv_conf: str = "/etc/resolv.conf"
    cluster_store: str = ""
    cluster_advertise: str = ""
    cluster_store_opts: dict[str, str] = field(default_factory=dict)
    runtimes: dict[str, str] = field(default_factory=lambda: {"runc": RUNC_PATH})  # name -> binary
    default_runtime: str = "runc"
    self_heal_interval: float = 10.0
    fault_dir: str = ""  # tests only: crash points (daemon.faults)
    plugin_sockets: str = "/run/docker/plugins"
    plugin_specs: tuple[str, ...] = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
    plugin_retry: float = 15.0
    plugin_timeout: float = 30.0
    serve_plugins: str = ""  # directory of the Docker plugin sockets; empty: not served
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    bgp_as: int = 64512
    bgp_route_reflectors: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def runtime_path(self) -> str:
        return self.runtimes[self.default_runtime]

    @property
    def socket_paths(self) -> list[str]:
        return [h.removeprefix("unix://") for h in self.hosts]


def parse_pool(text: str) -> PoolSpec:
    """`base=10.10.0.0/16,size=24`, as dockerd's --default-address-pool."""
    parts = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    try:
        return PoolSpec(parts["base"], int(parts["size"]))
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"invalid address pool {text!r}: expected base=CIDR,size=N (e.g. base=10.10.0.0/16,size=24)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shoald",
        description="shoal's daemon: Docker-compatible networking over the Docker Engine API.",
        epilog="Run several daemons side by side by giving each its own --data-root and -H "
        "(and starting each inside its own network namespace with nsenter --net=...).",
    )
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                   help=f"where the store and everything the daemon keeps live (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", default="",
                   help="run-time state: sockets, netns mounts (default DATA_ROOT/run)")
    p.add_argument("-H", "--host", action="append", default=[],
                   help=f"API socket to listen on, unix://PATH (default {DEFAULT_SOCKET})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="logging verbosity (default info)")
    p.add_argument("--default-address-pool", action="append", type=parse_pool, default=[],
                   metavar="base=CIDR,size=N",
                   help="replace the default pools (repeatable); default: Docker's list, 172.17.0.0/16 "
                   "... 172.31.0.0/16 as /16s, then 192.168.0.0/16 as /20s")
    p.add_argument("--mtu", type=int, default=1500, help="default MTU of bridge networks (default 1500)")
    p.add_argument("--bridge-name", default="shoal0", help="Linux bridge of the default network (default shoal0)")
    p.add_argument("--dns", action="append", default=[], metavar="IP",
                   help="upstream DNS server for containers (repeatable, at most 3 used); default: the "
                   "host's resolv.conf without loopback servers")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help="the host resolv.conf containers' DNS settings derive from (default /etc/resolv.conf)")
    p.add_argument("--firewall-backend", choices=["nftables", "none"], default="nftables",
                   help="nftables (default): isolation, NAT and published ports in shoal's own tables; "
                   "none: touch no firewall (no isolation, no published ports)")
    p.add_argument("--br-netfilter", choices=["auto", "off", "leave"], default="auto",
                   help="br_netfilter's bridge-nf-call-iptables/ip6tables in shoald's namespace: off (bridged "
                   "frames skip the IP hooks; shoal's rules never need them; overlays run ~7%% faster), leave (as "
                   "found), auto (default: off in a namespace of shoald's own, leave in the machine's, where "
                   "Docker or kube-proxy may rely on them)")
    p.add_argument("--cleanup", action="store_true",
                   help="stop for good: remove every container, and every namespace, bridge, address and "
                   "nftables table this daemon made, then exit (networks and images stay in the store)")
    _cluster_flags(p)
    p.add_argument("--add-runtime", action="append", type=parse_runtime, default=[], metavar="NAME=PATH",
                   help="register another OCI runtime that speaks runc's command line (repeatable); "
                   f"runc ({RUNC_PATH}) is always there, crun ({CRUN_PATH}) when installed")
    p.add_argument("--default-runtime", default="runc", metavar="NAME",
                   help="the OCI runtime of containers created without --runtime (default runc)")
    p.add_argument("--self-heal-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often shoald checks that its nftables tables, bridges and veths are as it "
                        "made them, and repairs them if they were changed from outside (default 10; 0: never)")
    p.add_argument("--plugin-sockets", default="/run/docker/plugins", metavar="DIR",
                   help="where Docker's network and IPAM plugins put their sockets, NAME.sock or NAME/NAME.sock "
                   "(default /run/docker/plugins)")
    p.add_argument("--plugin-specs", action="append", default=[], metavar="DIR",
                   help="a directory of plugin spec files NAME.spec / NAME.json, searched in order (repeatable; "
                   "default /etc/docker/plugins, then /usr/lib/docker/plugins)")
    p.add_argument("--plugin-retry", type=float, default=15.0, metavar="SECONDS",
                   help="how long a plugin that is not there, or refuses connections, is waited for (default 15, "
                   "as dockerd)")
    p.add_argument("--plugin-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long one call to a plugin may take (default 30)")
    p.add_argument("--fault-dir", default="", help=argparse.SUPPRESS)  # tests: daemon.faults
    p.add_argument("--serve-plugins", nargs="?", const="/run/docker/plugins", default="", metavar="DIR",
                   help="serve shoal's drivers and IPAM to a dockerd as the plugins shoal-bridge, shoal-overlay "
                        "and shoal-ipam: sockets DIR/NAME.sock (default DIR /run/docker/plugins)")
    _registry_flags(p)
    p.add_argument("--group", default="", help="group owning the API socket (mode 0660); default root's")
    p.add_argument("--version", action="version", version=f"shoald {__version__}")
    return p


def _cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-store", default="", metavar="etcd://HOST:PORT[,HOST:PORT...][/PREFIX]",
                   help="join a cluster through this etcd v3 store (global networks: -d overlay)")
    p.add_argument("--cluster-advertise", default="", metavar="IP|IFACE[:PORT]",
                   help="this host's address in the cluster: its VXLAN endpoint and its name there")
    p.add_argument("--cluster-store-opt", action="append", type=parse_store_opt, default=[], metavar="KEY=VALUE",
                   help="kv.cacertfile, kv.certfile, kv.keyfile (all three: TLS to etcd), discovery.ttl (seconds a dead "
                   "host keeps its endpoints, default 15), discovery.resync (seconds between full "
                   "reconciliations, default 30); repeatable")
    p.add_argument("--bgp-as", type=int, default=64512, metavar="N",
                   help="the cluster's BGP AS number for routed networks (iBGP; default 64512)")
    p.add_argument("--bgp-route-reflectors", default="", metavar="IP[,IP...]",
                   help="routed networks: peer with these hosts' BIRDs only, instead of a full mesh (above ~100 "
                        "hosts); the hosts named reflect routes to all others")


def _registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]|CIDR",
                   help="a registry reached over plain HTTP or unverified TLS (repeatable); 127.0.0.0/8 and ::1 "
                   "always are, as in dockerd")
    p.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                   help="a mirror tried before Docker Hub for docker.io pulls (repeatable)")
    p.add_argument("--max-concurrent-downloads", type=int, default=3, metavar="N",
                   help="layers downloaded at once per pull (default 3, as dockerd)")
    p.add_argument("--max-concurrent-uploads", type=int, default=5, metavar="N",
                   help="layers uploaded at once per push (default 5, as dockerd)")


def parse_args(argv: list[str] | None = None) -> DaemonConfig:
    args = build_parser().parse_args(argv)
    data_root = Path(args.data_root).absolute()
    exec_root = Path(args.exec_root).absolute() if args.exec_root else data_root / "run"
    hosts = tuple(args.host) or (DEFAULT_SOCKET,)
    for h in hosts:
        if not h.startswith("unix://"):
            build_parser().error(f"unsupported host {h!r}: only unix://PATH sockets are served")
    runtimes = {**builtin_runtimes(), **dict(args.add_runtime)}
    if args.default_runtime not in runtimes:
        build_parser().error(f"specified default runtime '{args.default_runtime}' does not exist: add it with "
                             f"--add-runtime {args.default_runtime}=PATH (known: {', '.join(sorted(runtimes))})")
    if not args.plugin_timeout > 0:
        build_parser().error(f"--plugin-timeout {args.plugin_timeout:g}: must be more than 0 seconds")
    if args.cluster_advertise and not args.cluster_store:
        build_parser().error("--cluster-advertise needs --cluster-store etcd://HOST:PORT")
    if args.cluster_store and not args.cluster_store.startswith("etcd://"):
        build_parser().error(f"unsupported cluster store {args.cluster_store!r}: only etcd://HOST:PORT[,...] is")
    if args.cluster_store and not args.cluster_advertise:
        build_parser().error("--cluster-store needs --cluster-advertise IP|IFACE[:PORT]: the address other hosts reach")
    for flag, value in (("--max-concurrent-downloads", args.max_concurrent_downloads),
                        ("--max-concurrent-uploads", args.max_concurrent_uploads)):
        if value < 1:
            build_parser().error(f"{flag} {value}: must be at least 1")
    for mirror in args.registry_mirror:
        if not mirror.startswith(("http://", "https://")):
            build_parser().error(f"invalid mirror: unsupported scheme in {mirror!r}: use http:// or https://")
    if not 1 <= args.bgp_as <= 4294967294:
        build_parser().error(f"--bgp-as {args.bgp_as}: an AS number from 1 to 4294967294")
    for rr in (r for r in args.bgp_route_reflectors.split(",") if r):
        if not validate.ip_address(rr) or ":" in rr:
            build_parser().error(f"--bgp-route-reflectors: {rr} is not an IPv4 address (hosts' advertise addresses)")
    for server in args.dns:
        if not validate.ip_address(server):
            build_parser().error(f"--dns {server}: not an IP address")
    try:
        validate.ifname(args.bridge_name, "--bridge-name")
    except InvalidParameter as exc:
        build_parser().error(exc.message)
    return DaemonConfig(
        cluster_store=args.cluster_store, cluster_advertise=args.cluster_advertise,
        cluster_store_opts=dict(args.cluster_store_opt),
        bgp_as=args.bgp_as, bgp_route_reflectors=tuple(r for r in args.bgp_route_reflectors.split(",") if r),
        runtimes=runtimes, default_runtime=args.default_runtime,
        data_root=data_root, exec_root=exec_root, hosts=hosts, log_level=args.log_level,
        pools=tuple(args.default_address_pool), mtu=args.mtu, bridge_name=args.bridge_name,
        socket_group=args.group, dns=tuple(args.dns), resolv_conf=args.resolv_conf,
        firewall=args.firewall_backend, cleanup=args.cleanup, br_netfilter=args.br_netfilter,
        self_heal_interval=max(0.0, args.self_heal_interval), fault_dir=args.fault_dir,
        plugin_sockets=args.plugin_sockets,
        plugin_specs=tuple(args.plugin_specs) or ("/etc/docker/plugins", "/usr/lib/docker/plugins"),
        plugin_retry=max(0.0, args.plugin_retry), plugin_timeout=args.plugin_timeout,
        serve_plugins=os.path.abspath(args.serve_plugins) if args.serve_plugins else "",
        insecure_registries=tuple(args.insecure_registry), registry_mirrors=tuple(args.registry_mirror),
        max_concurrent_downloads=args.max_concurrent_downloads, max_concurrent_uploads=args.max_concurrent_uploads,
    )
