"""`shoal run`, `attach`, `exec` and `start`: the commands that stream a container's I/O.

Each follows the docker 28 CLI's request sequence and exit statuses: the container's (or
exec's) exit code when attached, 125 when `run` itself fails (126/127 for a command that
cannot run), 1 for other errors, and "read escape sequence" (status 1) when the user
detaches from `attach`/`exec` (a detach is a success for `run` and `start`).
"""

from __future__ import annotations

import os
from typing import Any

import click

from shoal.cli.attach import Api, Terminal, Waiter, attach_query, follows_size
from shoal.cli.client import path_segment
from shoal.cli.cmdutil import AppContext, pass_app
from shoal.cli.errors import CliError, DaemonError
from shoal.cli.hijack import Detached, detach_bytes
from shoal.cli.images import display_messages
from shoal.cli.refs import is_image_id, parse_normalized
from shoal.cli.runopts import RunError, RunOptions, build_create_body, start_failure_status, validate_env
from shoal.cli.term import SignalRelay, check_tty, stdio, tty_size

DETACH_KEYS_HELP = "Override the key sequence for detaching a container (default ctrl-p,ctrl-q)"
NO_INTERSPERSE = {"allow_interspersed_args": False}


def register(root: click.Group) -> None:
    for command in (run, attach, exec_, start):
        root.add_command(command)


# ---------------------------------------------------------------------------------------------
# run


def _create(api: Api, body: dict[str, Any], name: str) -> str:
    params = {"name": name} if name else None
    result = api.client.post_json("/containers/create", body, params=params) or {}
    for warning in result.get("Warnings") or []:
        click.echo(f"WARNING: {warning}", err=True)
    return str(result.get("Id", ""))


def _pull(api: Api, image: str) -> None:
    """The pull docker does after a 404 on create: `POST /images/create?fromImage=&tag=`."""
    ref = parse_normalized(image).with_default_tag()
    query = [("fromImage", ref.name()), ("tag", ref.tag or ref.digest)]
    conn, head = api.stream("POST", "/images/create", query)
    try:
        display_messages(conn, head, stdio()[2])
    finally:
        conn.close()


def create_container(api: Api, opts: RunOptions, body: dict[str, Any]) -> str:
    """createContainer: validate the reference, create, and pull then retry on a 404."""
    named = None
    if not is_image_id(opts.image):
        try:
            named = parse_normalized(opts.image).with_default_tag()
        except ValueError as exc:
            raise RunError(str(exc)) from None
    try:
        return _create(api, body, opts.name)
    except DaemonError as exc:
        if not exc.not_found or named is None:
            raise RunError(exc.message, start_failure_status(exc.message)) from None
    click.echo(f"Unable to find image '{named.familiar_string()}' locally", err=True)
    try:
        _pull(api, opts.image)
        return _create(api, body, opts.name)
    except CliError as exc:
        raise RunError(exc.message, start_failure_status(exc.message)) from None


def _start(api: Api, cid: str) -> None:
    try:
        api.client.request("POST", f"/containers/{path_segment(cid)}/start")
    except DaemonError as exc:
        raise RunError(exc.message, start_failure_status(exc.message), help_hint=False) from None


def run_container(app: AppContext, opts: RunOptions) -> None:
    """runContainer: create, [attach], wait, start, [resize, stream], then the exit status."""
    stdin, stdout, stderr = stdio()
    if not opts.detach and (problem := check_tty(stdin, opts.attach_stdin, opts.tty)):
        raise CliError(problem)
    api = Api(app)
    body = build_create_body(opts, tty_size(stdout))
    cid = create_container(api, opts, body)
    if opts.detach:
        waiter = Waiter(api, cid, "removed" if opts.rm else "next-exit")
        try:
            _start(api, cid)
        finally:
            waiter.close()
        click.echo(cid)
        return
    term = Terminal(stdin if opts.attach_stdin else None, stdout, stderr, opts.tty, detach_bytes(opts.detach_keys))
    if follows_size(opts.tty, stdout):
        term.resize = lambda size: api.resize(cid, size)
    if not opts.tty:
        term.kill = lambda signum: api.kill(cid, signum)
    with SignalRelay(term.signals()) as relay:
        conn = api.hijack(f"/containers/{path_segment(cid)}/attach", attach_query(opts.attach_stdin, opts.detach_keys))
        waiter = Waiter(api, cid, "removed" if opts.rm else "next-exit")
        try:
            _start(api, cid)
        except RunError:
            conn.close()
            if opts.rm:
                waiter.result()
            waiter.close()
            raise
        if term.resize is not None:
            term.resize(tty_size(stdout))
        try:
            term.stream(conn, relay)
        except Detached:
            waiter.close()
            return
    status = waiter.result()
    if status:
        raise CliError("", status)


