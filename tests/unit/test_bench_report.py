"""bench/report.py and bench/plots.py on fake numbers: the table, the tails, the ratios, n/a notes."""

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench():
    """Import bench modules by their own names (as bench/suite.py does), then forget them."""
    sys.path.insert(0, str(BENCH))
    before = set(sys.modules)
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCH))
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(BENCH)):
                del sys.modules[name]


@pytest.fixture
def report(bench):
    return bench("report")


def test_percentile_is_nearest_rank(report):
    values = list(range(1, 11))  # 1..10
    assert report.percentile(values, 0.9) == 9
    assert report.percentile(values, 0.1) == 2
    assert report.percentile([5.0], 0.9) == 5.0
    assert report.percentile([3, 1, 2], 0.5) == 2


def test_summary_tail_is_p90_for_times_and_p10_for_rates(report):
    cell = report.Samples([float(v) for v in range(1, 11)])
    assert report.summary(cell) == (5.5, 9)
    assert report.summary(cell, higher_better=True) == (5.5, 2)
    assert report.summary(report.Value(42.0)) == (42.0, 42.0)
    assert report.summary(report.NA("no")) is None
    assert report.summary(report.Samples([])) is None
    assert report.summary(None) is None


def test_ratio_is_median_over_median(report):
    shoal = report.Samples([10.0, 20.0, 30.0])
    docker = report.Samples([40.0, 40.0, 80.0])
    assert report.ratio(shoal, docker) == pytest.approx(0.5)
    assert report.ratio(report.Value(3.0), report.Value(2.0)) == pytest.approx(1.5)
    assert report.ratio(shoal, report.NA("n/a")) is None
    assert report.ratio(report.NA("n/a"), docker) is None
    assert report.ratio(shoal, report.Value(0.0)) is None


@pytest.mark.parametrize("x, text", [(1234.5, "1234"), (61.56, "61.6"), (1.434, "1.43"), (0.01234, "0.0123"),
                                     (0, "0")])
def test_fmt_three_significant_digits(report, x, text):
    assert report.fmt(x) == text


def test_markdown_table_cells_ratios_and_notes(report):
    rows = [report.Row("a", "op a", "ms"), report.Row("tp", "throughput", "Gbit/s", higher_better=True),
            report.Row("b", "op b", "ms")]
    results = {
        "shoal": {"a": report.Samples([10.0, 12.0, 20.0]), "tp": report.Samples([8.0, 9.0, 10.0]),
                  "b": report.NA("shoal: not implemented")},
        "docker": {"a": report.Samples([20.0, 24.0, 40.0]), "tp": report.Samples([4.0, 4.5, 5.0]),
                   "b": report.Value(7.0)},
        "cni": {"a": report.NA("cni: no network object"), "tp": report.NA("cni: boom", error=True)},
    }
    text = report.markdown_table(rows, results, ["shoal", "docker", "cni"])
    lines = text.splitlines()
    assert lines[0] == "| operation | unit | shoal | docker | cni | shoal/docker | shoal/cni |"
    assert lines[2] == "| op a | ms | 12.0 (20.0) | 24.0 (40.0) | n/a [1] | 0.50x | n/a |"
    assert lines[3] == "| throughput | Gbit/s | 9.00 (8.00) | 4.50 (4.00) | error [2] | 2.00x | n/a |"
    assert lines[4] == "| op b | ms | n/a [3] | 7.00 | - | n/a | n/a |"
    assert "[1] cni: no network object" in text
    assert "[2] cni: boom" in text
    assert "[3] shoal: not implemented" in text


def test_same_reason_gets_one_note(report):
    rows = [report.Row("a", "a", "ms"), report.Row("b", "b", "ms")]
    na = report.NA("netavark: no daemon")
    text = report.markdown_table(rows, {"shoal": {}, "netavark": {"a": na, "b": na}}, ["shoal", "netavark"])
    assert text.count("netavark: no daemon") == 1
    assert text.count("n/a [1]") == 2


def test_no_ratio_columns_without_shoal(report):
    rows = [report.Row("a", "a", "ms")]
    text = report.markdown_table(rows, {"raw": {"a": report.Samples([1.0])}}, ["raw"])
    assert text.splitlines()[0] == "| operation | unit | raw |"


def test_json_round_trip_and_errors(report):
    results = {"shoal": {"a": report.Samples([1.0, 2.0]), "b": report.Value(3.0)},
               "docker": {"a": report.NA("why"), "b": report.NA("broke", error=True)}}
    assert report.from_json(report.to_json(results)) == results
    assert report.errors(results) == ["docker b: broke"]


def test_machine_markdown(report):
    text = report.machine_markdown({"kernel": "6.1"}, {"docker": "dockerd 20.10"}, {"mode": "quick"})
    assert "| kernel | 6.1 |" in text and "| peer docker | dockerd 20.10 |" in text and "| run mode | quick |" in text


