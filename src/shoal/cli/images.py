"""`shoal images`, `shoal rmi` and `shoal image ls|inspect|rm|tag|import`.

Images come from registries (`shoal pull`, cli/registry.py) or from `image import` (a root
filesystem tarball, with `--change 'CMD ["sh"]'` for a default command). Output and request shapes follow the
docker 28 CLI (`docker images`, `docker rmi`, `docker tag`, `docker import`).
"""

from __future__ import annotations

from typing import Any, BinaryIO

import click

from shoal.cli.client import encode_filters
from shoal.cli.cmdutil import (
    INSPECT_FORMAT_HELP, AliasedGroup, AppContext, echo_raw, fail_if, filter_option, format_option, pass_app,
)
from shoal.cli.errors import CliError, DaemonError
from shoal.cli.listviews import IMAGE_HEADERS, IMAGE_RAW_FORMAT, IMAGE_TABLE_FORMAT, image_rows
from shoal.cli.netviews import HeaderRow
from shoal.cli.output import InspectPrinter, render_list
from shoal.cli.rawhttp import Head, RawConnection, encode_query, json_lines, request
from shoal.cli.refs import image_path, is_image_id, parse_normalized
from shoal.cli.template_funcs import go_quote
from shoal.cli.term import stdio

DIGEST_COLUMN = "{{.Digest}}"


@click.group("image", cls=AliasedGroup, short_help="Manage images")
def image() -> None:
    """Manage images: import root filesystems, list, inspect, tag and remove them."""


def register(root: click.Group) -> None:
    root.add_command(image)
    root.add_command(images)
    root.add_command(rmi)


def display_messages(conn: RawConnection, head: Head, out: BinaryIO) -> None:
    """jsonmessage.DisplayJSONMessagesToStream for a non-terminal: one line per status."""
    for msg in json_lines(conn, head):
        error = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
        if error:
            raise CliError(str(error))
        text = f"{msg['id']}: " if msg.get("id") else ""
        if msg.get("progress"):
            text += f"{msg.get('status', '')} {msg['progress']}\n"
        elif msg.get("stream"):
            text += str(msg["stream"])
        else:
            text += f"{msg.get('status', '')}\n"
        out.write(text.encode())
        out.flush()


# ---------------------------------------------------------------------------------------------
# images / image ls


def image_format(source: str, quiet: bool, digests: bool) -> str:
    """formatter.NewImageFormat: a custom format ignores -q; --digests adds its column."""
    if source in ("", "table"):
        if quiet:
            return "{{.ID}}"
        return IMAGE_TABLE_FORMAT.replace("\t{{.ID}}", "\t{{.Digest}}\t{{.ID}}") if digests else IMAGE_TABLE_FORMAT
    if source == "raw":
        if quiet:
            return "image_id: {{.ID}}"
        return IMAGE_RAW_FORMAT.replace("image_id:", "digest: {{.Digest}}\nimage_id:") if digests else IMAGE_RAW_FORMAT
    if source.startswith("table") and digests and DIGEST_COLUMN not in source:
        return source + "\t" + DIGEST_COLUMN
    return source


def list_images(app: AppContext, reference: str, quiet: bool, all_: bool, no_trunc: bool, digests: bool,
                fmt: str, filters: list[tuple[str, str]]) -> None:
    pairs = list(filters) + ([("reference", reference)] if reference else [])
    params: dict[str, str] = {}
    if all_:
        params["all"] = "1"
    query = encode_filters(pairs)
    if query:
        params["filters"] = query
    found = app.client().get_json("/images/json", params=params or None) or []
    fmt = image_format(fmt, quiet, digests)
    rows = image_rows([i for i in found if isinstance(i, dict)], not no_trunc, digests or DIGEST_COLUMN in fmt)
    echo_raw(render_list(fmt, rows, HeaderRow(IMAGE_HEADERS)))


def _list_options(func: Any) -> Any:
    func = filter_option('Filter output based on conditions provided (e.g. "reference=busybox")')(func)
    func = format_option()(func)
    func = click.option("--digests", is_flag=True, help="Show digests")(func)
    func = click.option("--no-trunc", is_flag=True, help="Don't truncate output")(func)
    func = click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images)")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")(func)
    return click.argument("reference", metavar="[REPOSITORY[:TAG]]", required=False, default="")(func)


@click.command("images", short_help="List images")
@_list_options
@pass_app
def images(app: AppContext, **opts: Any) -> None:
    """List images: REPOSITORY TAG IMAGE ID CREATED SIZE, one row per tag."""
    list_images(app, **opts)


