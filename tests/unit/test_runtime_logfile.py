"""json-file options as dockerd 20.10 checks them (messages measured), rotation naming, and
reading back across rotated (and compressed) files in order."""

import asyncio
import gzip

import pytest

from shoal.errors import InvalidParameter, ShoalError
from shoal.runtime.logfile import LogPolicy, check_log_config, log_policy, parse_size, rotate, rotated
from shoal.runtime.logs import read_log


def cfg(**opts):
    return {"Type": "json-file", "Config": {k.replace("_", "-"): v for k, v in opts.items()}}


@pytest.mark.parametrize("config, message", [
    (cfg(max_size="10x"), "failed to initialize logging driver: invalid size: '10x'"),
    (cfg(max_size="-1"), "failed to initialize logging driver: invalid size: '-1'"),
    (cfg(max_size=""), "failed to initialize logging driver: invalid size: ''"),
    (cfg(max_size="0"), "failed to initialize logging driver: max-size must be a positive number"),
    (cfg(max_size="10k", max_file="0"), "failed to initialize logging driver: max-file cannot be less than 1"),
    (cfg(max_size="10k", max_file="abc"),
     'failed to initialize logging driver: strconv.Atoi: parsing "abc": invalid syntax'),
    (cfg(max_size="10k", max_file="3", compress="yes"),
     'failed to initialize logging driver: strconv.ParseBool: parsing "yes": invalid syntax'),
    (cfg(max_size="10k", compress="true"), "failed to initialize logging driver: compress cannot be true when "
     "max-file is less than 2 or max-size is not set"),
])
def test_bad_values_fail_at_start_with_dockerds_words(config, message):
    check_log_config(config)  # create accepts them, as dockerd does
    with pytest.raises(ShoalError) as err:
        log_policy(config)
    assert err.value.status == 500 and err.value.message == message


@pytest.mark.parametrize("config, message", [
    (cfg(foo="bar"), "unknown log opt 'foo' for json-file log driver"),
    ({"Type": "nosuch"}, 'error looking up logging plugin nosuch: plugin "nosuch" not found'),
    ({"Type": "local", "Config": {"tag": "x"}}, "unknown log opt 'tag' for local log driver"),
])
def test_bad_names_fail_at_create(config, message):
    with pytest.raises(InvalidParameter, match="^" + message.replace("(", r"\(") + "$"):
        check_log_config(config)


def test_other_dockerd_drivers_are_refused_clearly():
    with pytest.raises(InvalidParameter, match='logging driver "syslog" is not supported by shoal'):
        check_log_config({"Type": "syslog"})


@pytest.mark.parametrize("text, size", [("10k", 10_000), ("1.5k", 1500), ("10kb", 10_000), ("10 k", 10_000),
                                        ("2M", 2_000_000), ("7", 7), ("1KiB", 1000), ("3g", 3 * 10**9)])
def test_sizes_as_go_units(text, size):
    assert parse_size(text) == size


def test_policies():
    assert log_policy(None) == LogPolicy()
    assert log_policy(cfg(max_file="3")) == LogPolicy(max_file=3)  # no max-size: never rotates (dockerd)
    assert log_policy(cfg(max_size="10k", max_file="3", compress="true")) == LogPolicy("json-file", 10_000, 3, True)
    assert log_policy({"Type": "local"}) == LogPolicy("local", 20_000_000, 5, True)
    assert not log_policy({"Type": "none"}).enabled


def _line(i: int) -> bytes:
    return f"2026-01-01T00:00:{i % 60:02d}.000000000Z stdout F line-{i}\n".encode()


def test_rotation_names_and_reading_across_files(tmp_path):
    log = tmp_path / "ctr.log"
    policy = LogPolicy(max_size=100, max_file=3, compress=True)
    for batch in range(4):  # no conmon here: rotate renames, the next batch makes a new file
        log.write_bytes(b"".join(_line(batch * 3 + i) for i in range(3)))
        if batch < 3:
            asyncio.run(rotate(log, tmp_path / "ctl", policy))
            if not log.exists():  # without conmon's reopen, compress by hand as rotate would
                first = tmp_path / "ctr.log.1"
                first.with_name("ctr.log.1.gz").write_bytes(gzip.compress(first.read_bytes()))
                first.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log", "ctr.log.1.gz", "ctr.log.2.gz"]
    assert [p.name for p in rotated(log)] == ["ctr.log.2.gz", "ctr.log.1.gz"]

    async def read(**kw):
        return [e.data async for e in read_log(log, **kw)]

    assert asyncio.run(read()) == [f"line-{i}\n".encode() for i in range(3, 12)]
    assert asyncio.run(read(tail=4)) == [f"line-{i}\n".encode() for i in range(8, 12)]


def _fixed(i: int) -> bytes:
    return f"2026-01-01T00:00:00.000000000Z stdout F line-{i:04d}\n".encode()


def _write(path, first, count):
    path.write_bytes(b"".join(_fixed(i) for i in range(first, first + count)))


def test_settle_cuts_a_burst_into_pieces_of_max_size_and_keeps_the_newest(tmp_path):
    from shoal.runtime.logfile import settle

    log = tmp_path / "ctr.log"
    line = len(_fixed(0))
    (tmp_path / "ctr.log.1").write_bytes(_fixed(999))  # from an earlier run: moves up or out
    _write(log, 0, 1000)  # a burst no poll saw: 1000 lines
    policy = LogPolicy(max_size=20 * line, max_file=3)
    settle(log, policy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log", "ctr.log.1", "ctr.log.2"]  # the live file stays, empty
    for name in ("ctr.log.1", "ctr.log.2"):
        assert (tmp_path / name).stat().st_size <= 20 * line

    async def read():
        return [e.data async for e in read_log(log)]

    assert asyncio.run(read()) == [f"line-{i:04d}\n".encode() for i in range(960, 1000)]


def test_settle_with_one_file_keeps_its_tail(tmp_path):
    from shoal.runtime.logfile import settle

    log = tmp_path / "ctr.log"
    line = len(_fixed(0))
    _write(log, 0, 100)
    settle(log, LogPolicy(max_size=10 * line + 5, max_file=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log"]
    assert log.read_bytes() == b"".join(_fixed(i) for i in range(90, 100))


def test_a_line_longer_than_a_piece_stays_whole(tmp_path):
    from shoal.runtime.logfile import settle

    log = tmp_path / "ctr.log"
    long = b"2026-01-01T00:00:00.000000000Z stdout F " + b"x" * 500 + b"\n"
    log.write_bytes(_fixed(1) + long + _fixed(2))
    settle(log, LogPolicy(max_size=100, max_file=4))
    pieces = [(tmp_path / f"ctr.log.{n}").read_bytes() for n in (3, 2, 1) if (tmp_path / f"ctr.log.{n}").exists()]
    assert b"".join(pieces).endswith(long + _fixed(2)) and long in pieces
