"""Turn measured samples into the markdown report: pure functions, no root, unit-tested.

A cell is the samples of one row for one peer, a single value, or n/a with a reason.
Each cell prints `median (tail)`: the tail is p90 for times and sizes (the slow side) and
p10 for rates (the slow side of a throughput). Ratios are shoal's median over the peer's.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_better: bool = False


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)


@dataclass
class Value:
    value: float


@dataclass
class NA:
    reason: str
    error: bool = False


Cell = Samples | Value | NA


def percentile(values: list[float], q: float) -> float:
    """Nearest rank on the sorted samples (no interpolation: every number printed was measured)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def summary(cell: Cell | None, higher_better: bool = False) -> tuple[float, float] | None:
    """(median, tail) of a cell, None for n/a or nothing measured."""
    if isinstance(cell, Value):
        return cell.value, cell.value
    if isinstance(cell, Samples) and cell.values:
        return statistics.median(cell.values), percentile(cell.values, 0.1 if higher_better else 0.9)
    return None


def ratio(base: Cell | None, other: Cell | None) -> float | None:
    """base median / other median; None when either side has no number or the divisor is 0."""
    a, b = summary(base), summary(other)
    if a is None or b is None or b[0] == 0:
        return None
    return a[0] / b[0]


def fmt(x: float) -> str:
    """Three significant digits, without exponent notation for the usual ranges."""
    ax = abs(x)
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax == 0:
        return "0"
    return f"{x:.3g}"


class Notes:
    """n/a reasons, numbered once each, printed under the table."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, reason: str) -> int:
        if reason not in self.items:
            self.items.append(reason)
        return self.items.index(reason) + 1

    def markdown(self) -> str:
        return "\n".join(f"[{i}] {r}" for i, r in enumerate(self.items, 1))


def cell_text(cell: Cell | None, row: Row, notes: Notes) -> str:
    if isinstance(cell, NA):
        return f"{'error' if cell.error else 'n/a'} [{notes.ref(cell.reason)}]"
    s = summary(cell, row.higher_better)
    if s is None:
        return "-"
    if isinstance(cell, Value):
        return fmt(s[0])
    return f"{fmt(s[0])} ({fmt(s[1])})"


def markdown_table(rows: list[Row], results: dict[str, dict[str, Cell]], peers: list[str],
                   base: str = "shoal") -> str:
    """One line per row: each peer's `median (tail)`, then base/peer ratios of the medians."""
    notes = Notes()
    others = [p for p in peers if p != base] if base in peers else []
    head = ["operation", "unit", *peers, *[f"{base}/{p}" for p in others]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for row in rows:
        cells = [row.label, row.unit]
        cells += [cell_text(results.get(p, {}).get(row.key), row, notes) for p in peers]
        for p in others:
            r = ratio(results.get(base, {}).get(row.key), results.get(p, {}).get(row.key))
            cells.append("n/a" if r is None else f"{r:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines)
    if notes.items:
        out += "\n\n" + notes.markdown()
    return out


def machine_markdown(machine: dict[str, str], peers: dict[str, str], config: dict[str, object]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    lines += [f"| peer {k} | {v} |" for k, v in peers.items()]
    lines += [f"| run {k} | {v} |" for k, v in config.items()]
    return "\n".join(lines)


def errors(results: dict[str, dict[str, Cell]]) -> list[str]:
    return [f"{p} {k}: {c.reason}" for p, cells in results.items() for k, c in cells.items()
            if isinstance(c, NA) and c.error]


def to_json(results: dict[str, dict[str, Cell]]) -> dict:
    out: dict = {}
    for peer, cells in results.items():
        for key, c in cells.items():
            if isinstance(c, Samples):
                j: dict = {"samples": c.values}
            elif isinstance(c, Value):
                j = {"value": c.value}
            else:
                j = {"na": c.reason, "error": c.error}
            out.setdefault(peer, {})[key] = j
    return out


def from_json(data: dict) -> dict[str, dict[str, Cell]]:
    out: dict[str, dict[str, Cell]] = {}
    for peer, cells in data.items():
        for key, j in cells.items():
            if "samples" in j:
                c: Cell = Samples(list(j["samples"]))
            elif "value" in j:
                c = Value(j["value"])
            else:
                c = NA(j["na"], bool(j.get("error")))
            out.setdefault(peer, {})[key] = c
    return out


def paired_ratios(rounds: dict[str, dict[str, dict[int, float]]], base: str, other: str,
                  key: str) -> list[float]:
    """base / other for each round both measured: the two ran back to back, so the machine's
    drift over the run (which moves both) cancels, unlike a ratio of whole-run medians."""
    a = rounds.get(base, {}).get(key, {})
    b = rounds.get(other, {}).get(key, {})
    return [a[r] / b[r] for r in sorted(a.keys() & b.keys()) if b[r]]


def median_interval(values: list[float], level: float = 0.9, resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): a percentile bootstrap interval of the median, seeded so a
    report is reproducible from its samples."""
    rng = random.Random(seed)
    med = statistics.median(values)
    boots = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1 - level) / 2
    return med, percentile(boots, tail), percentile(boots, 1 - tail)


def paired_markdown(rows: list[Row], rounds: dict[str, dict[str, dict[int, float]]], peers: list[str],
                    base: str = "shoal") -> str:
    """For each throughput row and peer: the median of per-round ratios with a 90% interval."""
    others = [p for p in peers if p != base and p in rounds]
    keys = [r for r in rows if any(r.key in rounds.get(p, {}) for p in peers)]
    if base not in rounds or not others or not keys:
        return ""
    lines = ["| path | " + " | ".join(f"{base}/{p} (90% interval, rounds)" for p in others) + " |",
             "|---|" + "---:|" * len(others)]
    paired = False
    for row in keys:
        cells = []
        for p in others:
            r = paired_ratios(rounds, base, p, row.key)
            if len(r) < 2:
                cells.append("-")
                continue
            med, lo, hi = median_interval(r)
            cells.append(f"{med:.2f}x ({lo:.2f}-{hi:.2f}, {len(r)})")
            paired = True
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if paired else ""  # one round (--quick) pairs nothing


BREAKDOWN_LAYERS = ("store", "ipam", "kernel", "firewall", "runtime", "dns", "other")


def breakdown_markdown(rows: list[Row], breakdown: dict[str, dict]) -> str:
    """shoal's time per operation by layer: the mean ms per operation of each layer's
    exclusive time and its share of the daemon's request time ("api"), the slowest in bold.
    Means, not medians, so the layers add up to the total. `outside` is what the client
    waited beyond the daemon's request clock (HTTP framing, the socket, the client)."""
    keys = [r for r in rows if r.key in breakdown and breakdown[r.key]["ops"]]
    if not keys:
        return ""
    head = ["operation", "ops", "requests/op", "api ms/op", *BREAKDOWN_LAYERS, "outside", "background"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in keys:
        b = breakdown[row.key]
        n = b["ops"]
        api = b["ms"].get("api", 0.0) / n
        per = {name: b["ms"].get(name, 0.0) / n for name in BREAKDOWN_LAYERS}
        top = max(per, key=lambda k: per[k])
        cells = [row.label, str(n), fmt(b["requests"] / n), fmt(api)]
        for name in BREAKDOWN_LAYERS:
            text = f"{fmt(per[name])} ({per[name] / api:.0%})" if api > 0 else fmt(per[name])
            cells.append(f"**{text}**" if name == top and per[name] > 0 else text)
        cells += [fmt(b["client_ms"] / n - api), fmt(b["background_ms"] / n)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
