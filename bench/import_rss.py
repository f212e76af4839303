"""shoald's memory while it imports a large image: is the request body streamed to disk?

    .venv/bin/python bench/import_rss.py                 # a 1 GiB file in the tar
    .venv/bin/python bench/import_rss.py --mib 200 --random

Starts shoald from this checkout in a throwaway host namespace (`--prefix`, default
`shb-import`), generates a tarball holding one file of N MiB (zeros, or random bytes with
`--random`) on the fly and streams it over the unix socket as `POST /images/create?fromSrc=-`,
sampling the daemon's VmRSS meanwhile.  Prints the RSS before, the sampled peak, VmHWM and
the time taken.  Nothing is written but the daemon's own data root under a temp dir, which
goes at the end with the namespace (root needed).  Measures, never asserts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CHUNK = 1 << 20


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def tar_stream(mib: int, random: bool):
    """A valid ustar archive of one regular file, produced chunk by chunk, never held whole."""
    size = mib * CHUNK
    info = tarfile.TarInfo("big.bin")
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    yield info.tobuf(format=tarfile.USTAR_FORMAT)
    zeros = bytes(CHUNK)
    for _ in range(mib):
        yield os.urandom(CHUNK) if random else zeros
    yield bytes(1024)  # two empty blocks end the archive; size is a multiple of 512 already


def tar_length(mib: int) -> int:
    return 512 + mib * CHUNK + 1024


def post_import(sock: str, mib: int, random: bool) -> str:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    head = (f"POST /v1.41/images/create?fromSrc=-&repo=shb-big&tag=latest HTTP/1.1\r\nHost: shoal\r\n"
            f"Content-Type: application/x-tar\r\nContent-Length: {tar_length(mib)}\r\n\r\n")
    s.sendall(head.encode())
    for chunk in tar_stream(mib, random):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while data := s.recv(65536):
        out += data
    s.close()
    return out.decode(errors="replace")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            time.sleep(0.02)


def wait_socket(sock: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"shoald exited {proc.returncode}")
        if os.path.exists(sock):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise SystemExit("shoald did not answer /_ping")


def shoald_pid(launcher: subprocess.Popen) -> int:
    """nsenter execs shoald in place, so the launched pid is the daemon's."""
    return launcher.pid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--random", action="store_true", help="random bytes instead of zeros")
    ap.add_argument("--prefix", default="shb-import", help="name prefix of the namespace and temp dir")
    args = ap.parse_args()
    ns = f"{args.prefix}-{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix=f"{args.prefix}-"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        sock = str(root / "s.sock")
        with open(root / "shoald.log", "wb") as log:
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", str(BIN / "shoald"),
                                     "--data-root", str(root / "d"), "-H", f"unix://{sock}",
                                     "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
        wait_socket(sock, proc)
        pid = shoald_pid(proc)
        before = status_kib(pid, "VmRSS")
        sampler = Sampler(pid)
        sampler.start()
        t0 = time.monotonic()
        answer = post_import(sock, args.mib, args.random)
        took = time.monotonic() - t0
        sampler.done.set()
        sampler.join()
        hwm = status_kib(pid, "VmHWM")
        status = answer.split("\r\n", 1)[0]
        reply = [line for line in answer.partition("\r\n\r\n")[2].splitlines() if line.startswith("{")]
        print(f"import of a {args.mib} MiB file ({'random' if args.random else 'zeros'}): {status}, {took:.1f} s, "
              f"{(reply[:1] or [''])[0][:120]}")
        print(f"shoald RSS before {before / 1024:.1f} MiB, sampled peak {sampler.peak / 1024:.1f} MiB, "
              f"VmHWM {hwm / 1024:.1f} MiB")
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
