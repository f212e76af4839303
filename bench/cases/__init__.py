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


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3
