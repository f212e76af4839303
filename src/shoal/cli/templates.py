"""Docker-compatible Go templates for `--format`: parse once, execute per object.

Public entry points for commands: `Template.parse`, `Template.execute`, and the two error types.
Parse errors and execution errors are distinct because docker exits 64 on the former in
`inspect` and 1 on the latter.
"""

from __future__ import annotations

from typing import Any

from shoal.cli.template_exec import Executor, TemplateExecError
from shoal.cli.template_funcs import BASIC_FUNCS, HEADER_FUNCS, Func
from shoal.cli.template_parse import Node, TemplateParseError, parse

__all__ = ["Template", "TemplateExecError", "TemplateParseError", "BASIC_FUNCS", "HEADER_FUNCS"]


class Template:
    """A parsed template. Functions are resolved by name at execution time, as Go's Funcs() does."""

    def __init__(self, source: str, nodes: list[Node]) -> None:
        self.source = source
        self.nodes = nodes

    @classmethod
    def parse(cls, source: str, funcs: dict[str, Func] | None = None) -> "Template":
        """Parse `source`; raise TemplateParseError (`template: :1: ...`) on bad syntax."""
        return cls(source, parse(source, (funcs or BASIC_FUNCS).keys()))

    def execute(self, data: Any, *, raw: bool = False, funcs: dict[str, Func] | None = None) -> str:
        """Render against `data`; raise TemplateExecError carrying the partial output on failure."""
        return Executor(self.source, funcs or BASIC_FUNCS, raw).run(self.nodes, data)


def render(source: str, data: Any, *, raw: bool = False) -> str:
    """Parse and execute in one go (convenience for tests and one-off formatting)."""
    return Template.parse(source).execute(data, raw=raw)
