"""A port of Go's text/tabwriter (elastic tabstops), as docker's table output uses it.

Docker formats tables with `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`. Column widths are
computed per *block* of consecutive lines that have a cell in that column, which is why a
straight "max width per column" does not reproduce docker byte for byte in edge cases.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


def display_width(text: str) -> int:
    """Terminal cell width, like go-runewidth: wide East Asian runes count 2, combining 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


@dataclass
class _Cell:
    text: str
    width: int
    htab: bool  # terminated by a tab (part of a column) rather than by end of line


class _Formatter:
    """Formats one flush-unit of lines (Go flushes whenever a line has a single cell)."""

    def __init__(self, lines: list[list[_Cell]], minwidth: int, padding: int) -> None:
        self.lines = lines
        self.minwidth = minwidth
        self.padding = padding
        self.widths: list[int] = []
        self.out: list[str] = []

    def write_lines(self, line0: int, line1: int) -> None:
        for i in range(line0, line1):
            for j, cell in enumerate(self.lines[i]):
                self.out.append(cell.text)
                if j < len(self.widths):
                    self.out.append(" " * (self.widths[j] - cell.width))
            if i + 1 < len(self.lines):
                self.out.append("\n")

    def format(self, line0: int, line1: int) -> None:
        column = len(self.widths)
        this = line0
        while this < line1:
            if column >= len(self.lines[this]) - 1:
                this += 1
                continue
            # A column block starts here: print what precedes it, then size the block.
            self.write_lines(line0, this)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(self.lines[this]) - 1:
                width = max(width, self.lines[this][column].width + self.padding)
                this += 1
            self.widths.append(width)
            self.format(line0, this)
            self.widths.pop()
            line0 = this
        self.write_lines(line0, line1)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-terminated cells of `text` as Go's tabwriter (padchar ' ', flags 0) would."""
    out: list[str] = []
    unit: list[list[_Cell]] = []
    raw_lines = text.split("\n")
    for n, raw in enumerate(raw_lines):
        parts = raw.split("\t")
        cells = [_Cell(p, display_width(p), True) for p in parts[:-1]]
        last = n == len(raw_lines) - 1
        if not last or parts[-1]:
            cells.append(_Cell(parts[-1], display_width(parts[-1]), False))
        unit.append(cells)
        if not last and len(cells) == 1:
            unit.append([])  # the new, still empty line Go adds before flushing
            out.append(_flush(unit, minwidth, padding))
            unit = []
    if unit:
        out.append(_flush(unit, minwidth, padding))
    return "".join(out)


def _flush(lines: list[list[_Cell]], minwidth: int, padding: int) -> str:
    formatter = _Formatter(lines, minwidth, padding)
    formatter.format(0, len(lines))
    return "".join(formatter.out)
