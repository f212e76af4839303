"""A container started on a network until it runs, then removed with force; then the same
with crun as its OCI runtime (`HostConfig.Runtime`, `docker run --runtime crun`) where the
peer has crun registered (shoal: once installed; Docker: the suite's --add-runtime)."""

from __future__ import annotations

from cases import CaseRun, Config
from common import Progress
from peers import Peer
from report import Row

ROWS = [
    Row("ctr.run", "container run on a network (create+start, until running)", "ms"),
    Row("ctr.rm", "container rm -f", "ms"),
    Row("ctr.run.crun", "container run, --runtime crun (create+start, until running)", "ms"),
    Row("ctr.rm.crun", "container rm -f, --runtime crun", "ms"),
]
RUNC_KEYS, CRUN_KEYS = ["ctr.run", "ctr.rm"], ["ctr.run.crun", "ctr.rm.crun"]


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    case = CaseRun("container", peers, ROWS)
    nets = {}
    for peer in peers:
        with case.guard(peer):
            nets[peer.name] = peer.ensure_network("shbrun")
        with case.guard(peer, CRUN_KEYS):
            peer.check_runtime("crun")
    progress = Progress("container run+rm", cfg.runs)
    for i in range(cfg.runs):
        for runtime, keys in (("", RUNC_KEYS), ("crun", CRUN_KEYS)):
            for peer in case.active(keys):
                with case.guard(peer, keys):
                    with case.sample(peer, keys[0]):
                        ctr = peer.run(nets[peer.name], runtime=runtime)
                    with case.sample(peer, keys[1]):
                        peer.rm(ctr)
        progress.tick(i + 1)
    return case
