"""Launching conmon, the per-container monitor, and watching it from asyncio.

Why conmon rather than a monitor of our own (measured on this 2-core Debian 12 host):
- Memory: conmon (C, glib) has an RSS of about 2.0 MB per container, of which only ~340 kB is
  private (anonymous); a `python -m` monitor starts at 10-20 MB RSS (4-10 MB anonymous)
  before it does any work. Per container, that difference dominates.
- It already does everything the daemon needs and survives the daemon: it double-forks and
  calls setsid, is a subreaper for the container, holds the PTY or the stdio pipes, writes a
  timestamped stream-tagged log (`k8s-file`), writes the exit code to `exit_dir/<cid>`, serves
  a multi-client attach socket (SOCK_SEQPACKET, one byte of stream tag per message: 2 =
  stdout, 3 = stderr; what a client sends goes to stdin), takes resizes on a `ctl` fifo
  (`1 <rows> <cols>`), and runs `runc exec` sessions the same way (`--exec`, `--exec-attach`).
- Start cost is small: conmon's own fork adds ~10 ms to runc's create.
Costs: conmon closes the container's stdin when *any* attach client disconnects (unless
`--leave-stdin-open`), so the daemon keeps a single connection per container and fans it out
itself (see attach.py); and Debian ships it (`apt-get install conmon`).

Every path conmon gets lives under the caller's directory, so nothing is shared between daemons.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal as signals
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import Conflict, InvalidParameter, ShoalError

CONMON = "/usr/bin/conmon"
RUNC = "/usr/sbin/runc"
SYNC_TIMEOUT = 30.0


@dataclass(frozen=True)
class MonitorPaths:
    """Where one conmon instance keeps its files; `bundle` also gets `attach` and `ctl`."""

    bundle: Path

    @property
    def log(self) -> Path:
        return self.bundle / "ctr.log"

    @property
    def exit_dir(self) -> Path:
        return self.bundle / "exit"

    @property
    def pidfile(self) -> Path:
        return self.bundle / "pidfile"

    @property
    def conmon_pidfile(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def attach(self) -> Path:
        return self.bundle / "attach"

    @property
    def ctl(self) -> Path:
        return self.bundle / "ctl"

    def exit_file(self, cid: str) -> Path:
        return self.exit_dir / cid


@dataclass(frozen=True)
class Launch:
    """One conmon run: a container's `runc create`, or (with `exec_process`) a `runc exec`."""

    cid: str
    uuid: str
    paths: MonitorPaths
    runc_root: Path
    tty: bool
    stdin: bool
    leave_stdin_open: bool = False
    exec_process: Path | None = None
    exec_attach: bool = False
    log: bool = True  # False: the output goes to no file (log driver "none")
    conmon: str = CONMON
    runc: str = RUNC

    def argv(self) -> list[str]:
        p = self.paths
        argv = [self.conmon, "--api-version", "1", "-c", self.cid, "-u", self.uuid, "-n", self.cid,
                "-r", self.runc, "-b", str(p.bundle), "-p", str(p.pidfile), "-P", str(p.conmon_pidfile),
                "--exit-dir", str(p.exit_dir), "-l", f"k8s-file:{p.log if self.log else '/dev/null'}", "--full-attach",
                "--socket-dir-path", str(p.bundle), "--log-level", "error",
                "--runtime-arg", "--root", "--runtime-arg", str(self.runc_root)]
        if self.tty:
            argv.append("-t")
        if self.stdin:
            argv.append("-i")
        if self.leave_stdin_open:
            argv.append("--leave-stdin-open")
        if self.exec_process is not None:
            argv += ["-e", "--exec-process-spec", str(self.exec_process)]
            if self.exec_attach:
                argv.append("--exec-attach")
        return argv


async def _read_sync(reader: asyncio.StreamReader, what: str, is_exec: bool) -> int:
    """One `{"data": N, "message": ...}` line from conmon; N < 0 means runc failed."""
    line = await asyncio.wait_for(reader.readline(), SYNC_TIMEOUT)
    if not line:
        raise ShoalError(f"conmon exited before reporting the {what}")
    msg = json.loads(line)
    if msg.get("data", -1) < 0:
        raise runtime_error(msg.get("message", "") or f"runc failed (no {what})", is_exec=is_exec)
    return int(msg["data"])


async def _pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader, transport


