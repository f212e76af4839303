"""Output formatting shared by all commands: docker's list formats, inspect output, sorting.

Mirrors docker/cli's formatter.Context (`table`, `table TEMPLATE`, `json`, `raw`, `TEMPLATE`)
and inspect.Inspect (indented raw JSON, or a template per object with a schema-less fallback),
so any command group can print docker-identical output by supplying row objects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from shoal.cli.errors import CliError
from shoal.cli.govalues import decode_raw
from shoal.cli.tabwriter import tabwrite
from shoal.cli.templates import HEADER_FUNCS, Template, TemplateExecError, TemplateParseError

TABLE_KEY = "table"
JSON_KEY = "json"
RAW_KEY = "raw"
INSPECT_PARSE_EXIT = 64  # docker's status for an unparsable `inspect --format`


# ---------------------------------------------------------------------------------------------
# Sorting


def natural_less(a: str, b: str) -> bool:
    """fvbommel/sortorder.NaturalLess: digit runs compare numerically, digits sort first."""
    s1, s2 = a.encode(), b.encode()
    i = j = 0
    while i < len(s1) and j < len(s2):
        d1, d2 = chr(s1[i]).isdigit(), chr(s2[j]).isdigit()
        if d1 != d2:
            return d1
        if not d1:
            if s1[i] != s2[j]:
                return s1[i] < s2[j]
            i, j = i + 1, j + 1
            continue
        while i < len(s1) and s1[i] == ord("0"):
            i += 1
        while j < len(s2) and s2[j] == ord("0"):
            j += 1
        nz1, nz2 = i, j
        while i < len(s1) and chr(s1[i]).isdigit():
            i += 1
        while j < len(s2) and chr(s2[j]).isdigit():
            j += 1
        if i - nz1 != j - nz2:
            return i - nz1 < j - nz2
        if s1[nz1:i] != s2[nz2:j]:
            return s1[nz1:i] < s2[nz2:j]
        if nz1 != nz2:
            return nz1 < nz2
    return len(s1) < len(s2)


def natural_sorted(items: Sequence[Any], key: Callable[[Any], str]) -> list[Any]:
    def cmp(x: Any, y: Any) -> int:
        kx, ky = key(x), key(y)
        return -1 if natural_less(kx, ky) else (1 if natural_less(ky, kx) else 0)

    return sorted(items, key=functools.cmp_to_key(cmp))


# ---------------------------------------------------------------------------------------------
# List output (docker's formatter.Context)


@dataclass(frozen=True)
class ListFormats:
    """The per-command formats behind docker's format keywords."""

    table: str  # e.g. "table {{.ID}}\t{{.Name}}"
    raw: str
    quiet: str = "{{.ID}}"
    quiet_raw: str = "{{.ID}}"


def resolve_list_format(source: str, quiet: bool, formats: ListFormats) -> str:
    """Turn `--format`/`-q` into a concrete format string, as each docker `NewFormat` does."""
    source = source or TABLE_KEY
    if source == TABLE_KEY:
        return formats.quiet if quiet else formats.table
    if source == RAW_KEY:
        return formats.quiet_raw if quiet else formats.raw
    return source


def render_list(fmt: str, rows: Sequence[Any], header: Any) -> str:
    """Render rows with a resolved format; tables get a header row and tabwriter alignment."""
    is_table = fmt.startswith(TABLE_KEY)
    body = fmt[len(TABLE_KEY):] if is_table else ("{{json .}}" if fmt == JSON_KEY else fmt)
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        tmpl = Template.parse(body)
        lines = [tmpl.execute(row) + "\n" for row in rows]
    except (TemplateParseError, TemplateExecError) as exc:
        raise CliError(f"template parsing error: {exc}") from None
    if not is_table:
        return "".join(lines)
    try:
        head = tmpl.execute(header, funcs=HEADER_FUNCS)
    except TemplateExecError as exc:  # docker ignores header errors and keeps partial output
        head = exc.output
    return tabwrite(head + "\n" + "".join(lines))


# ---------------------------------------------------------------------------------------------
# JSON re-indentation (Go's json.Indent / json.Compact over the daemon's raw bytes)


def reindent_json(raw: str, indent: str | None = "    ") -> str:
    """Re-indent JSON text without re-encoding it, so escapes and number text are preserved.

    `indent=None` compacts instead. Empty objects and arrays stay `{}` / `[]` as in Go.
    """
    out: list[str] = []
    depth = 0
    need_indent = False
    in_string = escaped = False
    newline = (lambda d: "\n" + indent * d) if indent is not None else (lambda d: "")
    for ch in raw.strip(" \t\r\n"):
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in " \t\r\n":
            continue
        if need_indent and ch not in "]}":
            need_indent = False
            depth += 1
            out.append(newline(depth))
        if ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "[{":
            need_indent = True
            out.append(ch)
        elif ch == ",":
            out.append("," + newline(depth))
        elif ch == ":":
            out.append(": " if indent is not None else ":")
        elif ch in "]}":
            if need_indent:
                need_indent = False
            else:
                depth -= 1
                out.append(newline(depth))
            out.append(ch)
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Inspect output (docker's inspect.Inspect)


def parse_inspect_format(fmt: str) -> Template | None:
    """Parse `inspect --format` up front: docker exits 64 on syntax errors before any request."""
    if fmt in ("", JSON_KEY):
        return None
    try:
        return Template.parse(fmt)
    except TemplateParseError as exc:
        raise CliError(f"template parsing error: {exc}", exit_code=INSPECT_PARSE_EXIT) from None


class InspectPrinter:
    """Collects inspect results like docker's inspector: output at the end, errors in order.

    With no format the daemon's JSON is re-indented verbatim; with a template, each object is
    rendered against its typed view first and, if that fails, against the raw JSON with
    missingkey=error — the same two-step docker performs.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.tmpl = parse_inspect_format(fmt)
        self.raws: list[str] = []
        self.rendered: list[str] = []
        self.errors: list[str] = []

    def add(self, raw: str, typed: Callable[[Any], Any] | None = None) -> None:
        try:
            data = decode_raw(raw)
        except ValueError as exc:
            self.errors.append(f"invalid JSON from daemon: {exc}")
            return
        if self.tmpl is None:
            self.raws.append(raw)
            return
        try:
            self.rendered.append(self._execute(data, typed) + "\n")
        except TemplateExecError as exc:
            self.errors.append(f"template parsing error: {exc}")

    def add_error(self, message: str) -> None:
        self.errors.append(message)

    def _execute(self, data: Any, typed: Callable[[Any], Any] | None) -> str:
        assert self.tmpl is not None
        if typed is not None:
            try:
                return self.tmpl.execute(typed(data))
            except (TemplateExecError, TypeError, ValueError):
                pass
        return self.tmpl.execute(data, raw=True)

    def output(self) -> str:
        if self.tmpl is not None:
            return "".join(self.rendered) or "\n"
        if not self.raws:
            return "[]\n"
        joined = "[" + ",".join(raw.strip() for raw in self.raws) + "]"
        return reindent_json(joined, None if self.fmt == JSON_KEY else "    ") + "\n"
