"""`shoal volume ...`: the docker volume commands over the Engine API's /volumes.

Output follows the docker 28 CLI where scripts look at it: `ls` prints `DRIVER` and
`VOLUME NAME` columns (or names only with -q), `rm` echoes each name removed, `prune`
lists the deleted volumes and the space reclaimed.
"""

from __future__ import annotations

from collections.abc import Callable
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
    validate_labels,
)
from shoal.cli.errors import CliError, DaemonError
from shoal.cli.govalues import GoValue, encode_json
from shoal.cli.listviews import human_size
from shoal.cli.netviews import HeaderRow
from shoal.cli.output import (
    InspectPrinter,
    ListFormats,
    natural_sorted,
    render_list,
    resolve_list_format,
)

VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}
LIST_FORMATS = ListFormats(table="table {{.Driver}}\t{{.Name}}", raw="name: {{.Name}}\\ndriver: {{.Driver}}\\n",
                           quiet="{{.Name}}", quiet_raw="name: {{.Name}}")
PRUNE_WARNING = "WARNING! This will remove anonymous local volumes not used by at least one container.\n" \
                "Are you sure you want to continue?"
PRUNE_ALL_WARNING = "WARNING! This will remove all local volumes not used by at least one container.\n" \
                    "Are you sure you want to continue?"


class VolumeRow(GoValue):
    """docker's `*formatter.volumeContext`: each column a method."""

    go_type = "*formatter.volumeContext"

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v

    def _str(self, key: str) -> str:
        value = self.v.get(key)
        return value if isinstance(value, str) else ""

    def Name(self) -> str:  # noqa: N802 - Go method names are the template's field names
        return self._str("Name")

    def Driver(self) -> str:  # noqa: N802
        return self._str("Driver")

    def Scope(self) -> str:  # noqa: N802
        return self._str("Scope")

    def Mountpoint(self) -> str:  # noqa: N802
        return self._str("Mountpoint")

    def Labels(self) -> str:  # noqa: N802
        labels = self.v.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:  # noqa: N802
        return (self.v.get("Labels") or {}).get(name, "")

    def Links(self) -> str:  # noqa: N802
        return "N/A"

    def Size(self) -> str:  # noqa: N802
        return "N/A"

    def method(self, name: str) -> Callable[..., Any] | None:
        if name in VOLUME_HEADERS or name == "Label":
            return getattr(self, name)
        return None

    def go_json(self) -> str:
        return encode_json({name: getattr(self, name)() for name in VOLUME_HEADERS})

    def go_str(self) -> str:
        return "&{" + " ".join(getattr(self, name)() for name in VOLUME_HEADERS) + "}"


@click.group("volume", cls=AliasedGroup, short_help="Manage volumes")
def volume() -> None:
    """Manage volumes: create, list, inspect, remove and prune them (the local driver)."""


def register(root: click.Group) -> None:
    root.add_command(volume)


@volume.command("create")
@click.argument("name", required=False, default="")
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", callback=validate_labels,
              help="Set metadata for a volume (repeatable)")
@click.option("-o", "--opt", "opts", multiple=True, metavar="KEY=VALUE",
              help="Set driver specific options: type, o, device (repeatable)")
@pass_app
def create(app: AppContext, name: str, driver: str, labels: Any, opts: tuple[str, ...]) -> None:
    """Create a volume and print its name."""
    body = {"Name": name, "Driver": driver, "DriverOpts": kv_map(opts), "Labels": kv_map(labels or ())}
    result = app.client().post_json("/volumes/create", body) or {}
    click.echo(result.get("Name", ""))


@volume.command("ls", aliases=["list"])
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@format_option()
@filter_option('Provide filter values (e.g. "dangling=true", "label=k=v"); repeatable')
@pass_app
def ls(app: AppContext, quiet: bool, fmt: str, filters: list[tuple[str, str]]) -> None:
    """List volumes."""
    query = encode_filters(filters)
    data = app.client().get_json("/volumes", params={"filters": query} if query else None) or {}
    vols = natural_sorted([v for v in data.get("Volumes") or [] if isinstance(v, dict)],
                          key=lambda v: str(v.get("Name", "")))
    fmt = resolve_list_format(fmt, quiet, LIST_FORMATS)
    echo_raw(render_list(fmt, [VolumeRow(v) for v in vols], HeaderRow(VOLUME_HEADERS)))


@volume.command("inspect")
@click.argument("names", metavar="VOLUME...", nargs=-1, required=True)
@format_option(INSPECT_FORMAT_HELP, short=True)
@pass_app
def inspect(app: AppContext, names: tuple[str, ...], fmt: str) -> None:
    """Display detailed information on one or more volumes."""
    printer = InspectPrinter(fmt)
    client = app.client()
    for name in names:
        try:
            printer.add(client.get_text(f"/volumes/{path_segment(name)}"))
        except DaemonError as exc:
            printer.add_error(exc.message)
    echo_raw(printer.output())
    fail_if(printer.errors)


@volume.command("rm", aliases=["remove"])
@click.argument("names", metavar="VOLUME...", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@pass_app
def rm(app: AppContext, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes, printing each one removed (a volume in use stays)."""
    client = app.client()
    failed = False
    for name in names:
        try:
            client.delete(f"/volumes/{path_segment(name)}", params={"force": "1"} if force else None)
        except DaemonError as exc:
            click.echo(exc.message, err=True)
            failed = True
            continue
        click.echo(name)
    if failed:
        raise CliError("", exit_code=1)


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@filter_option('Provide filter values (e.g. "label=<label>"); repeatable', short=False)
@pass_app
def prune(app: AppContext, all_: bool, force: bool, filters: list[tuple[str, str]]) -> None:
    """Remove unused local volumes (anonymous ones only, unless --all)."""
    if not force and not confirm(PRUNE_ALL_WARNING if all_ else PRUNE_WARNING):
        return
    query = encode_filters([*filters, *([("all", "true")] if all_ else [])])
    report = app.client().post_json("/volumes/prune", params={"filters": query} if query else None) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        click.echo("Deleted Volumes:\n" + "".join(f"{name}\n" for name in deleted))
    click.echo(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}")
