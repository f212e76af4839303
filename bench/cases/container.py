"""A container started on a network until it runs, then removed with force."""

from __future__ import annotations

import time

from cases import CaseRun, Config, ms_since
from common import Progress
from peers import Peer
from report import Row

ROWS = [
    Row("ctr.run", "container run on a network (create+start, until running)", "ms"),
    Row("ctr.rm", "container rm -f", "ms"),
]


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    case = CaseRun("container", peers, ROWS)
    nets = {}
    for peer in peers:
        with case.guard(peer):
            nets[peer.name] = peer.ensure_network("shbrun")
    progress = Progress("container run+rm", cfg.runs)
    for i in range(cfg.runs):
        for peer in case.active():
            with case.guard(peer):
                t0 = time.perf_counter()
                ctr = peer.run(nets[peer.name])
                case.add(peer, "ctr.run", ms_since(t0))
                t1 = time.perf_counter()
                peer.rm(ctr)
                case.add(peer, "ctr.rm", ms_since(t1))
        progress.tick(i + 1)
    return case
