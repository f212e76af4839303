"""A container started on a network until it runs, then removed with force."""

from __future__ import annotations

from cases import CaseRun, Config
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
                with case.sample(peer, "ctr.run"):
                    ctr = peer.run(nets[peer.name])
                with case.sample(peer, "ctr.rm"):
                    peer.rm(ctr)
        progress.tick(i + 1)
    return case
