"""`shoal ps`, `logs`, `stop`, `restart`, `kill`, `wait`, `rm` and `inspect`.

The multi-container commands behave like docker 28's: each success prints the name given,
failures are reported together at the end with status 1 (`rm -f` forgives missing ones).
`inspect` looks a name up as a container, then an image, then a network, like docker's
object lookup.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import click

from shoal.cli.attach import Api
from shoal.cli.client import encode_filters, path_segment
from shoal.cli.cmdutil import FORMAT_HELP, INSPECT_FORMAT_HELP, AppContext, echo_raw, fail_if, filter_option, pass_app
from shoal.cli.errors import CliError, DaemonError
from shoal.cli.hijack import OutputSink
from shoal.cli.listviews import CONTAINER_HEADERS, CONTAINER_RAW_FORMAT, CONTAINER_TABLE_FORMAT, ContainerRow
from shoal.cli.netviews import HeaderRow, inspect_view
from shoal.cli.output import InspectPrinter, render_list
from shoal.cli.refs import image_path
from shoal.cli.term import broken_pipe, stdio
from shoal.cli.templates import Template, TemplateExecError, TemplateParseError

QUIET_FORMAT = "{{.ID}}"
SIGINT_STATUS = 130


def register(root: click.Group) -> None:
    for command in (ps, logs, stop, restart, kill, wait, rm, inspect):
        root.add_command(command)


# ---------------------------------------------------------------------------------------------
# ps


def container_format(source: str, quiet: bool, size: bool) -> str:
    """formatter.NewContainerFormat: -q wins over a custom format; --size adds a column."""
    if source in ("", "table"):
        if quiet:
            return QUIET_FORMAT
        return CONTAINER_TABLE_FORMAT + ("\t{{.Size}}" if size else "")
    if source == "raw":
        if quiet:
            return "container_id: {{.ID}}"
        return CONTAINER_RAW_FORMAT + ("size: {{.Size}}\\n" if size else "")
    return QUIET_FORMAT if quiet else source


def template_uses_size(fmt: str) -> bool:
    """docker runs the template against an empty row to see whether `.Size` is used."""
    try:
        probe = ContainerRow({})
        Template.parse(fmt).execute(probe)
    except TemplateParseError as exc:
        raise CliError(f"failed to parse template: {exc}") from None
    except TemplateExecError:
        pass
    return "Size" in probe.used


@click.command("ps", short_help="List containers")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-s", "--size", is_flag=True, default=None, help="Display total file sizes")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("--format", "fmt", default="", metavar="FORMAT", help=FORMAT_HELP)
@filter_option('Filter output based on conditions provided (e.g. "status=exited", "name=web")')
@pass_app
def ps(app: AppContext, all_: bool, quiet: bool, no_trunc: bool, size: bool | None, last: int, latest: bool,
       fmt: str, filters: list[tuple[str, str]]) -> None:
    """List containers: CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS, PORTS, NAMES."""
    if fmt and quiet:
        click.echo("WARNING: Ignoring custom format, because both --format and --quiet are set.", err=True)
    want_size = bool(size)
    if fmt and template_uses_size(fmt) and not quiet and size is None:
        want_size = True
    limit = 1 if latest and last == -1 else last
    params = {"all": "1" if all_ else None, "filters": encode_filters(filters),  # Go's order: sorted keys
              "limit": str(limit) if limit != -1 else None, "size": "1" if want_size else None}
    found = app.client().get_json("/containers/json", params={k: v for k, v in params.items() if v}) or []
    rows = [ContainerRow(c, trunc=not no_trunc) for c in found if isinstance(c, dict)]
    echo_raw(render_list(container_format(fmt, quiet, want_size), rows, HeaderRow(CONTAINER_HEADERS)))


# ---------------------------------------------------------------------------------------------
# logs


@click.command("logs", short_help="Fetch the logs of a container")
@click.argument("container", metavar="CONTAINER")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
@pass_app
def logs(app: AppContext, container: str, follow: bool, timestamps: bool, tail: str) -> None:
    """Fetch the logs of a container: its stdout and stderr, to ours."""
    api = Api(app)
    info = api.inspect(container)
    query = [("stdout", "1"), ("stderr", "1"), ("tail", tail)]
    query += [(k, "1") for k, on in (("follow", follow), ("timestamps", timestamps)) if on]
    conn, head = api.stream("GET", f"/containers/{path_segment(str(info.get('Id') or container))}/logs", query)
    _, out, err = stdio()
    sink = OutputSink(out, err, bool((info.get("Config") or {}).get("Tty")))
    try:
        for chunk in conn.iter_body(head):
            sink.write(chunk)
    except KeyboardInterrupt:
        raise CliError("", SIGINT_STATUS) from None
    except BrokenPipeError:
        raise CliError("", broken_pipe()) from None
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# stop / restart / kill / wait / rm


def for_each(names: tuple[str, ...], action: Callable[[str], str | None]) -> None:
    """Run `action` per container, print its result (the name), fail with all errors at the end."""
    errors = []
    for name in names:
        try:
            shown = action(name)
        except DaemonError as exc:
            errors.append(exc.message)
            continue
        click.echo(name if shown is None else shown)
    fail_if(errors)


def _post(app: AppContext, name: str, verb: str, params: dict[str, str | None]) -> None:
    app.client().request("POST", f"/containers/{path_segment(name)}/{verb}", params={k: v for k, v in params.items() if v})


@click.command("stop", short_help="Stop one or more running containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
@click.option("-t", "--timeout", "--time", type=int, default=None, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container")
@pass_app
def stop(app: AppContext, containers: tuple[str, ...], timeout: int | None, sig: str) -> None:
    """Stop one or more running containers (SIGTERM, then SIGKILL after the timeout)."""
    params = {"signal": sig, "t": None if timeout is None else str(timeout)}
    for_each(containers, lambda name: _post(app, name, "stop", params))


@click.command("restart", short_help="Restart one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
@click.option("-t", "--timeout", "--time", type=int, default=None, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container")
@pass_app
def restart(app: AppContext, containers: tuple[str, ...], timeout: int | None, sig: str) -> None:
    """Restart one or more containers."""
    params = {"signal": sig, "t": None if timeout is None else str(timeout)}
    for_each(containers, lambda name: _post(app, name, "restart", params))


@click.command("kill", short_help="Kill one or more running containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="", help="Signal to send to the container (default KILL)")
@pass_app
def kill(app: AppContext, containers: tuple[str, ...], sig: str) -> None:
    """Kill one or more running containers (SIGKILL, or the signal given)."""
    for_each(containers, lambda name: _post(app, name, "kill", {"signal": sig}))


def _wait_one(api: Api, name: str) -> str:
    conn, head = api.stream("POST", f"/containers/{path_segment(name)}/wait")
    try:
        answer = json.loads(conn.read_body(head) or b"{}")
    finally:
        conn.close()
    error = (answer.get("Error") or {}).get("Message")
    if error:
        raise DaemonError(500, error)
    return str(answer.get("StatusCode", 0))


@click.command("wait", short_help="Block until containers stop, then print their exit codes")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
@pass_app
def wait(app: AppContext, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    api = Api(app)
    for_each(containers, lambda name: _wait_one(api, name))


@click.command("rm", short_help="Remove one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.option("-l", "--link", is_flag=True, help="Remove the specified link")
@pass_app
def rm(app: AppContext, containers: tuple[str, ...], force: bool, volumes: bool, link: bool) -> None:
    """Remove one or more containers; -f stops running ones first and ignores missing ones."""
    params = {k: "1" for k, on in (("force", force), ("link", link), ("v", volumes)) if on}
    client = app.client()
    errors = []
    for name in containers:
        try:
            client.request("DELETE", f"/containers/{path_segment(name)}", params=params or None)
        except DaemonError as exc:
            if force and exc.not_found:
                click.echo(exc.message, err=True)
            else:
                errors.append(exc.message)
            continue
        click.echo(name)
    fail_if(errors)


# ---------------------------------------------------------------------------------------------
# inspect


def _skippable(exc: DaemonError) -> bool:
    return exc.not_found or "not supported" in exc.message or "invalid reference format" in exc.message


LOOKUPS: tuple[tuple[str, Callable[[str], str], Any], ...] = (
    ("container", lambda ref: f"/containers/{path_segment(ref)}/json", None),
    ("image", lambda ref: f"/images/{image_path(ref)}/json", None),
    ("network", lambda ref: f"/networks/{path_segment(ref)}", inspect_view),
)


def inspect_object(app: AppContext, printer: InspectPrinter, ref: str, kind: str, size: bool) -> None:
    """docker's inspectAll: the first kind that knows `ref` wins; 404s move on."""
    client = app.client()
    for name, path, typed in LOOKUPS:
        if kind and name != kind:
            continue
        params = {"size": "1"} if size and name == "container" else None
        try:
            printer.add(client.get_text(path(ref), params=params), typed)
            return
        except DaemonError as exc:
            if kind or not _skippable(exc):
                printer.add_error(exc.message)
                return
    printer.add_error(f"Error: No such object: {ref}")


@click.command("inspect", short_help="Return low-level information on containers, images, networks")
@click.argument("names", metavar="NAME|ID...", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default="", metavar="FORMAT", help=INSPECT_FORMAT_HELP)
@click.option("--type", "kind", type=click.Choice(["container", "image", "network"]), default=None,
              help="Only inspect objects of the given type")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@pass_app
def inspect(app: AppContext, names: tuple[str, ...], fmt: str, kind: str | None, size: bool) -> None:
    """Return low-level information on containers, images or networks (looked up in that order)."""
    printer = InspectPrinter(fmt)
    for name in names:
        inspect_object(app, printer, name, kind or "", size)
    echo_raw(printer.output())
    fail_if(printer.errors)
