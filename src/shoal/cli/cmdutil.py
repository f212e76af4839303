"""Plumbing every command group shares: the app context, groups with aliases, option parsing.

A new command group (containers, images, ...) needs only this module and `client.py`: take
`AppContext` via `pass_app`, raise `CliError` on failure, and parse docker-style flags with the
helpers below so error messages match across commands.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import click
import httpx

from shoal.cli.client import ApiClient
from shoal.cli.errors import CliError

FORMAT_HELP = "Format output: 'table' (default), 'table TEMPLATE', 'json', or a Go TEMPLATE"
INSPECT_FORMAT_HELP = "Format output using a Go template, or 'json' for compact JSON"


@dataclass
class AppContext:
    """Per-invocation state: where the daemon is and (lazily) a client for it."""

    host: str
    transport: httpx.BaseTransport | None = None  # injected by tests; None means a real socket
    api_version: str | None = None  # pinned API version; None negotiates with the daemon
    _client: ApiClient | None = field(default=None, init=False, repr=False)

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.host, transport=self.transport, api_version=self.api_version)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_app = click.make_pass_decorator(AppContext)


class AliasedGroup(click.Group):
    """A group whose commands may have aliases (`ls`/`list`), hidden from the command list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}

    def command(self, *args: Any, aliases: Iterable[str] = (), **kwargs: Any) -> Callable[..., Any]:
        decorator = super().command(*args, **kwargs)

        def register(func: Callable[..., Any]) -> click.Command:
            cmd = decorator(func)
            for alias in aliases:
                self.aliases[alias] = cmd.name or ""
            if aliases:
                names = ", ".join([cmd.name or "", *aliases])
                cmd.epilog = f"Aliases: {names}" + (f"\n\n{cmd.epilog}" if cmd.epilog else "")
            return cmd

        return register

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))


class RootGroup(AliasedGroup):
    """The top-level group: turns any CliError into `message` on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            if exc.message:
                click.echo(exc.message, err=True)
            ctx.exit(exc.exit_code)


# ---------------------------------------------------------------------------------------------
# docker-style flag values


def split_kv(value: str) -> tuple[str, str]:
    """`key=value` (value may contain '='); a bare `key` means an empty value, like docker's MapOpts."""
    key, _, val = value.partition("=")
    return key, val


def kv_map(values: Iterable[str]) -> dict[str, str]:
    """Repeated `key=value` flags into a map; later keys win, as in docker."""
    result: dict[str, str] = {}
    for value in values:
        key, val = split_kv(value)
        result[key] = val
    return result


def split_csv(values: Iterable[str]) -> list[str]:
    """Repeatable flags that also accept comma-separated lists (pflag's StringSlice)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def validate_labels(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """docker's opts.ValidateLabel: a label needs a name without whitespace."""
    for value in values:
        key = value.partition("=")[0].strip()
        if not key:
            raise click.BadParameter(f"invalid label '{value}': empty name")
        if any(ch in key for ch in " \t"):
            raise click.BadParameter(f"label '{key}' contains whitespaces")
    return values


def parse_filters(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, str]]:
    """`-f key=value` flags as (lower-cased key, value) pairs, rejecting malformed ones."""
    pairs = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            raise click.BadParameter(f"bad format of filter (expected name=value): {value!r}")
        pairs.append((key.strip().lower(), val.strip()))
    return pairs


def confirm(message: str) -> bool:
    """docker's prompt: `MESSAGE [y/N] ` on stdout, then one line of stdin; only 'y' agrees."""
    click.echo(f"{message} [y/N] ", nl=False)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "y"


def format_option(help_text: str = FORMAT_HELP, short: bool = False) -> Callable[..., Any]:
    flags = ("-f", "--format") if short else ("--format",)
    return click.option(*flags, "fmt", default="", metavar="FORMAT", help=help_text)


def filter_option(help_text: str, short: bool = True) -> Callable[..., Any]:
    flags = ("-f", "--filter") if short else ("--filter",)
    return click.option(
        *flags, "filters", multiple=True, metavar="KEY=VALUE", callback=parse_filters, help=help_text
    )


def echo_raw(text: str) -> None:
    """Write already-formatted output exactly (no added newline)."""
    if text:
        click.echo(text, nl=False)


def fail_if(errors: list[str]) -> None:
    if errors:
        raise CliError("\n".join(errors))
