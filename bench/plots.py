"""PNG plots of a run (matplotlib, no display): time per container vs count, throughput per path."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

from report import NA, Cell, Samples, percentile  # noqa: E402

COLORS = {"shoal": "tab:blue", "docker": "tab:orange", "netavark": "tab:green", "cni": "tab:purple",
          "raw": "tab:gray"}


def rolling_median(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [statistics.median(values[max(0, i - half):i + half + 1]) for i in range(len(values))]


def per_container(series: dict[str, list[float]], path: Path) -> None:
    """Every start as a faint dot, a rolling median as the line: growth shows as a slope."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for peer, ys in series.items():
        if not ys:
            continue
        xs = list(range(1, len(ys) + 1))
        color = COLORS.get(peer)
        ax.scatter(xs, ys, s=6, alpha=0.25, color=color)
        ax.plot(xs, rolling_median(ys, max(3, len(ys) // 20)), color=color, label=peer, linewidth=1.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}" if str(int(y))[0] in "25" else ""))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("container number (containers already running + 1)")
    ax.set_ylabel("time to start it, ms (log)")
    ax.set_title("Time per container as the count grows (line: rolling median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PATHS = [("tp.c2c", "container -> container"), ("tp.port", "host -> published port (127.0.0.1)"),
         ("tp.hostip", "host -> published port (host address)"),
         ("tp.ext", "outside -> published port (host address)"),
         ("tp.overlay", "overlay: container -> container\nacross hosts (raw: VXLAN by hand)")]
THROUGHPUT_KEYS = [k for k, _ in PATHS]


def throughput(results: dict[str, dict[str, Cell]], peers: list[str], path: Path) -> None:
    """Median bars with p10-p90 whiskers per path; a peer without the path says n/a."""
    paths = [(k, label) for k, label in PATHS if any(k in results.get(p, {}) for p in peers)]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / max(1, len(peers))
    for j, peer in enumerate(peers):
        for i, (key, _) in enumerate(paths):
            x = i + (j - (len(peers) - 1) / 2) * width
            cell = results.get(peer, {}).get(key)
            if isinstance(cell, Samples) and cell.values:
                med = statistics.median(cell.values)
                lo, hi = percentile(cell.values, 0.1), percentile(cell.values, 0.9)
                ax.bar(x, med, width * 0.9, color=COLORS.get(peer), label=peer if i == 0 else None,
                       yerr=[[med - lo], [hi - med]], capsize=3)
            else:
                ax.bar(x, 0, width * 0.9, color=COLORS.get(peer), label=peer if i == 0 else None)
                ax.text(x, 0, "error" if isinstance(cell, NA) and cell.error else "n/a",
                        ha="center", va="bottom", fontsize=8, rotation=90)
    ax.set_xticks(range(len(paths)), [label for _, label in paths])
    ax.set_ylabel("Gbit/s (iperf3, median; whiskers p10-p90)")
    ax.set_title("Throughput per path (raw: direct to the container address, no NAT)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
