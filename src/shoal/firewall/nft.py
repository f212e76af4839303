"""Feeding batches to the `nft` binary: argument lists only, one batch per call.

- Nft: runs `[*prefix, "nft", "-f", "-"]` with the batch on stdin (prefix e.g.
  `["nsenter", "--net=/run/netns/X"]` in tests; the daemon runs in its host netns already).
- NftError: nft refused a batch; carries nft's message and the failing line numbers.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Sequence

from shoal.errors import ShoalError

_ERROR_LINE = re.compile(r"^\S*:(\d+):\d+(?:-\d+)?: Error: (.*)$")


class NftError(ShoalError):
    """`lines` are 1-based line numbers of `batch` that nft complained about."""

    def __init__(self, message: str, lines: Sequence[int] = (), batch: str = "") -> None:
        super().__init__(message)
        self.lines = tuple(lines)
        self.batch = batch


def parse_errors(stderr: str) -> list[tuple[int, str]]:
    """(line, message) for each `<file>:<line>:<col>: Error: <message>` nft printed."""
    found = []
    for text in stderr.splitlines():
        match = _ERROR_LINE.match(text)
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return found


def batch_error(batch: str, stderr: str) -> NftError:
    """Name each failing line and quote it, so the log alone explains the failure."""
    errors = parse_errors(stderr)
    if not errors:
        return NftError(f"nft failed: {stderr.strip() or 'no message'}", (), batch)
    source = batch.splitlines()
    parts = []
    for line, message in errors:
        quoted = source[line - 1].strip() if 0 < line <= len(source) else ""
        parts.append(f"line {line}: {message}: {quoted}")
    return NftError("nft rejected the batch: " + "; ".join(parts), [line for line, _ in errors], batch)


@dataclass(frozen=True)
class Nft:
    """The nft command line; `check=True` is nft's dry run (`-c`)."""

    prefix: tuple[str, ...] = ()
    binary: str = "nft"
    timeout: float = 30.0

    def _call(self, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        argv = [*self.prefix, self.binary, *args]
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise NftError(f"cannot run {argv[0]}: not found (install nftables)") from None
        except subprocess.TimeoutExpired:
            raise NftError(f"nft did not finish within {self.timeout:g}s") from None

    def run(self, batch: str, *, check: bool = False) -> None:
        """Apply `batch` atomically: all of it or, on error, none of it."""
        proc = self._call(["-c", "-f", "-"] if check else ["-f", "-"], batch)
        if proc.returncode != 0:
            raise batch_error(batch, proc.stderr)

    def list_table(self, family: str, table: str = "shoal", *, as_json: bool = False) -> str:
        """`nft list table`, or "" when the table does not exist."""
        proc = self._call(["-j", "list", "table", family, table] if as_json else ["list", "table", family, table])
        return proc.stdout if proc.returncode == 0 else ""
