"""`docker run --log-opt max-size=10k --log-opt max-file=3`: the log rotates as dockerd's
json-file driver does (at most 3 files, each about 10k), `docker logs` reads across them in
order, and bad options fail as in dockerd (names at create, values at start)."""

import re

from .conftest import needs_docker

pytestmark = needs_docker

LINES = 700
SCRIPT = f"for i in $(seq 1 {LINES}); do echo line-$i-abcdefghijklmnopqrstuvwxyz0123456789; usleep 4000; done"


def test_rotated_log_is_bounded_and_read_in_order(box):
    d = box
    d.docker("run", "-d", "--name", "chatty", "--log-opt", "max-size=10k", "--log-opt", "max-file=3",
             "busybox", "sh", "-c", SCRIPT)
    followed = [int(m.group(1)) for m in re.finditer(r"line-(\d+)-", d.docker("logs", "-f", "chatty").stdout)]
    assert followed == list(range(followed[0], LINES + 1)) and followed[0] < 100  # through every rotation
    cid = d.docker("inspect", "-f", "{{.Id}}", "chatty").stdout.strip()
    cdir = d.root / "data" / "runtime" / "containers" / cid
    files = sorted(p.name for p in cdir.iterdir() if p.name.startswith("ctr.log"))
    assert files == ["ctr.log", "ctr.log.1", "ctr.log.2"], files
    for name in ("ctr.log.1", "ctr.log.2"):
        size = (cdir / name).stat().st_size
        assert 10_000 <= size < 25_000, (name, size)  # rotated at the first look past 10k
    numbers = [int(m.group(1)) for m in re.finditer(r"line-(\d+)-", d.docker("logs", "chatty").stdout)]
    assert numbers[-1] == LINES and numbers == list(range(numbers[0], LINES + 1))  # the tail, in order
    assert len(numbers) > 200  # two full files and the live one
    assert d.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", "chatty").stdout.strip() == \
        '{"Type":"json-file","Config":{"max-file":"3","max-size":"10k"}}'
    tail = d.docker("logs", "--tail", "5", "chatty").stdout.split()
    assert [int(t.split("-")[1]) for t in tail] == list(range(LINES - 4, LINES + 1))


def test_log_options_fail_as_in_dockerd_and_none_cannot_be_read(box):
    d = box
    st, body = d.api("POST", "/v1.41/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"foo": "x"}}}})
    assert (st, body["message"]) == (400, "unknown log opt 'foo' for json-file log driver")
    st, body = d.api("POST", "/v1.41/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "syslog", "Config": {}}}})
    assert st == 400 and "not supported" in body["message"]
    p = d.docker("run", "--log-opt", "max-size=10x", "busybox", "true", check=False)
    assert p.returncode != 0 and "failed to initialize logging driver: invalid size: '10x'" in p.stderr
    d.docker("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi")
    p = d.docker("logs", "quiet", check=False)
    assert p.returncode != 0 and "configured logging driver does not support reading" in p.stderr


def test_compressed_rotation_reads_back_in_order(box):
    d = box
    d.docker("run", "--name", "zipped", "--log-opt", "max-size=10k", "--log-opt", "max-file=3",
             "--log-opt", "compress=true", "busybox", "sh", "-c", SCRIPT)
    cid = d.docker("inspect", "-f", "{{.Id}}", "zipped").stdout.strip()
    cdir = d.root / "data" / "runtime" / "containers" / cid
    files = sorted(p.name for p in cdir.iterdir() if p.name.startswith("ctr.log"))
    assert files == ["ctr.log", "ctr.log.1.gz", "ctr.log.2.gz"], files  # dockerd's names (measured)
    numbers = [int(m.group(1)) for m in re.finditer(r"line-(\d+)-", d.docker("logs", "zipped").stdout)]
    assert numbers[-1] == LINES and numbers == list(range(numbers[0], LINES + 1)) and len(numbers) > 200


def test_a_burst_between_two_looks_still_ends_in_bounded_files(box):
    d = box
    burst = "for i in $(seq 1 20000); do echo line-$i-abcdefghijklmnopqrstuvwxyz0123456789; done"
    d.docker("run", "--name", "burst", "--log-opt", "max-size=10k", "--log-opt", "max-file=3",
             "busybox", "sh", "-c", burst)
    cid = d.docker("inspect", "-f", "{{.Id}}", "burst").stdout.strip()
    cdir = d.root / "data" / "runtime" / "containers" / cid
    sizes = {p.name: p.stat().st_size for p in cdir.iterdir() if p.name.startswith("ctr.log")}
    assert 1 <= len(sizes) <= 3 and all(size <= 20_000 for size in sizes.values()), sizes  # pieces: 10k
    numbers = [int(m.group(1)) for m in re.finditer(r"line-(\d+)-", d.docker("logs", "burst").stdout)]
    assert numbers[-1] == 20000 and numbers == list(range(numbers[0], 20001)) and len(numbers) > 150
