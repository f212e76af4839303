"""`shoal version` and `shoal info`: short human summaries of GET /version and GET /info.

Both print the client side even when the daemon is down, then fail with the "daemon not
running" hint, so `shoal version` doubles as a connectivity check.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

import click

from shoal import __version__
from shoal.cli.cmdutil import AppContext, echo_raw, pass_app
from shoal.cli.errors import CliError
from shoal.cli.templates import Template, TemplateExecError, TemplateParseError

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def register(root: click.Group) -> None:
    root.add_command(version)
    root.add_command(info)


def client_info(app: AppContext) -> dict[str, Any]:
    machine = platform.machine()
    return {
        "Version": __version__,
        "Host": app.host,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform,
        "Arch": _ARCH.get(machine, machine),
    }


def block(pairs: list[tuple[str, Any]], indent: str = " ", align: bool = True) -> str:
    """`Key: value` lines, skipping empty values; aligned like `docker version`, or not like `docker info`."""
    shown = [(k, v) for k, v in pairs if v not in (None, "")]
    width = max((len(k) for k, _ in shown), default=0) + 1 if align else 0
    return "".join(f"{indent}{k + ':':<{width}} {v}\n" for k, v in shown)


def apply_format(fmt: str, data: Any) -> None:
    try:
        echo_raw(Template.parse(fmt).execute(data) + "\n")
    except (TemplateParseError, TemplateExecError) as exc:
        raise CliError(f"template parsing error: {exc}") from None


def _server_block(server: dict[str, Any]) -> str:
    api = server.get("ApiVersion", "")
    if api and server.get("MinAPIVersion"):
        api = f"{api} (minimum version {server['MinAPIVersion']})"
    os_arch = "/".join(p for p in (server.get("Os"), server.get("Arch")) if p)
    lines = f"Server: {(server.get('Platform') or {}).get('Name', '')}".rstrip() + "\n Engine:\n"
    lines += block([
        ("Version", server.get("Version")),
        ("API version", api),
        ("Go version", server.get("GoVersion")),
        ("Git commit", server.get("GitCommit")),
        ("Built", server.get("BuildTime")),
        ("OS/Arch", os_arch),
        ("Kernel version", server.get("KernelVersion")),
        ("Experimental", str(server["Experimental"]).lower() if "Experimental" in server else None),
    ], indent="  ")
    for comp in server.get("Components") or []:
        if isinstance(comp, dict) and comp.get("Name") not in (None, "Engine"):
            lines += f" {comp['Name']}:\n" + block([("Version", comp.get("Version"))], indent="  ")
    return lines


@click.command("version", short_help="Show the shoal client and daemon versions")
@click.option("-f", "--format", "fmt", default="", metavar="TEMPLATE", help="Format output using a Go template (fields .Client, .Server)")
@pass_app
def version(app: AppContext, fmt: str) -> None:
    """Show the shoal client and daemon versions."""
    client = client_info(app)
    error: CliError | None = None
    try:
        server = app.client().get_json("/version") or {}
    except CliError as exc:
        server, error = None, exc
    if fmt:
        apply_format(fmt, {"Client": client, "Server": server})
    else:
        text = "Client:\n" + block([
            ("Version", client["Version"]),
            ("Python version", client["PythonVersion"]),
            ("OS/Arch", f"{client['Os']}/{client['Arch']}"),
            ("Host", client["Host"]),
        ])
        if server is not None:
            text += "\n" + _server_block(server)
        echo_raw(text)
    if error is not None:
        raise error


def _memory(value: Any) -> str:
    """docker's units.BytesSize: %.4g with binary units."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return ""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


def _info_text(data: dict[str, Any]) -> str:
    plugins = data.get("Plugins") or {}
    firewall = data.get("FirewallBackend") or {}
    text = block([("Containers", data.get("Containers"))], align=False)
    text += block([
        ("Running", data.get("ContainersRunning")),
        ("Paused", data.get("ContainersPaused")),
        ("Stopped", data.get("ContainersStopped")),
    ], indent="  ", align=False)
    text += block([
        ("Images", data.get("Images")),
        ("Server Version", data.get("ServerVersion")),
        ("Network plugins", " ".join(plugins.get("Network") or [])),
        ("Firewall Backend", firewall.get("Driver") if isinstance(firewall, dict) else None),
        ("Kernel Version", data.get("KernelVersion")),
        ("Operating System", data.get("OperatingSystem")),
        ("OSType", data.get("OSType")),
        ("Architecture", data.get("Architecture")),
        ("CPUs", data.get("NCPU")),
        ("Total Memory", _memory(data.get("MemTotal")) if data.get("MemTotal") else None),
        ("Name", data.get("Name")),
        ("ID", data.get("ID")),
    ], align=False)
    pools = data.get("DefaultAddressPools") or []
    if pools:
        text += " Default Address Pools:\n" + "".join(
            f"   Base: {p.get('Base', '')}, Size: {p.get('Size', '')}\n" for p in pools if isinstance(p, dict)
        )
    return text


@click.command("info", short_help="Show a summary of the daemon")
@click.option("-f", "--format", "fmt", default="", metavar="TEMPLATE", help="Format output using a Go template (fields of GET /info)")
@pass_app
def info(app: AppContext, fmt: str) -> None:
    """Show a summary of the daemon: networks, containers, kernel, address pools."""
    client = client_info(app)
    error: CliError | None = None
    try:
        data = app.client().get_json("/info") or {}
    except CliError as exc:
        data, error = None, exc
    if fmt:
        apply_format(fmt, {**(data or {}), "ClientInfo": client})
    else:
        text = "Client:\n" + block([("Version", client["Version"]), ("Host", client["Host"])], align=False)
        if data is not None:
            text += "\nServer:\n" + _info_text(data)
        echo_raw(text)
        for warning in (data or {}).get("Warnings") or []:
            click.echo(f"WARNING: {warning}", err=True)
    if error is not None:
        raise error
