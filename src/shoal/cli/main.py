"""Entry point of the `shoal` CLI: global options and command-group registration.

To add a command group (e.g. containers), write `shoal/cli/<group>.py` exposing
`register(root)` and append its module name to COMMAND_MODULES.
"""

from __future__ import annotations

import importlib
from typing import Sequence

import click

from shoal import __version__
from shoal.cli.client import DEFAULT_HOST
from shoal.cli.cmdutil import AppContext, RootGroup

COMMAND_MODULES = (
    "shoal.cli.network",
    "shoal.cli.system",
    "shoal.cli.containers",
    "shoal.cli.lifecycle",
    "shoal.cli.copy",
    "shoal.cli.images",
    "shoal.cli.registry",
    "shoal.cli.cluster",
    "shoal.cli.check",
    "shoal.cli.volumes",
)
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("shoal", cls=RootGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-H",
    "--host",
    envvar=["SHOAL_HOST", "DOCKER_HOST"],
    default=DEFAULT_HOST,
    show_default=True,
    metavar="HOST",
    help="Daemon socket: unix:///path or tcp://host:port (env SHOAL_HOST, then DOCKER_HOST)",
)
@click.option(
    "--api-version",
    envvar=["SHOAL_API_VERSION", "DOCKER_API_VERSION"],
    default=None,
    metavar="X.Y",
    help="Use this Engine API version instead of negotiating (env SHOAL_API_VERSION, DOCKER_API_VERSION)",
)
@click.version_option(__version__, "-v", "--version", prog_name="shoal", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, host: str, api_version: str | None) -> None:
    """shoal: Docker-style container networking, driven through the shoald daemon's Engine API."""
    injected = ctx.obj if isinstance(ctx.obj, AppContext) else None  # tests inject a transport
    transport = injected.transport if injected else None
    ctx.obj = AppContext(host=host, transport=transport, api_version=api_version)
    ctx.call_on_close(ctx.obj.close)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(cli)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`shoal = "shoal.cli.main:main"`)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="shoal")


if __name__ == "__main__":
    main()
