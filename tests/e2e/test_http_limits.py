"""shoald's HTTP server under bad input, over a raw unix socket: malformed heads, oversized
heads and bodies, slow clients, and a large import that must not land in memory.

dockerd's server is Go's net/http: a head it cannot parse is a 400, a head over 1 MiB
(plus the 4 KiB its reader allows on top) a 431, and both close the connection. shoal
answers the same codes, with its usual {"message"} body.
"""

from __future__ import annotations

import json
import socket
import tarfile
import threading
import time

from shoal.api.http import MAX_HEAD, MAX_JSON_BODY


def connect(d) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.sock)
    return s


def read_all(s: socket.socket) -> bytes:
    """Until the server closes: the test that it does close is that this returns."""
    out = b""
    while data := s.recv(65536):
        out += data
    return out


def send_quietly(s: socket.socket, data: bytes) -> None:
    """The server may answer and close before taking everything; that is its right."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def message(body: bytes) -> str:
    msg = json.loads(body)["message"]
    assert isinstance(msg, str) and msg
    return msg


def alive(d) -> None:
    assert d.api("GET", "/_ping") == (200, "OK")
    assert d.proc.poll() is None


def test_a_garbage_request_line_is_a_400_and_the_connection_closes(shoald):
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /_ping HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
                    b"GET /_ping HTTP/2.0\r\nHost: x\r\n\r\n"):
        s = connect(shoald)
        send_quietly(s, garbage)
        status, headers, body = parse(read_all(s))
        s.close()
        assert status == 400, garbage
        assert headers["connection"] == "close" and headers["content-type"] == "application/json"
        assert message(body).startswith("bad request")
    alive(shoald)


def test_a_head_over_go_limit_is_a_431_and_one_under_it_is_served(shoald):
    s = connect(shoald)
    send_quietly(s, b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD + 1024) + b"\r\n\r\n")
    status, headers, body = parse(read_all(s))
    s.close()
    assert status == 431 and headers["connection"] == "close"
    assert "too large" in message(body)
    # under the limit (many headers, 900 KiB in all) is an ordinary request
    s = connect(shoald)
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 900) for i in range(1000))
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n")
    status, _, body = parse(read_all(s))
    s.close()
    assert (status, body) == (200, b"OK")
    alive(shoald)


def test_a_slow_client_does_not_hold_up_the_others(shoald):
    """A head sent byte by byte (slowloris) while other clients are served meanwhile."""
    head = b"GET /_ping HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\nConnection: close\r\n"
    slow = connect(shoald)
    for b in head:
        slow.send(bytes([b]))
        time.sleep(0.002)
    idle = connect(shoald)  # another one that says nothing at all
    half = connect(shoald)
    half.sendall(b"POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # body never ends
    for _ in range(5):  # the others are answered while those three hang
        assert shoald.api("GET", "/_ping") == (200, "OK")
        status, nets = shoald.api("GET", "/networks")
        assert status == 200 and {n["Name"] for n in nets} >= {"bridge", "host", "none"}
    slow.sendall(b"\r\n")
    status, _, body = parse(read_all(slow))
    assert (status, body) == (200, b"OK")
    for s in (slow, idle, half):
        s.close()
    assert [n["Name"] for n in shoald.api("GET", "/networks")[1]] == ["bridge", "host", "none"]
    alive(shoald)


def test_a_json_body_over_the_limit_is_a_413_and_changes_nothing(shoald):
    before = shoald.api("GET", "/networks")[1]
    big = json.dumps({"Name": "shf-big", "Labels": {"x": "y" * (MAX_JSON_BODY + 10)}}).encode()
    # announced by Content-Length: refused before the body is read
    s = connect(shoald)
    s.sendall(b"POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(big))
    send_quietly(s, big[:1 << 20])
    status, headers, body = parse(read_all(s))
    s.close()
    assert status == 413 and "too large" in message(body) and headers["connection"] == "close"
    # chunked, so only counting tells: refused once the limit is passed
    s = connect(shoald)
    s.sendall(b"POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    step = 1 << 20
    for i in range(0, len(big), step):
        piece = big[i:i + step]
        send_quietly(s, b"%x\r\n%s\r\n" % (len(piece), piece))
    send_quietly(s, b"0\r\n\r\n")
    status, headers, body = parse(read_all(s))
    s.close()
    assert status == 413 and "too large" in message(body) and headers["connection"] == "close"
    assert shoald.api("GET", "/networks")[1] == before
    alive(shoald)


def test_a_small_unread_body_is_drained_and_the_connection_goes_on(shoald):
    """A 404 answered before its body is read: the next request on the connection works."""
    s = connect(shoald)
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = read_all(s)
    s.close()
    first, _, rest = raw.partition(b"\n\r\n")
    assert first.startswith(b"HTTP/1.1 404") and b"HTTP/1.1 200" in rest and rest.endswith(b"OK")


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def test_an_import_is_streamed_to_disk_not_held_in_memory(shoald):
    """200 MiB in: the daemon's peak RSS (VmHWM) grows by far less than that."""
    mib = 200
    pid = shoald.proc.pid  # nsenter execs shoald in place
    hwm_before = status_kib(pid, "VmHWM")
    info = tarfile.TarInfo("big.bin")
    info.size, info.mode = mib << 20, 0o644
    s = connect(shoald)
    length = 512 + (mib << 20) + 1024
    s.sendall(b"POST /v1.41/images/create?fromSrc=-&repo=shf-big HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/x-tar\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % length)
    s.sendall(info.tobuf(format=tarfile.USTAR_FORMAT))
    zeros = bytes(1 << 20)
    for _ in range(mib):
        s.sendall(zeros)
    s.sendall(bytes(1024))
    status, _, body = parse(read_all(s))
    s.close()
    assert status == 200 and b'"status": "sha256:' in body
    growth_mib = (status_kib(pid, "VmHWM") - hwm_before) / 1024
    assert growth_mib < 100, f"VmHWM grew by {growth_mib:.0f} MiB during a {mib} MiB import"
    status, img = shoald.api("GET", "/images/shf-big/json")
    assert status == 200 and img["Size"] >= mib << 20
    alive(shoald)


def test_an_import_cut_short_leaves_nothing_behind(shoald):
    s = connect(shoald)
    s.sendall(b"POST /images/create?fromSrc=-&repo=shf-cut HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    s.sendall(bytes(1 << 20))
    s.close()
    ingest = shoald.root / "data" / "images" / "images" / "blobs" / "ingest"
    for _ in range(200):  # the daemon notices the close on its next read
        if not list(ingest.glob("import-*")):
            break
        time.sleep(0.05)
    assert ingest.is_dir() and list(ingest.glob("import-*")) == []
    assert shoald.api("GET", "/images/shf-cut/json")[0] == 404
    alive(shoald)


def test_many_connections_at_once_are_all_answered(shoald):
    results: list[int] = []

    def one() -> None:
        s = connect(shoald)
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        results.append(parse(read_all(s))[0])
        s.close()

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 50
    alive(shoald)
