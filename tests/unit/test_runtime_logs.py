"""conmon k8s-file log parsing and the follow reader."""

import asyncio

from shoal.runtime.logs import LogEntry, parse_line, parse_time_ns, read_log
from shoal.runtime.streams import Stream


def test_parse_time():
    assert parse_time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time_ns("2026-11-28T04:26:19.966436258+00:00") == parse_time_ns("2026-11-28T05:26:19.966436258+01:00")
    assert parse_time_ns("1970-01-01T00:00:00+00:00") == 0


def test_parse_line_full_and_partial():
    full = parse_line(b"1970-01-01T00:00:02.000000001+00:00 stderr F oops")
    assert full == LogEntry(Stream.STDERR, b"oops\n", 2_000_000_001)
    part = parse_line(b"1970-01-01T00:00:02Z stdout P / # ")
    assert part.data == b"/ # " and part.stream == Stream.STDOUT
    assert parse_line(b"1970-01-01T00:00:02Z stdout F ").data == b"\n"
    assert parse_line(b"garbage") is None


def test_docker_timestamp_format():
    assert LogEntry(Stream.STDOUT, b"", 1_700_000_000_000_000_006).timestamp == "2023-11-14T22:13:20.000000006Z"


def write_lines(path, lines):
    with open(path, "ab") as f:
        f.write(b"".join(line + b"\n" for line in lines))


def test_read_tail_since(tmp_path):
    log = tmp_path / "ctr.log"
    write_lines(log, [b"1970-01-01T00:00:0%dZ stdout F line%d" % (i, i) for i in range(1, 6)])

    async def collect(**kw):
        return [e.data async for e in read_log(log, **kw)]

    assert asyncio.run(collect()) == [b"line%d\n" % i for i in range(1, 6)]
    assert asyncio.run(collect(tail=2)) == [b"line4\n", b"line5\n"]
    assert asyncio.run(collect(tail=0)) == []
    assert asyncio.run(collect(since=3, until=5)) == [b"line3\n", b"line4\n"]


def test_follow_sees_new_lines_and_stops_when_the_container_stops(tmp_path):
    log = tmp_path / "ctr.log"
    write_lines(log, [b"1970-01-01T00:00:01Z stdout P a"])
    running = True

    async def main():
        nonlocal running
        got = []

        async def writer():
            nonlocal running
            await asyncio.sleep(0.15)
            with open(log, "ab") as f:
                f.write(b"1970-01-01T00:00:02Z stdout F b\n1970-01-01T00:00:03Z std")  # half a line
            await asyncio.sleep(0.15)
            write_lines(log, [b"err F c"])
            running = False

        task = asyncio.create_task(writer())
        async for entry in read_log(log, follow=True, is_running=lambda: running):
            got.append((entry.stream, entry.data))
        await task
        return got

    assert asyncio.run(main()) == [(Stream.STDOUT, b"a"), (Stream.STDOUT, b"b\n"), (Stream.STDERR, b"c\n")]
