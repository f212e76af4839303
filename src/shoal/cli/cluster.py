"""`shoal cluster up|down|ls`: a multi-host cluster on this machine, to try overlay networks.

Unlike the rest of the CLI this talks to no daemon: it makes network namespaces and starts
etcd and one shoald per host (shoal.lab), as root.
"""

from __future__ import annotations

import os

import click

from shoal import lab
from shoal.cli.errors import CliError


def register(root: click.Group) -> None:
    root.add_command(cluster)


@click.group("cluster")
def cluster() -> None:
    """Run a multi-host cluster on this machine.

    Hosts are network namespaces on an underlay bridge, with a 3-member etcd and one shoald
    per host, to try multi-host (overlay) networking."""


def _need_root() -> None:
    if os.geteuid() != 0:
        raise CliError("shoal cluster makes network namespaces: run it as root")


@cluster.command("up")
@click.option("--hosts", "count", type=int, default=3, show_default=True, help="Number of hosts")
@click.option("--name", default="shl", show_default=True, help="Cluster name (1-8 lower-case letters/digits)")
def up(count: int, name: str) -> None:
    """Start a cluster and print each host's DOCKER_HOST."""
    _need_root()
    try:
        made = lab.up(name, count, progress=lambda line: click.echo(line, err=True))
    except lab.LabError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"cluster {made.name}: {len(made.hosts)} hosts, store {made.store_url}")
    for h in made.hosts:
        click.echo(f"{h.name}\t{h.ip}\tDOCKER_HOST={h.docker_host}")


@cluster.command("down")
@click.option("--name", default="shl", show_default=True, help="Cluster name")
def down(name: str) -> None:
    """Remove a cluster and everything it made (nothing else)."""
    _need_root()
    try:
        lab.down(name)
    except lab.LabError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"cluster {name} removed")


@cluster.command("ls")
def ls() -> None:
    """List the clusters made with `shoal cluster up`."""
    click.echo("NAME\tHOSTS\tSTORE")
    for made in lab.labs():
        click.echo(f"{made.name}\t{len(made.hosts)}\t{made.store_url}")