@image.command("ls", aliases=["list"])
@_list_options
@pass_app
def image_ls(app: AppContext, **opts: Any) -> None:
    """List images: REPOSITORY TAG IMAGE ID CREATED SIZE, one row per tag."""
    list_images(app, **opts)


# ---------------------------------------------------------------------------------------------
# inspect / rm / tag


@image.command("inspect")
@click.argument("names", metavar="IMAGE...", nargs=-1, required=True)
@format_option(INSPECT_FORMAT_HELP, short=True)
@pass_app
def image_inspect(app: AppContext, names: tuple[str, ...], fmt: str) -> None:
    """Display detailed information on one or more images."""
    printer = InspectPrinter(fmt)
    client = app.client()
    for name in names:
        try:
            printer.add(client.get_text(f"/images/{image_path(name)}/json"))
        except DaemonError as exc:
            printer.add_error(exc.message)
    echo_raw(printer.output())
    fail_if(printer.errors)


def remove_images(app: AppContext, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """docker rmi: print what was untagged/deleted; with -f only non-404 errors fail."""
    client = app.client()
    params = {k: "1" for k, on in (("force", force), ("noprune", no_prune)) if on}
    errors, fatal = [], False
    for name in names:
        try:
            report = client.request("DELETE", f"/images/{image_path(name)}", params=params or None).json()
        except DaemonError as exc:
            fatal = fatal or not exc.not_found
            errors.append(exc.message)
            continue
        except ValueError:
            report = []
        for item in report or []:
            if item.get("Deleted"):
                click.echo(f"Deleted: {item['Deleted']}")
            else:
                click.echo(f"Untagged: {item.get('Untagged', '')}")
    if errors:
        if not force or fatal:
            raise CliError("\n".join(errors))
        click.echo("\n".join(errors), err=True)


def _rm_options(func: Any) -> Any:
    func = click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")(func)
    func = click.option("-f", "--force", is_flag=True, help="Force removal of the image")(func)
    return click.argument("names", metavar="IMAGE...", nargs=-1, required=True)(func)


@image.command("rm", aliases=["remove"])
@_rm_options
@pass_app
def image_rm(app: AppContext, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images (or just the given tags)."""
    remove_images(app, names, force, no_prune)


@click.command("rmi", short_help="Remove one or more images")
@_rm_options
@pass_app
def rmi(app: AppContext, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images (or just the given tags)."""
    remove_images(app, names, force, no_prune)


def _reference_error(text: str, exc: ValueError) -> CliError:
    return CliError(f"Error parsing reference: {go_quote(text)} is not a valid repository/tag: {exc}")


@image.command("tag")
@click.argument("source", metavar="SOURCE_IMAGE[:TAG]")
@click.argument("target", metavar="TARGET_IMAGE[:TAG]")
@pass_app
def image_tag(app: AppContext, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    if not is_image_id(source):
        try:
            parse_normalized(source)
        except ValueError as exc:
            raise _reference_error(source, exc) from None
    try:
        ref = parse_normalized(target)
    except ValueError as exc:
        raise _reference_error(target, exc) from None
    if ref.digest:
        raise CliError("refusing to create a tag with a digest reference")
    ref = ref.with_default_tag()
    params = {"repo": ref.name(), "tag": ref.tag}
    app.client().request("POST", f"/images/{image_path(source)}/tag", params=params)


# ---------------------------------------------------------------------------------------------
# import


@image.command("import", short_help="Import a root filesystem tarball as an image")
@click.argument("source", metavar="file|URL|-")
@click.argument("repository", metavar="[REPOSITORY[:TAG]]", required=False, default="")
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help="Apply a Dockerfile instruction to the image (CMD, ENV, WORKDIR; repeatable)")
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable")
@pass_app
def image_import(app: AppContext, source: str, repository: str, changes: tuple[str, ...], message: str,
                 platform: str) -> None:
    """Import a root filesystem tarball (file, or - for stdin) as an image; prints its ID."""
    if repository:
        try:
            parse_normalized(repository)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    remote = source.startswith(("http://", "https://"))
    query = [("fromSrc", source if remote else "-")]
    query += [(k, v) for k, v in (("repo", repository), ("message", message), ("platform", platform)) if v]
    query += [("changes", change) for change in changes]
    client = app.client()
    target = client.prefix() + "/images/create" + encode_query(query)
    stdin, stdout, _ = stdio()
    try:
        body = None if remote else (stdin if source == "-" else open(source, "rb"))
    except OSError as exc:
        raise CliError(f"open {source}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        conn, head = request(client.endpoint, "POST", target, body=body, headers={"Content-Type": "text/plain"})
        try:
            display_messages(conn, head, stdout)
        finally:
            conn.close()
    finally:
        if body is not None and body is not stdin:
            body.close()

