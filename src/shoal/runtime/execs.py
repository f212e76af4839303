"""`docker exec` sessions: `runc exec` under a conmon of their own, one directory each.

An attached session connects to conmon's attach socket before runc starts the process
(conmon's `--exec-attach` handshake), so no early output is lost. The exit code lands in
`exit/<container id>` inside the session directory, so it survives a daemon restart.

A finished session is `settle()`d: its exit code moves into memory and its directory goes,
so that the many short execs of a health check or a script leave no files behind; the
controller decides how long the record itself stays inspectable (dockerd keeps a finished
exec until its periodic clean-up, and none across a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import Conflict
from shoal.runtime import monitor
from shoal.runtime.attach import Attachment, MonitorSocket
from shoal.runtime.monitor import Launch, MonitorPaths
from shoal.runtime.spec import ExecSpec, exec_process
from shoal.runtime.streams import DEFAULT_DETACH_KEYS, Stream

REAP_TIMEOUT = 5.0


@dataclass(frozen=True)
class ExecState:
    id: str
    container_id: str
    running: bool
    exit_code: int | None  # None while running
    pid: int
    spec: ExecSpec


class ExecSession:
    """A started exec process; stdio through `attachment` unless started detached."""

    def __init__(self, exec_id: str, cid: str, paths: MonitorPaths, spec: ExecSpec, pid: int,
                 conmon_pid: int, attachment: Attachment | None) -> None:
        self.id, self.container_id, self.paths, self.spec = exec_id, cid, paths, spec
        self.pid, self.conmon_pid = pid, conmon_pid
        self.attachment = attachment
        self._code: int | None = None  # once settled
        self.finished_at: float | None = None

    @property
    def tty(self) -> bool:
        return self.spec.tty

    def _attached(self) -> Attachment:
        if self.attachment is None:
            raise Conflict(f"exec {self.id} was started detached")
        return self.attachment

    async def read(self) -> tuple[Stream, bytes] | None:
        return await self._attached().read()

    async def __aiter__(self) -> AsyncIterator[tuple[Stream, bytes]]:
        async for item in self._attached():
            yield item

    async def write(self, data: bytes) -> bool:
        return await self._attached().write(data)

    async def close_stdin(self) -> None:
        await self._attached().close_stdin()

    @property
    def exit_code(self) -> int | None:
        if self.finished_at is not None:
            return self._code
        return monitor.read_exit_code(self.paths.exit_file(self.container_id))

    @property
    def running(self) -> bool:
        return self.finished_at is None and self.exit_code is None and monitor.alive(self.conmon_pid, self.id)

    async def wait(self) -> int:
        """The process's exit code (conmon writes it before it exits)."""
        if self.finished_at is None and monitor.alive(self.conmon_pid, self.id):
            await monitor.wait_exit(self.conmon_pid)
        code = self.exit_code
        return code if code is not None else 255

    def settle(self) -> float | None:
        """When the process ended (None while it runs). The first call after the end keeps
        the exit code in memory and removes the session's directory; conmon must be gone
        first, since it writes the exit file before it closes the attach socket."""
        if self.finished_at is None and not monitor.alive(self.conmon_pid, self.id):
            exit_file = self.paths.exit_file(self.container_id)
            code = monitor.read_exit_code(exit_file)
            try:
                ended = exit_file.stat().st_mtime
            except OSError:
                ended = time.time()
            self._code, self.finished_at = (code if code is not None else 255), ended
            self.release()
        return self.finished_at

    def release(self) -> None:
        """Remove the session's files (the process is gone or its container goes)."""
        shutil.rmtree(self.paths.bundle, ignore_errors=True)

    def state(self) -> ExecState:
        code = self.exit_code
        running = self.finished_at is None and code is None and monitor.alive(self.conmon_pid, self.id)
        return ExecState(id=self.id, container_id=self.container_id, running=running,
                         exit_code=None if running else (code if code is not None else 255),
                         pid=self.pid, spec=self.spec)

    async def reap(self) -> None:
        """After the container was killed: let this conmon finish, else kill that exact pid."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wait(), REAP_TIMEOUT)
        monitor.kill_monitor(self.conmon_pid, self.id)
        if self.attachment is not None:
            self.attachment.close()

    def _save(self) -> None:
        spec = {"args": list(self.spec.args), "env": list(self.spec.env), "cwd": self.spec.cwd,
                "user": self.spec.user, "tty": self.spec.tty, "open_stdin": self.spec.open_stdin}
        (self.paths.bundle / "exec.json").write_text(json.dumps(
            {"id": self.id, "container_id": self.container_id, "spec": spec,
             "pid": self.pid, "conmon_pid": self.conmon_pid}))

    @classmethod
    def restore(cls, exec_dir: Path, cid: str) -> ExecSession | None:
        """A session from its directory after a daemon restart (no stdio: that was the old daemon's)."""
        try:
            data = json.loads((exec_dir / "exec.json").read_text())
            s = data["spec"]
            spec = ExecSpec(args=tuple(s["args"]), env=tuple(s["env"]), cwd=s["cwd"], user=s["user"],
                            tty=s["tty"], open_stdin=s["open_stdin"])
            return cls(data["id"], cid, MonitorPaths(exec_dir), spec, data["pid"], data["conmon_pid"], None)
        except (OSError, ValueError, KeyError, TypeError):
            return None


async def start_exec(*, exec_id: str, cid: str, spec: ExecSpec, container_config: dict, exec_dir: Path,
                     runc_root: Path, attach: bool = True, detach_keys: bytes = DEFAULT_DETACH_KEYS,
                     conmon: str = monitor.CONMON, runc: str = monitor.RUNC) -> ExecSession:
    """Write the process spec, start conmon with `--exec`, and connect before the process runs."""
    process = exec_process(container_config, spec)  # a bad --user fails here, before any file
    exec_dir.mkdir(parents=True)
    process_file = exec_dir / "process.json"
    process_file.write_text(json.dumps(process))
    paths = MonitorPaths(exec_dir)
    hub = MonitorSocket(paths.attach, stdin_once=True) if attach else None
    attachment = (Attachment(hub, tty=spec.tty, stdin=spec.open_stdin, detach_keys=detach_keys)
                  if hub is not None else None)

    async def connect() -> None:
        assert hub is not None
        hub.connect()

    launch = Launch(cid=cid, uuid=exec_id, paths=paths, runc_root=runc_root, tty=spec.tty,
                    stdin=spec.open_stdin and attach, exec_process=process_file, exec_attach=attach,
                    conmon=conmon, runc=runc)
    try:
        pid, conmon_pid = await monitor.launch(launch, on_attach_ready=connect if attach else None)
    except BaseException:
        if hub is not None:
            hub.close()
        shutil.rmtree(exec_dir, ignore_errors=True)
        raise
    session = ExecSession(exec_id, cid, paths, spec, pid, conmon_pid, attachment)
    session._save()
    return session