@click.command("run", short_help="Create and run a new container from an image", context_settings=NO_INTERSPERSE)
@click.argument("image", metavar="IMAGE")
@click.argument("args", metavar="[COMMAND] [ARG...]", nargs=-1, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("--rm", is_flag=True, help="Automatically remove the container and its resources when it exits")
@click.option("--name", default="", help="Assign a name to the container")
@click.option("--hostname", default="", help="Container host name (no -h: that is --help)")
@click.option("-u", "--user", default="", help='Username or UID (format: "<name|uid>[:<group|gid>]")')
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Set environment variables (repeatable; K alone copies it)")
@click.option("-l", "--label", "labels", multiple=True, metavar="K=V", help="Set meta data on a container (repeatable)")
@click.option("--network", "--net", "networks", multiple=True, metavar="NAME", help="Connect to a network (NAME, bridge, host, none)")
@click.option("--ip", default="", help='IPv4 address (e.g., "172.30.100.104")')
@click.option("--ip6", default="", help='IPv6 address (e.g., "2001:db8::33")')
@click.option("--mac-address", default="", help='Container MAC address (e.g., "92:d0:c6:0a:29:33")')
@click.option("--network-alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
@click.option("--detach-keys", default="", help=DETACH_KEYS_HELP)
@click.option("--runtime", default="", help="Runtime to use for this container (runc, crun, or one of shoald's --add-runtime)")
@pass_app
def run(app: AppContext, image: str, args: tuple[str, ...], **flags: Any) -> None:
    """Create and run a new container from an image.

    Attached runs stream the container's output and exit with its exit status; -it gives an
    interactive terminal (detach with ctrl-p ctrl-q, or --detach-keys). Exit status 125 means
    the run itself failed, 126/127 that the command could not be run.
    """
    fields = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in flags.items()}
    run_container(app, RunOptions(image=image, args=tuple(args), **fields))


# ---------------------------------------------------------------------------------------------
# attach / start -a


def check_running(info: dict[str, Any]) -> None:
    """inspectContainerAndCheckState, with the docker 28 wording."""
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CliError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CliError("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise CliError("You cannot attach to a restarting container, wait until it is running")


@click.command("attach", short_help="Attach local standard input, output, and error to a container")
@click.argument("container", metavar="CONTAINER")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--detach-keys", default="", help=DETACH_KEYS_HELP)
@pass_app
def attach(app: AppContext, container: str, no_stdin: bool, detach_keys: str) -> None:
    """Attach local standard input, output, and error streams to a running container.

    Exits with the container's status when it ends; detaching (ctrl-p ctrl-q) leaves it
    running and prints "read escape sequence".
    """
    api = Api(app)
    stdin, stdout, stderr = stdio()
    waiter = Waiter(api, container)
    try:
        info = api.inspect(container)
        check_running(info)
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        if problem := check_tty(stdin, not no_stdin, tty):
            raise CliError(problem)
        use_stdin = not no_stdin and bool(config.get("OpenStdin"))
        term = Terminal(stdin if use_stdin else None, stdout, stderr, tty, detach_bytes(detach_keys))
        if not tty:
            term.kill = lambda signum: api.kill(container, signum)
        with SignalRelay(term.signals()) as relay:
            conn = api.hijack(f"/containers/{path_segment(container)}/attach", attach_query(use_stdin, detach_keys))
            check_running(api.inspect(container))
            if follows_size(tty, stdout):
                height, width = tty_size(stdout)
                api.resize(container, (height + 1, width + 1))  # docker's nudge to redraw the prompt
                term.resize = lambda size: api.resize(container, size)
                term.resize((height, width))
            try:
                term.stream(conn, relay)
            except Detached as exc:
                raise CliError(str(exc)) from None
        status = waiter.result()
    finally:
        waiter.close()
    if status:
        raise CliError("", status)


def start_attached(app: AppContext, container: str, interactive: bool, detach_keys: str) -> None:
    """`start -a/-i`: attach, wait, start, stream; the container's status at the end."""
    api = Api(app)
    stdin, stdout, stderr = stdio()
    info = api.inspect(container)
    cid = str(info.get("Id") or container)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    use_stdin = interactive and bool(config.get("OpenStdin"))
    if problem := check_tty(stdin, use_stdin, tty):
        raise CliError(problem)
    term = Terminal(stdin if use_stdin else None, stdout, stderr, tty, detach_bytes(detach_keys))
    if follows_size(tty, stdout):
        term.resize = lambda size: api.resize(cid, size)
    if not tty:
        term.kill = lambda signum: api.kill(cid, signum)
    auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
    with SignalRelay(term.signals()) as relay:
        conn = api.hijack(f"/containers/{path_segment(cid)}/attach", attach_query(use_stdin, detach_keys))
        waiter = Waiter(api, cid, "removed" if auto_remove else "next-exit")
        try:
            api.client.request("POST", f"/containers/{path_segment(cid)}/start")
            if term.resize is not None:
                term.resize(tty_size(stdout))
            term.stream(conn, relay)
        except Detached:
            waiter.close()
            return
        except CliError:
            conn.close()
            waiter.close()
            raise
    status = waiter.result()
    if status:
        raise CliError("", status)


@click.command("start", short_help="Start one or more stopped containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
@click.option("-a", "--attach", "attach_", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.option("--detach-keys", default="", help=DETACH_KEYS_HELP)
@pass_app
def start(app: AppContext, containers: tuple[str, ...], attach_: bool, interactive: bool, detach_keys: str) -> None:
    """Start one or more stopped containers, printing each one started.

    With -a (or -i) the single container's output is streamed and its exit status returned.
    """
    if attach_ or interactive:
        if len(containers) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        start_attached(app, containers[0], interactive, detach_keys)
        return
    client = app.client()
    failed = []
    for name in containers:
        try:
            client.request("POST", f"/containers/{path_segment(name)}/start")
        except DaemonError as exc:
            click.echo(exc.message, err=True)
            failed.append(name)
            continue
        click.echo(name)
    if failed:
        raise CliError(f"Error: failed to start containers: {', '.join(failed)}")


# ---------------------------------------------------------------------------------------------
# exec


def build_exec_body(cmd: tuple[str, ...], *, interactive: bool, tty: bool, detach: bool, env: list[str],
                    workdir: str, user: str, privileged: bool, detach_keys: str,
                    console: tuple[int, int] | None) -> dict[str, Any]:
    """container.ExecOptions in the docker 28 CLI's field order."""
    body: dict[str, Any] = {"User": user, "Privileged": privileged, "Tty": tty}
    if console is not None:
        body["ConsoleSize"] = list(console)
    body.update({
        "AttachStdin": interactive and not detach, "AttachStderr": not detach, "AttachStdout": not detach,
        "Detach": detach, "DetachKeys": detach_keys, "Env": env or None, "WorkingDir": workdir, "Cmd": list(cmd),
    })
    return body


def _start_body(detach: bool, tty: bool, console: tuple[int, int] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"Detach": detach, "Tty": tty}
    if console is not None:
        body["ConsoleSize"] = list(console)
    return body


@click.command("exec", short_help="Execute a command in a running container", context_settings=NO_INTERSPERSE)
@click.argument("container", metavar="CONTAINER")
@click.argument("cmd", metavar="COMMAND [ARG...]", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Set environment variables (repeatable)")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.option("-u", "--user", default="", help='Username or UID (format: "<name|uid>[:<group|gid>]")')
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.option("--detach-keys", default="", help=DETACH_KEYS_HELP)
@pass_app
def exec_(app: AppContext, container: str, cmd: tuple[str, ...], interactive: bool, tty: bool, detach: bool,
          env: tuple[str, ...], workdir: str, user: str, privileged: bool, detach_keys: str) -> None:
    """Execute a command in a running container; exits with the command's exit status."""
    api = Api(app)
    stdin, stdout, stderr = stdio()
    env_list = [_exec_env(v) for v in env]
    api.inspect(container)  # "No such container" takes precedence, as in docker
    if not detach and (problem := check_tty(stdin, interactive, tty)):
        raise CliError(problem)
    console = tty_size(stdout) if tty else None
    body = build_exec_body(cmd, interactive=interactive, tty=tty, detach=detach, env=env_list, workdir=workdir,
                           user=user, privileged=privileged, detach_keys=detach_keys, console=console)
    exec_id = str((api.client.post_json(f"/containers/{path_segment(container)}/exec", body) or {}).get("Id", ""))
    if not exec_id:
        raise CliError("exec ID empty")
    if detach:
        api.client.request("POST", f"/exec/{path_segment(exec_id)}/start", body=_start_body(True, tty, console))
        return
    term = Terminal(stdin if interactive else None, stdout, stderr, tty, detach_bytes(detach_keys))
    if follows_size(tty, stdin):  # docker checks stdin here, then follows stdout's size
        term.resize = lambda size: api.resize(exec_id, size, is_exec=True)
    with SignalRelay(term.signals()) as relay:
        conn = api.hijack(f"/exec/{path_segment(exec_id)}/start", body=_start_body(False, tty, console))
        if term.resize is not None:
            term.resize(tty_size(stdout))
        try:
            term.stream(conn, relay)
        except Detached as exc:
            raise CliError(str(exc)) from None
    info = api.client.get_json(f"/exec/{path_segment(exec_id)}/json") or {}
    status = info.get("ExitCode") or 0
    if status:
        raise CliError("", int(status))


def _exec_env(value: str) -> str:
    try:
        return validate_env(value, os.environ)
    except CliError:
        raise CliError(f"invalid environment variable: {value}") from None