async def launch(spec: Launch, on_attach_ready=None) -> tuple[int, int]:
    """Start conmon; return (process pid, conmon pid) once runc has created the process.

    For an attached exec, `on_attach_ready` (async, no args) runs when the attach socket
    exists and before runc exec starts, so the caller can connect without losing output.
    """
    spec.paths.exit_dir.mkdir(parents=True, exist_ok=True)
    sync_r, sync_w = os.pipe()
    child_fds, env = [sync_w], {"_OCI_SYNCPIPE": str(sync_w)}
    parent_fds = [sync_r]
    if spec.exec_attach:
        start_r, start_w = os.pipe()
        attach_r, attach_w = os.pipe()
        child_fds += [start_r, attach_w]
        parent_fds += [start_w, attach_r]
        env.update(_OCI_STARTPIPE=str(start_r), _OCI_ATTACHPIPE=str(attach_w))
    transports: list[asyncio.BaseTransport] = []
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv(), pass_fds=child_fds, env={**_base_env(), **env},
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
        finally:
            for fd in child_fds:
                os.close(fd)
        readers = []
        for fd in parent_fds[::2] if spec.exec_attach else parent_fds:  # sync_r, attach_r
            parent_fds.remove(fd)
            reader, transport = await _pipe_reader(fd)
            readers.append(reader)
            transports.append(transport)
        if spec.exec_attach:
            os.write(parent_fds[0], b"0")  # conmon waits for a first start message before forking
        if await proc.wait() != 0:
            raise ShoalError(f"conmon failed to start (exit {proc.returncode})")
        if spec.exec_attach:
            await _read_sync(readers[1], "attach socket", True)
            if on_attach_ready is not None:
                # queued, not yet accepted: conmon's main loop accepts it before it reads the
                # process's first output (its listening socket's source is older than stdio's)
                await on_attach_ready()
            os.write(parent_fds[0], b"1")  # and a second one before it runs `runc exec`
        pid = await _read_sync(readers[0], "container pid", spec.exec_process is not None)
        return pid, int(spec.paths.conmon_pidfile.read_text().strip())
    finally:
        for fd in parent_fds:
            os.close(fd)
        for transport in transports:
            transport.close()


def _base_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")}


_RUNC_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def start_exit_code(message: str) -> int:
    """Docker's exit code for a process that never started: 127 not found, else 126."""
    text = message.lower()
    return 127 if "executable file not found" in text or "no such file or directory" in text else 126


CRUN_HYBRID = "cgroups in hybrid mode not supported"
CRUN_HYBRID_FIX = ("; crun takes a hybrid cgroup layout only when cgroup v2 holds no controller: mount the "
                   "ones in /sys/fs/cgroup/unified/cgroup.controllers as v1 hierarchies (scripts/setup does)")


def runtime_error(stderr: str, *, is_exec: bool = False) -> ShoalError:
    """runc's logrus line (crun's plain one) -> the error class and wording Docker would report."""
    found = _RUNC_MSG.findall(stderr)
    text = (found[-1].replace('\\"', '"') if found else stderr.strip()) or "runc failed"
    if CRUN_HYBRID in text:
        text += CRUN_HYBRID_FIX
    if is_exec:
        return ShoalError(f"OCI runtime exec failed: {text}: unknown")
    if start_exit_code(text) == 127:
        return InvalidParameter(f"failed to create task for container: {text}")
    return ShoalError(f"OCI runtime error: {text}")


def alive(pid: int | None, cid: str) -> bool:
    """Is `pid` still the conmon that monitors `cid`? (guards against pid reuse)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"conmon") and cid.encode() in argv


async def wait_exit(pid: int) -> None:
    """Wait for any process (not only our children) to exit, through a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def kill_monitor(pid: int | None, cid: str) -> None:
    """Last resort for a conmon whose container is gone: SIGKILL that exact pid, if it is ours."""
    if pid and alive(pid, cid):
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            pass


def read_exit_code(path: Path) -> int | None:
    """The code conmon wrote, or None while the process runs (or the file is half-written)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def resize(ctl: Path, height: int, width: int) -> None:
    """Ask conmon to set the PTY size; Conflict if no conmon is listening."""
    if not (0 <= height <= 1000 and 0 <= width <= 1000):
        raise InvalidParameter(f"invalid terminal size {height}x{width}")
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
    except (FileNotFoundError, OSError) as err:
        raise Conflict(f"cannot resize: the process is not running ({err.strerror})") from None
    try:
        os.write(fd, f"1 {height} {width}\n".encode())
    finally:
        os.close(fd)
