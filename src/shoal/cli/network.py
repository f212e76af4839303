"""`shoal network ...`: the docker network commands, speaking only the Engine API.

Request bodies and output follow the docker 28 CLI byte for byte where that is observable
(table layout, sort order, inspect JSON, prune/rm output), so scripts written against
`docker network` work unchanged against shoald.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from shoal.cli.client import encode_filters, path_segment
from shoal.cli.cmdutil import (
    INSPECT_FORMAT_HELP,
    AliasedGroup,
    AppContext,
    confirm,
    echo_raw,
    fail_if,
    filter_option,
    format_option,
    kv_map,
    pass_app,
    split_csv,
    validate_labels,
)
from shoal.cli.errors import CliError, DaemonError
from shoal.cli.netviews import (
    NETWORK_HEADERS,
    NETWORK_QUIET_RAW_FORMAT,
    NETWORK_RAW_FORMAT,
    NETWORK_TABLE_FORMAT,
    HeaderRow,
    NetworkRow,
    inspect_view,
)
from shoal.cli.output import InspectPrinter, ListFormats, natural_sorted, render_list, resolve_list_format

PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue?"
)
LIST_FORMATS = ListFormats(
    table=NETWORK_TABLE_FORMAT, raw=NETWORK_RAW_FORMAT, quiet_raw=NETWORK_QUIET_RAW_FORMAT
)


@click.group("network", cls=AliasedGroup, short_help="Manage networks")
def network() -> None:
    """Manage networks: create, list, inspect, connect and remove them."""


def register(root: click.Group) -> None:
    root.add_command(network)


# ---------------------------------------------------------------------------------------------
# create: IPAM consolidation, as docker/cli's createIPAMConfig does it


def _parse_cidr(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Any]:
    """Go's net.ParseCIDR: `addr/bits` required; returns (network, address)."""
    addr, sep, bits = text.partition("/")
    try:
        if not sep or not bits.isascii() or not bits.isdigit():
            raise ValueError
        ip = ipaddress.ip_address(addr)
        if int(bits) > ip.max_prefixlen:
            raise ValueError
        return ipaddress.ip_network((ip, int(bits)), strict=False), ip
    except ValueError:
        raise ValueError(f"invalid CIDR address: {text}") from None


def _parse_ip(text: str) -> Any:
    try:
        return ipaddress.ip_address(text) if "%" not in text else None
    except ValueError:
        return None


def subnet_matches(subnet: str, data: str) -> bool:
    """Does `subnet` contain the address in `data` (a bare IP or an addr/bits)?"""
    try:
        net, _ = _parse_cidr(subnet)
    except ValueError as exc:
        raise CliError(f"invalid subnet: {exc}") from None
    if "/" in data:
        try:
            _, ip = _parse_cidr(data)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    else:
        ip = _parse_ip(data)
    if ip is None:
        return False
    if ip.version == 6 and net.version == 4 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == net.version and ip in net


def _assign(configs: dict[str, dict[str, Any]], subnets: list[str], values: list[str], key: str, what: str) -> None:
    """Attach each gateway/range to the subnet containing it, with docker's error messages."""
    plural = {"IPRange": ("ranges", "on the same subnet"), "Gateway": ("gateways", "for the same subnet")}[key]
    for value in values:
        match = False
        for subnet in subnets:
            if not subnet_matches(subnet, value):
                continue
            if configs[subnet].get(key):
                old = configs[subnet][key]
                raise CliError(f"cannot configure multiple {plural[0]} ({value}, {old}) {plural[1]} ({subnet})")
            configs[subnet][key] = value
            match = True
        if not match:
            raise CliError(f"no matching subnet for {what} {value}")


