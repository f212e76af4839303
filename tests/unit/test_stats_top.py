"""runtime.cgroups on a fake /proc and cgroup tree (v1 hybrid as on these machines, and v2),
and `docker top`'s ps parsing (api.stats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.api.stats import empty_stats, parse_ps
from shoal.errors import ShoalError
from shoal.runtime import cgroups

CID = "c" * 64


def _mountinfo(base: Path) -> str:
    lines = [f"30 25 0:26 / {base}/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755"]
    for n, ctl in enumerate(("cpu", "cpuacct", "memory", "pids", "blkio", "freezer")):
        lines.append(f"{40 + n} 30 0:{40 + n} / {base}/cgroup/{ctl} rw,relatime shared:{n} - cgroup cgroup rw,{ctl}")
    lines.append(f"50 30 0:50 / {base}/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd")
    lines.append(f"51 30 0:51 / {base}/cgroup/unified rw - cgroup2 cgroup2 rw")
    return "\n".join(lines) + "\n"


@pytest.fixture
def v1(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "42").mkdir()
    (proc / "self" / "mountinfo").write_text(_mountinfo(tmp_path))
    (proc / "42" / "cgroup").write_text(
        "".join(f"{i}:{c}:/shoal/{CID}\n" for i, c in enumerate(("cpu", "cpuacct", "memory", "pids", "blkio"), start=1))
        + "9:name=systemd:/\n0::/\n")
    cg = tmp_path / "cgroup"
    for ctl in ("cpu", "cpuacct", "memory", "pids", "blkio"):
        (cg / ctl / "shoal" / CID).mkdir(parents=True)
    d = lambda ctl: cg / ctl / "shoal" / CID
    (d("cpuacct") / "cpuacct.usage").write_text("59697929\n")
    (d("cpuacct") / "cpuacct.usage_percpu").write_text("43521071 16176858 \n")
    (d("cpuacct") / "cpuacct.stat").write_text("user 4\nsystem 1\n")
    (d("cpu") / "cpu.stat").write_text("nr_periods 3\nnr_throttled 1\nthrottled_time 99\n")
    (d("memory") / "memory.usage_in_bytes").write_text("356352\n")
    (d("memory") / "memory.max_usage_in_bytes").write_text("3825664\n")
    (d("memory") / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (d("memory") / "memory.stat").write_text("cache 4096\nrss 57344\ntotal_inactive_file 0\n")
    (d("pids") / "pids.current").write_text("1\n")
    (d("pids") / "pids.max").write_text("max\n")
    (d("blkio") / "blkio.throttle.io_service_bytes_recursive").write_text("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n")
    return proc, d


def test_v1_paths_come_from_the_process_and_the_mount_table(v1):
    proc, d = v1
    dirs = cgroups.cgroup_dirs(42, proc)
    assert dirs["memory"] == d("memory") and dirs["cpuacct"] == d("cpuacct")
    assert dirs["unified"].name == "unified"  # "0::/" on the v2 mount, with no controllers
    assert cgroups.cgroup_dirs(43, proc) == {}  # gone


def test_v1_counters_in_dockerds_shape(v1):
    proc, _ = v1
    dirs = cgroups.cgroup_dirs(42, proc)
    cpu = cgroups.cpu_stats(dirs)
    assert cpu["cpu_usage"]["total_usage"] == 59697929
    assert cpu["cpu_usage"]["percpu_usage"] == [43521071, 16176858]
    assert cpu["cpu_usage"]["usage_in_usermode"] == 4 * cgroups.NS // cgroups.USER_HZ
    assert cpu["throttling_data"] == {"periods": 3, "throttled_periods": 1, "throttled_time": 99}
    mem = cgroups.memory_stats(dirs, host_total=25276510208)
    assert mem == {"usage": 356352, "max_usage": 3825664, "limit": 25276510208,
                   "stats": {"cache": 4096, "rss": 57344, "total_inactive_file": 0}}
    assert cgroups.pids_stats(dirs) == {"current": 1}  # "max": no limit key, as dockerd
    blk = cgroups.blkio_stats(dirs)
    assert blk["io_service_bytes_recursive"] == [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                                                 {"major": 8, "minor": 0, "op": "Write", "value": 0}]
    assert blk["io_serviced_recursive"] == [] and set(blk) == set(cgroups.BLKIO_KEYS)


def test_v2_counters(tmp_path):
    unified = tmp_path / "u"
    unified.mkdir()
    (unified / "cpu.stat").write_text("usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 0\n")
    (unified / "memory.current").write_text("8192\n")
    (unified / "memory.max").write_text("max\n")
    (unified / "memory.stat").write_text("anon 4096\nfile 0\n")
    (unified / "pids.current").write_text("2\n")
    (unified / "pids.max").write_text("100\n")
    dirs = {"unified": unified}
    assert cgroups.cpu_stats(dirs)["cpu_usage"] == {"total_usage": 10000, "usage_in_kernelmode": 4000,
                                                    "usage_in_usermode": 6000}
    assert cgroups.memory_stats(dirs, 1 << 30) == {"usage": 8192, "stats": {"anon": 4096, "file": 0},
                                                   "limit": 1 << 30}
    assert cgroups.pids_stats(dirs) == {"current": 2, "limit": 100}


def test_host_counters():
    stat = "cpu  100 0 50 1000 10 0 5 7 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert cgroups.system_cpu_usage(stat) == 1165 * cgroups.NS // cgroups.USER_HZ  # steal is left out
    assert cgroups.host_memory("MemTotal:       24684092 kB\nMemFree: 1 kB\n") == 24684092 * 1024


def test_a_stopped_container_has_dockerds_empty_sample():
    from shoal.model import Container

    rec = Container(id=CID, name="c2", created="", image="busybox", image_id="sha256:x", args=("sleep",))
    out = empty_stats(rec)
    assert out["read"] == out["preread"] == "0001-01-01T00:00:00Z"
    assert out["blkio_stats"]["io_service_bytes_recursive"] is None and out["memory_stats"] == {}
    assert out["name"] == "/c2" and "networks" not in out


PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 20:00 ?        00:00:03 /sbin/init splash
root       10572   10552  0 21:01 ?        00:00:00 sleep 1000
root       10600   10552  0 21:01 ?        00:00:00 sh -c echo hi there
"""


def test_top_keeps_the_containers_rows_with_their_command_lines():
    out = parse_ps(PS, {10572, 10600})
    assert out["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert out["Processes"] == [["root", "10572", "10552", "0", "21:01", "?", "00:00:00", "sleep 1000"],
                                ["root", "10600", "10552", "0", "21:01", "?", "00:00:00", "sh -c echo hi there"]]


def test_top_without_a_pid_column_is_dockerds_error():
    with pytest.raises(ShoalError, match="^Couldn't find PID field in ps output$"):
        parse_ps("COMMAND\nsleep\n", {1})
