"""Attach a running container to a second network, then detach it.

shoal and Docker: POST /networks/{id}/connect and /disconnect. netavark: setup and
teardown of one more endpoint (eth1) in the existing namespace; CNI: ADD and DEL of eth1;
raw: a veth pair onto the second bridge, then its deletion.
"""

from __future__ import annotations

from cases import CaseRun, Config
from common import Progress
from peers import Ctr, Peer
from report import Row

ROWS = [
    Row("att.connect", "attach a running container to a 2nd network", "ms"),
    Row("att.disconnect", "detach it", "ms"),
]


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    case = CaseRun("attach", peers, ROWS)
    ctrs: dict[str, Ctr] = {}
    for peer in peers:
        with case.guard(peer):
            peer.ensure_network("shbatt2")
            ctrs[peer.name] = peer.inspect(peer.run(peer.ensure_network("shbatt1")))
    try:
        progress = Progress("attach+detach", cfg.runs)
        for i in range(cfg.runs):
            for peer in case.active():
                with case.guard(peer):
                    with case.sample(peer, "att.connect"):
                        peer.connect(ctrs[peer.name], "shbatt2")
                    with case.sample(peer, "att.disconnect"):
                        peer.disconnect(ctrs[peer.name], "shbatt2")
            progress.tick(i + 1)
    finally:
        for peer in peers:
            if peer.name in ctrs:
                with case.guard(peer):
                    peer.rm(ctrs[peer.name])
    return case
