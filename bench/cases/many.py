"""N containers started one after another on one network, all left running.

Interleaved per container (shoal #1, docker #1, ... shoal #2, ...), so every peer holds i
containers when its (i+1)th starts. Reported: time per container overall and by quarter
of the count (the plot has every point), the daemon's RSS before and with N running, and
the RSS and PSS of the per-container monitor process (shoal: conmon; Docker:
containerd-shim-runc-v2).
"""

from __future__ import annotations

import time

from cases import CaseRun, Config, ms_since
from common import Progress, pss_kib, rss_kib, say
from peers import Ctr, Peer, Unsupported
from report import Row, Samples, Value


def quarters(count: int) -> list[tuple[int, int]]:
    """[start, end) index ranges of four (near) equal buckets; fewer when count < 4."""
    n = min(4, count)
    edges = [round(i * count / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def rows(count: int) -> list[Row]:
    out = [Row("many.per", f"{count} containers one after another: time per container", "ms")]
    out += [Row(f"many.q{i}", f"... containers {a + 1}-{b}", "ms") for i, (a, b) in enumerate(quarters(count))]
    out += [
        Row("many.rss0", "daemon RSS, no containers", "MiB"),
        Row("many.rss1", f"daemon RSS with {count} running", "MiB"),
        Row("many.grow", "daemon RSS growth per container", "KiB"),
        Row("many.mon", "monitor process RSS per container", "MiB"),
        Row("many.pss", "monitor process PSS per container (shared pages split)", "MiB"),
    ]
    return out


def run(peers: list[Peer], cfg: Config) -> CaseRun:
    case = CaseRun("many", peers, rows(cfg.count))
    start_keys = ["many.per"] + [f"many.q{i}" for i in range(len(quarters(cfg.count)))]
    nets: dict[str, str] = {}
    ctrs: dict[str, list[Ctr]] = {p.name: [] for p in peers}
    rss0: dict[str, int] = {}
    for peer in peers:
        with case.guard(peer):
            nets[peer.name] = peer.ensure_network("shbmany")
        with case.guard(peer, keys=["many.rss0", "many.rss1", "many.grow"]):
            rss0[peer.name] = peer.daemon_rss_kib()
            case.put(peer, "many.rss0", Value(rss0[peer.name] / 1024))
    try:
        _start_all(case, cfg.count, nets, ctrs, start_keys)
        for peer in case.peers:
            _memory(case, peer, ctrs[peer.name], rss0.get(peer.name), cfg.count)
    finally:
        _remove_all(case, ctrs)
    return case


def _start_all(case: CaseRun, count: int, nets: dict, ctrs: dict, keys: list[str]) -> None:
    progress = Progress(f"{count} containers", count)
    for i in range(count):
        for peer in case.active(keys):
            with case.guard(peer, keys=keys):
                t0 = time.perf_counter()
                ctrs[peer.name].append(peer.run(nets[peer.name]))
                case.add(peer, "many.per", ms_since(t0))
        progress.tick(i + 1, "started on each peer")
    for peer in case.active(keys):
        series = case.cells[peer.name]["many.per"].values
        case.extra[peer.name]["series"] = list(series)
        for q, (a, b) in enumerate(quarters(count)):
            case.put(peer, f"many.q{q}", Samples(series[a:b]))


def _memory(case: CaseRun, peer: Peer, ctrs: list[Ctr], rss0: int | None, count: int) -> None:
    if rss0 is not None:
        with case.guard(peer, keys=["many.rss1", "many.grow"]):
            rss1 = peer.daemon_rss_kib()
            case.put(peer, "many.rss1", Value(rss1 / 1024))
            if len(ctrs) == count:
                case.put(peer, "many.grow", Value((rss1 - rss0) / max(count, 1)))
    with case.guard(peer, keys=["many.mon", "many.pss"]):
        if not ctrs:
            raise Unsupported(f"{peer.name}: no container was started")
        pids = [peer.monitor_pid(peer.inspect(ctr)) for ctr in ctrs]
        case.put(peer, "many.mon", Samples([rss_kib(p) / 1024 for p in pids]))
        case.put(peer, "many.pss", Samples([pss_kib(p) / 1024 for p in pids]))


def _remove_all(case: CaseRun, ctrs: dict[str, list[Ctr]]) -> None:
    total = sum(len(v) for v in ctrs.values())
    progress = Progress("removing them", total)
    done = 0
    for peer in case.peers:
        for ctr in ctrs[peer.name]:
            try:
                peer.rm(ctr)
            except Exception as e:  # noqa: BLE001 - the peer's close() removes what is left
                say(f"  [many] {peer.name}: rm {ctr.id[:12]}: {e}")
            done += 1
            progress.tick(done)
