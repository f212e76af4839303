"""Network create, then rm: the API round trip and everything behind it, per peer."""

from __future__ import annotations

import time

from cases import CaseRun, Config, ms_since
from common import Progress
from peers import Peer
from report import Row

ROWS = [
    Row("net.create", "network create", "ms"),
    Row("net.rm", "network rm", "ms"),
]


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    case = CaseRun("network", peers, ROWS)
    progress = Progress("network create+rm", cfg.runs)
    for i in range(cfg.runs):
        for peer in case.active():
            with case.guard(peer):
                t0 = time.perf_counter()
                ref = peer.network_create(f"shbn{i}")
                case.add(peer, "net.create", ms_since(t0))
                t1 = time.perf_counter()
                peer.network_rm(ref)
                case.add(peer, "net.rm", ms_since(t1))
        progress.tick(i + 1)
    return case
