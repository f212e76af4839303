"""Network create, then rm: the API round trip and everything behind it, per peer."""

from __future__ import annotations

from cases import CaseRun, Config
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
                with case.sample(peer, "net.create"):
                    ref = peer.network_create(f"shbn{i}")
                with case.sample(peer, "net.rm"):
                    peer.network_rm(ref)
        progress.tick(i + 1)
    return case
