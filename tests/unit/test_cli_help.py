"""Every command has a useful --help, and `shoal --help` lists each command on one line."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from shoal.cli.main import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            found += all_commands(cmd, prefix + (name,))
        else:
            found.append(prefix + (name,))
    return found


COMMANDS = all_commands(cli)


def test_expected_commands_exist() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for wanted in ("version", "info", "network create", "network ls", "network inspect", "network rm", "network prune"):
        assert wanted in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "shoal")
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: shoal {' '.join(path)}".rstrip())
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 10


def test_root_help_lists_commands_one_line_each() -> None:
    out = CliRunner().invoke(cli, ["--help"]).stdout
    commands = out.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in commands] == ["attach", "cluster", "cp", "exec", "image", "images", "info", "inspect", "kill", "load", "login", "logout", "logs", "network", "ps", "pull", "push", "restart", "rm", "rmi", "run", "save", "start", "stop", "system", "version", "volume", "wait"]
    assert all(not line.rstrip().endswith("...") for line in commands)
    net = CliRunner().invoke(cli, ["network", "--help"]).stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in net] == ["connect", "create", "disconnect", "inspect", "ls", "prune", "rm"]


def test_aliases_resolve_and_are_documented() -> None:
    for alias, canonical in (("list", "ls"), ("remove", "rm")):
        result = CliRunner().invoke(cli, ["network", alias, "--help"])
        assert result.exit_code == 0
        assert f"Aliases: {canonical}, {alias}" in result.stdout


def test_create_help_lists_docker_flags() -> None:
    out = CliRunner().invoke(cli, ["network", "create", "--help"]).stdout
    for flag in ("--driver", "--subnet", "--gateway", "--ip-range", "--aux-address", "--internal", "--attachable",
                 "--label", "--opt", "--ipv6", "--ipv4 / --no-ipv4", "--ipam-driver", "--ipam-opt", "--scope"):
        assert flag in out, flag
