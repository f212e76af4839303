"""GET /shoal/timings: a network create moves the request, store, IPAM and kernel totals,
the layers and "other" add up to the requests' total, and reading it is not counted."""

from __future__ import annotations

import pytest

LAYERS = ("store", "ipam", "kernel", "firewall", "runtime", "dns", "other")


def _timings(d) -> dict:
    status, data = d.api("GET", "/shoal/timings")
    assert status == 200
    return data


def test_network_create_moves_the_layers_it_went_through(make_shoald):
    d = make_shoald(["--self-heal-interval", "0"])  # nothing in the background between reads
    before = _timings(d)
    assert _timings(d)["Requests"] == before["Requests"]  # the route leaves itself out
    status, net = d.api("POST", "/networks/create", {"Name": "tm-net"})
    assert status == 201
    after = _timings(d)
    assert after["Requests"] == before["Requests"] + 1

    def moved(name: str) -> tuple[float, int]:
        a, b = after["Categories"][name], before["Categories"][name]
        return a["Seconds"] - b["Seconds"], a["Calls"] - b["Calls"]

    for name in ("api", "store", "ipam", "kernel", "firewall", "other"):
        seconds, calls = moved(name)
        assert calls >= 1 and seconds > 0, name
    assert moved("runtime") == (0, 0)
    total = moved("api")[0]
    assert sum(moved(n)[0] for n in LAYERS) == pytest.approx(total, rel=1e-6)
    assert set(after["Background"]) == set(LAYERS) - {"other"}
    assert d.api("DELETE", f"/networks/{net['Id']}")[0] == 204
