"""The operations, each a small case run over every peer, A B A B ... so drift hits all sides.

A case module has ROWS (see report.Row) and `run(peers, cfg) -> CaseRun`. A peer that
raises Unsupported for an operation gets n/a with the reason on that case's rows; any
other exception is an error (printed in the table too, and `bench/run` exits 1), and the
other peers go on.
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from common import say
from peers import Peer, Unsupported
from report import NA, Cell, Row, Samples


@dataclass(frozen=True)
class Config:
    runs: int          # samples per timed operation and peer
    count: int         # containers started one after another
    seconds: int       # iperf3 time per round
    rounds: int        # iperf3/ping rounds per path and peer (interleaved)
    pings: int         # pings (and TCP round trips) per round
    overlay_docker: bool = True  # the overlay case builds Docker's classic overlay too


class CaseRun:
    """The cells of one case; a peer leaves a group of rows at its first n/a or error there."""

    def __init__(self, name: str, peers: list[Peer], rows: list[Row]) -> None:
        self.name = name
        self.peers = list(peers)
        self.rows = rows
        self.cells: dict[str, dict[str, Cell]] = {p.name: {} for p in peers}
        self.extra: dict[str, dict] = {p.name: {} for p in peers}

    def active(self, keys: list[str] | None = None) -> list[Peer]:
        keys = keys if keys is not None else [r.key for r in self.rows]
        return [p for p in self.peers if not any(isinstance(self.cells[p.name].get(k), NA) for k in keys)]

    def add(self, peer: Peer, key: str, value: float) -> None:
        cell = self.cells[peer.name].setdefault(key, Samples())
        if isinstance(cell, Samples):
            cell.values.append(value)

    @contextmanager
    def sample(self, peer: Peer, key: str) -> Iterator[None]:
        """Time the block as one sample of `key`; a peer that reports its own timings (shoal)
        is read before and after (outside the timed part) and the difference kept, per row,
        for the report's breakdown. A block that raises adds nothing."""
        before = peer.timings()
        t0 = time.perf_counter()
        yield
        ms = ms_since(t0)
        self.add(peer, key, ms)
        if before is not None:
            after = peer.timings()
            if after is not None:
                rows = self.extra[peer.name].setdefault("breakdown", {})
                rows[key] = add_delta(rows.get(key), before, after, ms)

    def put(self, peer: Peer, key: str, cell: Cell) -> None:
        self.cells[peer.name][key] = cell

    def drop(self, peer: Peer, na: NA, keys: list[str] | None = None) -> None:
        for k in keys if keys is not None else [r.key for r in self.rows]:
            self.cells[peer.name][k] = na

    @contextmanager
    def guard(self, peer: Peer, keys: list[str] | None = None) -> Iterator[None]:
        """n/a (Unsupported) or error (anything else) for `keys` of this peer; never stops the case."""
        try:
            yield
        except Unsupported as e:
            self.drop(peer, NA(str(e)), keys)
        except Exception as e:  # noqa: BLE001 - recorded in the report, the run exits 1
            say(f"  [{self.name}] {peer.name}: error: {e}\n{traceback.format_exc(limit=4)}")
            first = (str(e).splitlines() or [""])[0][:200]
            self.drop(peer, NA(f"{peer.name}: {type(e).__name__}: {first}", error=True), keys)


def add_delta(acc: dict | None, before: dict, after: dict, client_ms: float) -> dict:
    """Sum one operation's difference of two /shoal/timings snapshots into `acc` (ms)."""
    acc = acc or {"ops": 0, "requests": 0, "client_ms": 0.0, "ms": {}, "calls": {}, "background_ms": 0.0}
    acc["ops"] += 1
    acc["requests"] += after["Requests"] - before["Requests"]
    acc["client_ms"] += client_ms
    for name, cat in after["Categories"].items():
        old = before["Categories"].get(name, {"Seconds": 0.0, "Calls": 0})
        acc["ms"][name] = acc["ms"].get(name, 0.0) + (cat["Seconds"] - old["Seconds"]) * 1e3
        acc["calls"][name] = acc["calls"].get(name, 0) + cat["Calls"] - old["Calls"]
    for name, cat in after.get("Background", {}).items():
        old = before.get("Background", {}).get(name, {"Seconds": 0.0})
        acc["background_ms"] += (cat["Seconds"] - old["Seconds"]) * 1e3
    return acc


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3
