"""`shoal cluster up|down|ls`: a multi-host cluster on this machine, to try overlay networks.

Unlike the rest of the CLI this talks to no daemon: it makes network namespaces and starts
etcd and one shoald per host. The CLI speaks HTTP only, so the work runs in its own
process (`python -m shoal.lab`), as root.
"""

from __future__ import annotations

import subprocess
import sys

import click


def register(root: click.Group) -> None:
    root.add_command(cluster)


def _lab(*args: str) -> None:
    code = subprocess.run([sys.executable, "-m", "shoal.lab", *args]).returncode
    if code:
        sys.exit(code)


@click.group("cluster")
def cluster() -> None:
    """Run a multi-host cluster on this machine.

    Hosts are network namespaces on an underlay bridge, with a 3-member etcd and one shoald
    per host, to try multi-host (overlay) networking. Needs root."""


@cluster.command("up")
@click.option("--hosts", "count", type=int, default=3, show_default=True, help="Number of hosts")
@click.option("--name", default="shl", show_default=True, help="Cluster name (1-8 lower-case letters/digits)")
@click.option("--import", "image", default="", metavar="TAR", help="Import TAR as busybox:latest on every host")
def up(count: int, name: str, image: str) -> None:
    """Start a cluster and print each host's DOCKER_HOST."""
    _lab("up", "--hosts", str(count), "--name", name, *(["--import", image] if image else []))


@cluster.command("down")
@click.option("--name", default="shl", show_default=True, help="Cluster name")
def down(name: str) -> None:
    """Remove a cluster and everything it made (nothing else)."""
    _lab("down", "--name", name)


@cluster.command("ls")
def ls() -> None:
    """List the clusters made with `shoal cluster up`."""
    _lab("ls")
