"""A client attached to a chatty container that reads nothing does not make shoald's memory
grow: its queue is bounded, it is dropped once it stalls, and the other clients keep
receiving everything."""

import socket
import threading
import time

from shoal.runtime.attach import QUEUE_LIMIT, STALL_TIMEOUT

from .conftest import needs_docker

pytestmark = needs_docker

PRODUCER = "while :; do yes abcdefghijklmnopqrstuvwxyz | head -c 262144; usleep 20000; done"
WANT = 64 << 20  # bytes the reading client must get: far more than the bounds


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _attach(sock_path: str, cid: str, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(sock_path)
    s.sendall(f"POST /v1.41/containers/{cid}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: shoal\r\n"
              "Upgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n".encode())
    return s


def test_a_stalled_attach_client_keeps_memory_bounded(box):
    d = box
    cid = d.docker("run", "-d", "--log-opt", "max-size=2m", "--log-opt", "max-file=2",
                   "busybox", "sh", "-c", PRODUCER).stdout.strip()
    stalled = _attach(d.sock, cid, rcvbuf=4096)  # reads nothing from here on
    reader = _attach(d.sock, cid)
    got = 0

    def read() -> None:
        nonlocal got
        while got < WANT and (chunk := reader.recv(1 << 20)):
            got += len(chunk)

    thread = threading.Thread(target=read, daemon=True)
    time.sleep(0.5)
    base = _rss_kib(d.proc.pid)
    thread.start()
    peak = base
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        peak = max(peak, _rss_kib(d.proc.pid))
        thread.join(0.2)
    assert got >= WANT, got  # the other client kept receiving (after the stalled one was dropped)
    # the stalled client held at most its bound: far less than what went past it
    assert (peak - base) * 1024 < QUEUE_LIMIT + (24 << 20), (base, peak)
    stalled.settimeout(STALL_TIMEOUT + 30)
    while stalled.recv(1 << 20):  # what the kernel buffered, then the end: shoald dropped it
        pass
    stalled.close()
    reader.close()
    d.docker("rm", "-f", cid)