def build_ipam_config(
    subnets: list[str], ip_ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """Group subnets with their ranges, gateways and aux addresses (IPAM.Config entries)."""
    if len(subnets) < len(ip_ranges) or len(subnets) < len(gateways):
        raise CliError("every ip-range or gateway must have a corresponding subnet")
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        for existing in configs:
            if subnet_matches(subnet, existing) or subnet_matches(existing, subnet):
                raise CliError("multiple overlapping subnet configuration is not supported")
        configs[subnet] = {"Subnet": subnet}
    _assign(configs, subnets, ip_ranges, "IPRange", "range")
    _assign(configs, subnets, gateways, "Gateway", "gateway")
    for name, addr in aux.items():
        matched = [s for s in subnets if subnet_matches(s, addr)]
        if not matched:
            raise CliError(f"no matching subnet for aux-address {addr}")
        for subnet in matched:
            configs[subnet].setdefault("AuxiliaryAddresses", {})[name] = addr
    result = []
    for cfg in configs.values():  # key order as the API types declare them
        entry = {k: cfg[k] for k in ("Subnet", "IPRange", "Gateway") if cfg.get(k)}
        if cfg.get("AuxiliaryAddresses"):
            entry["AuxiliaryAddresses"] = dict(sorted(cfg["AuxiliaryAddresses"].items()))
        result.append(entry)
    return result


def build_create_body(name: str, **opts: Any) -> dict[str, Any]:
    """The `POST /networks/create` body, in the docker 28 CLI's field order."""
    body: dict[str, Any] = {"Driver": opts.get("driver", "bridge"), "Scope": opts.get("scope", "")}
    if opts.get("ipv4") is not None:
        body["EnableIPv4"] = opts["ipv4"]
    if opts.get("ipv6") is not None:
        body["EnableIPv6"] = opts["ipv6"]
    body["IPAM"] = {
        "Driver": opts.get("ipam_driver", "default"),
        "Options": dict(sorted(kv_map(opts.get("ipam_opts", ())).items())),
        "Config": build_ipam_config(
            split_csv(opts.get("subnets", ())),
            split_csv(opts.get("ip_ranges", ())),
            split_csv(opts.get("gateways", ())),
            kv_map(opts.get("aux_addresses", ())),
        ),
    }
    config_from = opts.get("config_from") or ""
    body.update({
        "Internal": bool(opts.get("internal")),
        "Attachable": bool(opts.get("attachable")),
        "Ingress": bool(opts.get("ingress")),
        "ConfigOnly": bool(opts.get("config_only")),
        "ConfigFrom": {"Network": config_from} if config_from else None,
        "Options": dict(sorted(kv_map(opts.get("opts", ())).items())),
        "Labels": dict(sorted(kv_map(opts.get("labels", ())).items())),
        "Name": name,
    })
    return body


@network.command("create")
@click.argument("name", metavar="NETWORK")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the network")
@click.option("--subnet", "subnets", multiple=True, metavar="CIDR", help="Subnet in CIDR format (repeatable)")
@click.option("--gateway", "gateways", multiple=True, metavar="IP", help="Gateway for the subnet containing it (repeatable)")
@click.option("--ip-range", "ip_ranges", multiple=True, metavar="CIDR", help="Allocate container IPs from a sub-range (repeatable)")
@click.option("--aux-address", "aux_addresses", multiple=True, metavar="NAME=IP", help="Auxiliary address reserved for the driver (repeatable)")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.option("--ingress", is_flag=True, help="Create swarm routing-mesh network")
@click.option("--config-only", is_flag=True, help="Create a configuration only network")
@click.option("--config-from", default="", metavar="NETWORK", help="The network from which to copy the configuration")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", callback=validate_labels, help="Set metadata on a network (repeatable)")
@click.option("-o", "--opt", "opts", multiple=True, metavar="KEY=VALUE", help="Set driver specific options (repeatable)")
@click.option("--ipv4/--no-ipv4", default=None, help="Enable or disable IPv4 address assignment")
@click.option("--ipv6/--no-ipv6", default=None, help="Enable or disable IPv6 address assignment")
@click.option("--ipam-driver", default="default", show_default=True, help="IP Address Management driver")
@click.option("--ipam-opt", "ipam_opts", multiple=True, metavar="KEY=VALUE", help="Set IPAM driver specific options (repeatable)")
@click.option("--scope", default="", help="Control the network's scope")
@pass_app
def create(app: AppContext, name: str, **opts: Any) -> None:
    """Create a network and print its ID."""
    body = build_create_body(name, **opts)
    result = app.client().post_json("/networks/create", body) or {}
    if result.get("Warning"):
        click.echo(f"WARNING: {result['Warning']}", err=True)
    click.echo(result.get("Id", ""))


# ---------------------------------------------------------------------------------------------
# ls / inspect / rm / prune


@network.command("ls", aliases=["list"])
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@format_option()
@filter_option('Provide filter values (e.g. "driver=bridge"); repeatable')
@pass_app
def ls(app: AppContext, quiet: bool, no_trunc: bool, fmt: str, filters: list[tuple[str, str]]) -> None:
    """List networks."""
    query = encode_filters(filters)
    nets = app.client().get_json("/networks", params={"filters": query} if query else None) or []
    nets = natural_sorted([n for n in nets if isinstance(n, dict)], key=lambda n: str(n.get("Name", "")))
    rows = [NetworkRow(n, trunc=not no_trunc) for n in nets]
    fmt = resolve_list_format(fmt, quiet, LIST_FORMATS)
    echo_raw(render_list(fmt, rows, HeaderRow(NETWORK_HEADERS)))


@network.command("inspect")
@click.argument("names", metavar="NETWORK...", nargs=-1, required=True)
@format_option(INSPECT_FORMAT_HELP, short=True)
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics")
@pass_app
def inspect(app: AppContext, names: tuple[str, ...], fmt: str, verbose: bool) -> None:
    """Display detailed information on one or more networks."""
    printer = InspectPrinter(fmt)
    client = app.client()
    params = {"verbose": "true"} if verbose else None
    for name in names:
        try:
            printer.add(client.get_text(f"/networks/{path_segment(name)}", params=params), inspect_view)
        except DaemonError as exc:
            printer.add_error(exc.message)
    echo_raw(printer.output())
    fail_if(printer.errors)


@network.command("rm", aliases=["remove"])
@click.argument("names", metavar="NETWORK...", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@pass_app
def rm(app: AppContext, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more networks, printing each one removed."""
    client = app.client()
    failed = False
    for name in names:
        try:
            client.delete(f"/networks/{path_segment(name)}")
        except DaemonError as exc:
            if not (force and exc.not_found):
                click.echo(exc.message, err=True)
                failed = True
            continue
        click.echo(name)
    if failed:
        raise CliError("", exit_code=1)


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@filter_option('Provide filter values (e.g. "until=<timestamp>", "label=k=v"); repeatable', short=False)
@pass_app
def prune(app: AppContext, force: bool, filters: list[tuple[str, str]]) -> None:
    """Remove all unused custom networks."""
    if not force and not confirm(PRUNE_WARNING):
        return
    query = encode_filters(filters)
    report = app.client().post_json("/networks/prune", params={"filters": query} if query else None) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        click.echo("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))


# ---------------------------------------------------------------------------------------------
# connect / disconnect


def build_connect_body(container: str, **opts: Any) -> dict[str, Any]:
    """`POST /networks/{id}/connect` body, shaped like the docker 28 CLI's EndpointSettings."""
    ipam: dict[str, Any] = {}
    if opts.get("ip"):
        ipam["IPv4Address"] = opts["ip"]
    if opts.get("ip6"):
        ipam["IPv6Address"] = opts["ip6"]
    link_local = split_csv(opts.get("link_local_ips", ()))
    if link_local:
        ipam["LinkLocalIPs"] = link_local
    links = list(opts.get("links", ()))
    endpoint = {
        "IPAMConfig": ipam,
        "Links": links or None,
        "Aliases": split_csv(opts.get("aliases", ())),
        "MacAddress": "",
        "DriverOpts": dict(sorted(kv_map(split_csv(opts.get("driver_opts", ()))).items())),
        "GwPriority": int(opts.get("gw_priority") or 0),
        "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }
    return {"Container": container, "EndpointConfig": endpoint}


@network.command("connect")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container", metavar="CONTAINER")
@click.option("--ip", default="", help='IPv4 address (e.g., "172.30.100.104")')
@click.option("--ip6", default="", help='IPv6 address (e.g., "2001:db8::33")')
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@click.option("--link", "links", multiple=True, metavar="CONTAINER:ALIAS", help="Add link to another container")
@click.option("--link-local-ip", "link_local_ips", multiple=True, help="Add a link-local address for the container")
@click.option("--driver-opt", "driver_opts", multiple=True, metavar="KEY=VALUE", help="Driver options for the network")
@click.option("--gw-priority", type=int, default=0, help="Highest gw-priority provides the default gateway")
@pass_app
def connect(app: AppContext, network_name: str, container: str, **opts: Any) -> None:
    """Connect a container to a network."""
    body = build_connect_body(container, **opts)
    app.client().post_json(f"/networks/{path_segment(network_name)}/connect", body)


@network.command("disconnect")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container", metavar="CONTAINER")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@pass_app
def disconnect(app: AppContext, network_name: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    body = {"Container": container, "Force": force}
    app.client().post_json(f"/networks/{path_segment(network_name)}/disconnect", body)
