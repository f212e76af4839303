"""Attach a running container to a second network, then detach it.

shoal and Docker: POST /networks/{id}/connect and /disconnect. netavark: setup and
teardown of one more endpoint (eth1) in the existing namespace; CNI: ADD and DEL of eth1;
raw: a veth pair onto the second bridge, then its deletion.
"""

from __future__ import annotations

import time

from cases import CaseRun, Config, ms_since
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
                    t0 = time.perf_counter()
                    peer.connect(ctrs[peer.name], "shbatt2")
                    case.add(peer, "att.connect", ms_since(t0))
                    t1 = time.perf_counter()
                    peer.disconnect(ctrs[peer.name], "shbatt2")
                    case.add(peer, "att.disconnect", ms_since(t1))
            progress.tick(i + 1)
    finally:
        for peer in peers:
            if peer.name in ctrs:
                with case.guard(peer):
                    peer.rm(ctrs[peer.name])
    return case
