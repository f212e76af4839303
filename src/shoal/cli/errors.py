"""Errors the CLI reports to the user.

Every command failure funnels through `CliError` so that the root group can print one
message to stderr and exit with docker's status code, instead of each command doing so.
"""

from __future__ import annotations


class CliError(Exception):
    """A failure to print on stderr (as is) before exiting with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class DaemonError(CliError):
    """The daemon answered with an HTTP error; `message` is already docker-style prefixed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, exit_code=1)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


class DaemonUnreachable(CliError):
    """The socket is missing, refused, or not permitted: the daemon is not reachable."""
