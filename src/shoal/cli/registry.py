"""`shoal pull|push|login|logout|save|load` and their `shoal image ...` forms.

Credentials live where the docker CLI keeps them, `~/.docker/config.json` (or
`$DOCKER_CONFIG/config.json`), as `auths.<server>.auth` = base64 of `user:password`, so a
`docker login` serves `shoal pull` and the other way round. Docker Hub's entry is keyed
`https://index.docker.io/v1/`, as the docker CLI keys it. The daemon gets them per request
in `X-Registry-Auth` (base64url JSON), never stored on its side.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

import click

from shoal.cli.cmdutil import AppContext, pass_app
from shoal.cli.errors import CliError
from shoal.cli.images import display_messages, image
from shoal.cli.rawhttp import encode_query, request
from shoal.cli.refs import DEFAULT_DOMAIN, image_path, parse_normalized
from shoal.cli.term import stdio

HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def _read_config() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"reading {config_path()}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _server_key(domain: str) -> str:
    return HUB_KEY if domain in (DEFAULT_DOMAIN, "index.docker.io", "registry-1.docker.io") else domain


def credentials(domain: str) -> dict[str, str]:
    """What the config holds for a registry, as the X-Registry-Auth JSON wants it."""
    entry = (_read_config().get("auths") or {}).get(_server_key(domain)) or {}
    raw = entry.get("auth") or ""
    if not raw:
        return {}
    try:
        user, _, password = base64.b64decode(raw).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise CliError(f"invalid credentials for {domain} in {config_path()}: run shoal login again") from None
    return {"username": user, "password": password, "serveraddress": _server_key(domain)}


def auth_header(domain: str) -> dict[str, str]:
    creds = credentials(domain)
    encoded = base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()
    return {"X-Registry-Auth": encoded}


def _stream(app: AppContext, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
            body: BinaryIO | None = None) -> None:
    client = app.client()
    target = client.prefix() + path + encode_query(query)
    _, stdout, _ = stdio()
    conn, head = request(client.endpoint, method, target, body=body, headers=headers)
    try:
        display_messages(conn, head, stdout)
    finally:
        conn.close()


def _parse(text: str) -> Any:
    try:
        return parse_normalized(text)
    except ValueError as exc:
        raise CliError(f"invalid reference format: {exc}") from None


@click.command("pull", short_help="Download an image from a registry")
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable (os/arch[/variant])")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@pass_app
def pull(app: AppContext, name: str, platform: str, quiet: bool) -> None:
    """Pull an image from a registry (docker.io unless the name says another)."""
    ref = _parse(name)
    tag = ref.digest or ref.tag or "latest"
    query = [("fromImage", ref.name()), ("tag", tag)] + ([("platform", platform)] if platform else [])
    if quiet:
        client = app.client()
        conn, head = request(client.endpoint, "POST", client.prefix() + "/images/create" + encode_query(query),
                             headers=auth_header(ref.domain))
        try:
            with open(os.devnull, "wb") as sink:
                display_messages(conn, head, sink)
        finally:
            conn.close()
    else:
        _stream(app, "POST", "/images/create", query, auth_header(ref.domain))
    _, stdout, _ = stdio()
    shown = ref.name() + (f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}")
    stdout.write(f"{shown}\n".encode())


@click.command("push", short_help="Upload an image to a registry")
@click.argument("name", metavar="NAME[:TAG]")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository")
@pass_app
def push(app: AppContext, name: str, all_tags: bool) -> None:
    """Push an image (or every tag of a repository with -a) to its registry."""
    ref = _parse(name)
    if all_tags and ref.tag:
        raise CliError("tag can't be used with --all-tags/-a")
    tag = "" if all_tags else (ref.tag or "latest")
    path = f"/images/{image_path(ref.familiar_name())}/push"
    _stream(app, "POST", path, [("tag", tag)] if tag else [], auth_header(ref.domain))


@click.command("login", short_help="Log in to a registry")
@click.argument("server", required=False, default="")
@click.option("-u", "--username", default="", help="Username")
@click.option("-p", "--password", default="", help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@pass_app
def login(app: AppContext, server: str, username: str, password: str, password_stdin: bool) -> None:
    """Check credentials with the registry (through shoald) and keep them in ~/.docker/config.json."""
    if password_stdin:
        stdin, _, _ = stdio()
        password = stdin.read().decode().rstrip("\r\n")
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    key = _server_key(server or DEFAULT_DOMAIN)
    reply = app.client().request("POST", "/auth", body={"username": username, "password": password,
                                                         "serveraddress": key})
    config = _read_config()
    auths = config.setdefault("auths", {})
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent="\t") + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    status = (reply or {}).get("Status", "Login Succeeded") if isinstance(reply, dict) else "Login Succeeded"
    click.echo(status)


@click.command("logout", short_help="Log out from a registry")
@click.argument("server", required=False, default="")
def logout(server: str) -> None:
    """Forget the credentials kept for a registry."""
    key = _server_key(server or DEFAULT_DOMAIN)
    config = _read_config()
    if key not in (config.get("auths") or {}):
        click.echo(f"Not logged in to {server or DEFAULT_DOMAIN}")
        return
    del config["auths"][key]
    config_path().write_text(json.dumps(config, indent="\t") + "\n")
    click.echo(f"Removing login credentials for {server or DEFAULT_DOMAIN}")


@click.command("save", short_help="Save images to a tar archive")
@click.argument("names", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-o", "--output", default="", help="Write to a file, instead of STDOUT")
@pass_app
def save(app: AppContext, names: tuple[str, ...], output: str) -> None:
    """Write images (with their tags) as a tar archive that docker load reads."""
    _, stdout, _ = stdio()
    if not output and stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    client = app.client()
    target = client.prefix() + "/images/get" + encode_query([("names", n) for n in names])
    conn, head = request(client.endpoint, "GET", target)
    try:
        out = open(output, "wb") if output else stdout
        try:
            for chunk in conn.iter_body(head):
                out.write(chunk)
        finally:
            if output:
                out.close()
    finally:
        conn.close()


@click.command("load", short_help="Load images from a tar archive")
@click.option("-i", "--input", "source", default="", help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@pass_app
def load(app: AppContext, source: str, quiet: bool) -> None:
    """Load images from a tar archive (docker save's, or an OCI layout's)."""
    stdin, _, _ = stdio()
    try:
        body = open(source, "rb") if source else stdin
    except OSError as exc:
        raise CliError(f"open {source}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        _stream(app, "POST", "/images/load", [("quiet", "1" if quiet else "0")],
                {"Content-Type": "application/x-tar"}, body=body)
    finally:
        if source:
            body.close()


def register(root: click.Group) -> None:
    for command in (pull, push, save, load):
        root.add_command(command)
        image.add_command(command)
    root.add_command(login)
    root.add_command(logout)