def test_plots_write_pngs(bench, tmp_path):
    pytest.importorskip("matplotlib")
    plots = bench("plots")
    report = bench("report")
    plots.per_container({"shoal": [30.0 + i for i in range(40)], "docker": [90.0] * 40, "raw": []},
                        tmp_path / "per.png")
    results = {"shoal": {"tp.c2c": report.Samples([9.0, 10.0]), "tp.port": report.NA("n/a")},
               "docker": {"tp.c2c": report.Samples([8.0]), "tp.port": report.Samples([6.0, 7.0])}}
    plots.throughput(results, ["shoal", "docker"], tmp_path / "tp.png")
    for name in ("per.png", "tp.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rolling_median(bench):
    pytest.importorskip("matplotlib")
    plots = bench("plots")
    assert plots.rolling_median([1.0, 100.0, 2.0, 3.0, 4.0], 3) == [50.5, 2.0, 3.0, 3.0, 3.5]


@pytest.mark.parametrize("count, buckets", [(100, [(0, 25), (25, 50), (50, 75), (75, 100)]),
                                            (10, [(0, 2), (2, 5), (5, 8), (8, 10)]),
                                            (2, [(0, 1), (1, 2)])])
def test_many_quarters_cover_every_container_once(bench, count, buckets):
    many = bench("cases.many")
    assert many.quarters(count) == buckets
    assert [r.key for r in many.rows(count)][:len(buckets) + 1] == ["many.per"] + [f"many.q{i}" for i in
                                                                                   range(len(buckets))]


def test_paired_ratios_use_rounds_both_peers_measured(report):
    rounds = {"shoal": {"tp.c2c": {0: 9.0, 1: 20.0, 2: 5.0}}, "raw": {"tp.c2c": {0: 10.0, 1: 20.0, 3: 1.0}}}
    assert report.paired_ratios(rounds, "shoal", "raw", "tp.c2c") == [0.9, 1.0]
    assert report.paired_ratios(rounds, "shoal", "raw", "tp.port") == []


def test_median_interval_brackets_the_median_and_is_reproducible(report):
    values = [0.8, 0.9, 0.95, 1.0, 1.02, 1.05, 1.1, 1.3]
    med, lo, hi = report.median_interval(values)
    assert lo <= med <= hi and min(values) <= lo and hi <= max(values)
    assert report.median_interval(values) == (med, lo, hi)
    assert report.median_interval([1.0] * 5) == (1.0, 1.0, 1.0)


def test_paired_markdown_rows(report):
    rows = [report.Row("tp.c2c", "c2c", "Gbit/s", True), report.Row("tp.ext", "ext", "Gbit/s", True)]
    rounds = {"shoal": {"tp.c2c": {0: 9.0, 1: 10.0, 2: 11.0}}, "raw": {"tp.c2c": {0: 10.0, 1: 10.0, 2: 10.0}}}
    text = report.paired_markdown(rows, rounds, ["shoal", "raw"])
    assert "| c2c | 1.00x (" in text and ", 3) |" in text
    assert "ext" not in text
    assert report.paired_markdown(rows, {"raw": rounds["raw"]}, ["shoal", "raw"]) == ""
    one = {"shoal": {"tp.c2c": {0: 9.0}}, "raw": {"tp.c2c": {0: 10.0}}}
    assert report.paired_markdown(rows, one, ["shoal", "raw"]) == ""


def _snap(requests: int, api: float, store: float, kernel: float, other: float, bg: float = 0.0) -> dict:
    cats = {"api": api, "store": store, "ipam": 0.0, "kernel": kernel, "firewall": 0.0, "runtime": 0.0,
            "dns": 0.0, "other": other}
    return {"Requests": requests,
            "Categories": {k: {"Seconds": v, "Calls": requests if k != "ipam" else 0} for k, v in cats.items()},
            "Background": {"store": {"Seconds": bg, "Calls": 0}}}


def test_breakdown_sums_deltas_and_prints_shares(bench, report):
    cases = bench("cases")
    acc = None
    for i in range(2):  # two operations of 10 ms each in the daemon, 12 ms at the client
        before = _snap(i, i * 0.010, i * 0.002, i * 0.006, i * 0.002)
        after = _snap(i + 1, (i + 1) * 0.010, (i + 1) * 0.002, (i + 1) * 0.006, (i + 1) * 0.002, bg=0.001)
        acc = cases.add_delta(acc, before, after, 12.0)
    assert acc["ops"] == 2 and acc["requests"] == 2
    assert acc["ms"]["kernel"] == pytest.approx(12.0) and acc["calls"]["kernel"] == 2
    assert acc["background_ms"] == pytest.approx(2.0)
    table = report.breakdown_markdown([report.Row("net.create", "network create", "ms")], {"net.create": acc})
    line = table.splitlines()[2]
    assert line.startswith("| network create | 2 | 1.00 | 10.0 | 2.00 (20%) | 0 (0%) | **6.00 (60%)** |")
    assert line.endswith("| 2.00 (20%) | 2.00 | 1.00 |")  # other, outside (12 - 10), background
    assert report.breakdown_markdown([report.Row("x", "x", "ms")], {}) == ""
